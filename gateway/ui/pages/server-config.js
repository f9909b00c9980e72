// Server -> Configuration: the launch settings, and the Headers (HTTP servers) and Environment
// Variables cards.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, h, icon, iconButton, showError, srOnly, tableWrap } from "../lib/dom.js";
import { closeModal, confirmAction, modalOpen, openModal } from "../lib/modal.js";
import { findServer, listen } from "../lib/state.js";
import { isStdio, launchCard } from "./server-launch.js";

const MASK_RE = /^••••(.{0,2}) \((\d+) chars\)$/;
const REF_RE = /^\$\{(keyring|env):([^}]+)\}$/;

export function configTab(name, panel) {
  drawConfig(name, panel);
  // Changes made elsewhere (CLI, another tab, a hand edit) show up live, unless an edit is open here.
  listen(() => {
    const s = findServer(name);
    if (!s || !panel.dataset.sig || panel.dataset.sig === configSig(s)) return;
    if (panel.querySelector("form") || modalOpen()) return;
    drawConfig(name, panel, s);
  });
}

// `known` is the server as a change just answered it (the registry may not have caught up yet).
async function drawConfig(name, panel, known) {
  const box = errorBox();
  if (!known) panel.replaceChildren(h("p", { class: "muted" }, "Loading…"), box);
  try {
    const server = known || (await api("GET", `/api/v1/servers/${enc(name)}`)).server;
    panel.dataset.sig = configSig(server);
    const reload = (data) => drawConfig(name, panel, data && data.server);
    const stdio = isStdio(server);
    const cards = [launchCard(server, reload)];
    // Headers go with HTTP requests and env to a stdio command: each is shown for the other kind
    // of server only when some were written by hand, to be deleted.
    const kinds = [
      ["header", "Headers", "Add header", server.headers || {}, !stdio, "A stdio server sends no headers: these are ignored."],
      ["env", "Environment Variables", "Add variable", server.env || {}, stdio, "An HTTP server runs no command: these are ignored."],
    ];
    for (const [scope, title, addLabel, values, applies, ignored] of kinds) {
      if (!applies && !Object.keys(values).length) continue;
      const card = kvCard(name, scope, title, addLabel, values, reload);
      if (!applies) card.children[0].after(h("p", { class: "error notice" }, ignored));
      cards.push(card);
    }
    panel.replaceChildren(h("div", { class: "cards" }, cards));
  } catch (error) {
    panel.replaceChildren(box);
    showError(box, error);
  }
}

const SHOWN = ["protocol", "command", "args", "working_dir", "url", "init_timeout", "call_tool_timeout", "headers", "env"];

function configSig(server) {
  return JSON.stringify(SHOWN.map((key) => server[key] === undefined ? null : server[key]));
}

const REFS_RE = /\$\{(keyring|env):([^}]+)\}/g;

function refChip(kind, name, text) {
  return h("span", { class: `chip chip-${kind}`, title: text }, icon(kind === "keyring" ? "key" : "lock"),
    h("span", { class: "chip-kind" }, kind === "keyring" ? "secret" : "env"), h("span", { class: "chip-name" }, name));
}

// A value as the API shows it: a reference chip, a template (text with chips in it, e.g.
// `Bearer ${keyring:token}`), a masked literal, or plain text. Never unmasked.
function valueView(value) {
  const ref = REF_RE.exec(value);
  if (ref) return refChip(ref[1], ref[2], value);
  if (MASK_RE.test(value)) return h("span", { class: "masked", title: "Hidden value" }, value);
  const parts = [];
  let last = 0;
  for (const match of value.matchAll(REFS_RE)) {
    if (match.index > last) parts.push(value.slice(last, match.index));
    parts.push(refChip(match[1], match[2], match[0]));
    last = match.index + match[0].length;
  }
  if (!parts.length) return h("code", { class: "plain" }, value);
  if (last < value.length) parts.push(value.slice(last));
  return h("code", { class: "plain template", title: value }, parts);
}

function kvCard(server, scope, title, addLabel, values, reload) {
  const field = scope === "header" ? "headers" : "env";
  const slug = scope === "header" ? "headers" : "env";
  const tbody = h("tbody");
  const cardBox = errorBox();
  const patch = (key, value) => api("PATCH", `/api/v1/servers/${enc(server)}`, { [field]: { [key]: value } });

  const row = (key, value) => {
    const valueCell = h("td", { class: "value" }, valueView(value));
    const rowBox = errorBox();
    const isRef = REF_RE.test(value) || value.search(REFS_RE) >= 0;
    const masked = MASK_RE.test(value);
    const edit = iconButton("pencil", `Edit ${key}`, () => {
      const input = h("input", {
        type: masked ? "password" : "text", value: masked ? "" : value, "aria-label": `New value for ${key}`,
        placeholder: masked ? "New value (the current one stays hidden)" : "", autocomplete: "off", class: "grow",
      });
      const save = h("button", { type: "submit", class: "btn small primary" }, "Save");
      const cancel = h("button", { type: "button", class: "btn small", onclick: () => { valueCell.replaceChildren(valueView(value)); actions.hidden = false; showError(rowBox, null); edit.focus(); } }, "Cancel");
      const form = h("form", { class: "inline-edit" }, input, save, cancel);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const done = await busy(save, rowBox, () => patch(key, input.value));
        if (done) reload(done);
      });
      form.addEventListener("keydown", (event) => { if (event.key === "Escape") cancel.click(); });
      valueCell.replaceChildren(form, rowBox);
      actions.hidden = true;
      input.focus();
    });
    const convert = isRef ? null : iconButton("lock", `Convert ${key} to secret`, () => convertModal(server, scope, key, reload));
    const remove = iconButton("trash", `Delete ${key}`, () =>
      confirmAction(`Delete ${scope === "header" ? "header" : "variable"} ${key}?`,
        `"${key}" is removed from ${server}; the server restarts without it.`, "Delete",
        async () => reload(await patch(key, null))));
    const actions = h("div", { class: "row-actions" }, edit, convert, remove);
    return h("tr", { "data-key": key }, h("th", { scope: "row" }, h("code", {}, key)), valueCell,
      h("td", { class: "actions-cell" }, actions));
  };

  const addButton = h("button", { type: "button", class: "btn small", id: `add-${slug}` }, `+ ${addLabel}`);
  addButton.addEventListener("click", () => {
    const keyInput = h("input", { "aria-label": scope === "header" ? "Header name" : "Variable name", placeholder: scope === "header" ? "X-Header" : "NAME", autocomplete: "off", required: true });
    const valueInput = h("input", { "aria-label": "Value", placeholder: "value or ${keyring:NAME}", autocomplete: "off", class: "grow" });
    const save = h("button", { type: "submit", class: "btn small primary" }, "Save");
    const newRow = h("tr", { class: "new-row" });
    const cancel = h("button", { type: "button", class: "btn small", onclick: () => { newRow.remove(); addButton.disabled = false; addButton.focus(); } }, "Cancel");
    const form = h("form", { class: "inline-edit", id: `new-${slug}` }, keyInput, valueInput, save, cancel);
    const rowBox = errorBox();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const done = await busy(save, rowBox, () => patch(keyInput.value.trim(), valueInput.value));
      if (done) reload(done);
    });
    form.addEventListener("keydown", (event) => { if (event.key === "Escape") cancel.click(); });
    newRow.append(h("td", { colspan: 3 }, form, rowBox));
    tbody.prepend(newRow);
    addButton.disabled = true;
    keyInput.focus();
  });

  const keys = Object.keys(values).sort();
  for (const key of keys) tbody.append(row(key, values[key]));
  return h("div", { class: "card kv-card", id: `card-${slug}` },
    h("div", { class: "card-head" }, h("h2", {}, title), addButton),
    cardBox,
    tableWrap(h("table", { class: "grid kv" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, srOnly("Actions")))),
      tbody)),
    keys.length ? null : h("p", { class: "muted empty" }, scope === "header" ? "No headers." : "No environment variables."));
}

function convertModal(server, scope, key, reload) {
  const suggested = `${server}_${key}`.toLowerCase().replace(/[^a-z0-9_.-]+/g, "_");
  const input = h("input", { id: "secret-name", value: suggested, required: true, autocomplete: "off", pattern: "[A-Za-z0-9_.\\-]+" });
  const box = errorBox();
  const cancel = h("button", { type: "button", class: "btn", onclick: closeModal }, "Cancel");
  const convert = h("button", { type: "button", class: "btn primary", id: "convert-confirm" }, "Convert");
  const run = async () => {
    if (!input.reportValidity()) return;
    const done = await busy(convert, box, () =>
      api("POST", `/api/v1/servers/${enc(server)}/config-to-secret`, { scope, key, secret_name: input.value.trim() }));
    if (done) {
      closeModal();
      reload(done);
    }
  };
  convert.addEventListener("click", run);
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); run(); } });
  openModal("Convert to secret", [
    h("p", {}, `Moves the stored value of ${scope === "header" ? "header" : "variable"} "${key}" into the secrets store and replaces it with \${keyring:NAME}. The value never reaches this page.`),
    h("label", { for: "secret-name" }, "Secret name"), input, box,
  ], [cancel, convert]);
  input.select();
  input.focus();
}
