// Server -> Configuration -> Launch: what runs (command, arguments, working directory) or where it
// connects (URL), and its timeouts. Edit sends one JSON Merge Patch of just the fields changed.
import { api, enc } from "../lib/api.js";
import { busy, commandView, errorBox, fact, field, h, iconButton } from "../lib/dom.js";

const MASKED_RE = /••••.{0,2} \(\d+ chars\)/;
const SECONDS_RE = /^\d+(\.\d+)?$/;
const TIMEOUTS = [
  ["init_timeout", "Start timeout", "How long it may take to start and answer initialize."],
  ["call_tool_timeout", "Call timeout", "How long one tool call may run."],
];

// The transport as the config decides it: "auto" (or none) is stdio when there is a command.
export function isStdio(server) {
  if (server.protocol === "stdio") return true;
  return (server.protocol === "auto" || !server.protocol) && Boolean(server.command);
}

function timeoutText(value) {
  if (value === undefined || value === null) return h("span", { class: "muted" }, "default");
  return typeof value === "number" ? `${value} s` : String(value);
}

// "30" is seconds (a number); "30s" or "2m" a duration string; empty is "back to the default".
function timeoutValue(text) {
  const value = text.trim();
  if (!value) return null;
  return SECONDS_RE.test(value) ? Number(value) : value;
}

function launchFacts(server, stdio) {
  const facts = stdio
    ? [
      fact("Command", commandView(server.command, server.args), "wide fact-command"),
      fact("Working directory", server.working_dir ? h("code", {}, server.working_dir) : h("span", { class: "muted" }, "the proxy's")),
    ]
    : [fact("URL", h("code", { class: "url" }, server.url || ""), "wide")];
  for (const [key, label] of TIMEOUTS) facts.push(fact(label, timeoutText(server[key])));
  return h("dl", { class: "facts" }, facts);
}

function launchForm(server, stdio, box, onSaved, onCancel) {
  const inputs = {};
  const fields = [];
  if (stdio) {
    inputs.command = h("input", { id: "edit-command", value: server.command || "", required: true, autocomplete: "off", spellcheck: "false" });
    inputs.args = h("textarea", { id: "edit-args", rows: Math.max(3, (server.args || []).length + 2), wrap: "off", spellcheck: "false" }, (server.args || []).join("\n"));
    inputs.working_dir = h("input", { id: "edit-workdir", value: server.working_dir || "", autocomplete: "off", spellcheck: "false" });
    fields.push(field("Command", inputs.command),
      field("Arguments", inputs.args, (server.args || []).some((a) => MASKED_RE.test(a))
        ? "One per line. A masked argument (••••) keeps its stored value." : "One per line."),
      field("Working directory", inputs.working_dir, "Empty: the proxy's own."));
  } else {
    inputs.url = h("input", { id: "edit-url", type: "text", value: server.url || "", required: true, autocomplete: "off", spellcheck: "false" });
    fields.push(field("URL", inputs.url));
  }
  for (const [key, label, hint] of TIMEOUTS) {
    const current = server[key];
    inputs[key] = h("input", { id: `edit-${key.replaceAll("_", "-")}`, value: current === undefined || current === null ? "" : String(current), autocomplete: "off", placeholder: "default" });
    fields.push(field(label, inputs[key], `${hint} Seconds, or 30s, 2m; empty for the default.`));
  }
  const save = h("button", { type: "submit", class: "btn primary" }, "Save");
  const cancel = h("button", { type: "button", class: "btn", onclick: onCancel }, "Cancel");
  const form = h("form", { class: "launch-edit", id: "launch-form" }, h("div", { class: "fields" }, fields), h("div", { class: "actions" }, cancel, save));
  form.addEventListener("keydown", (event) => { if (event.key === "Escape") onCancel(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const patch = {};
    if (stdio) {
      const command = inputs.command.value.trim();
      const args = inputs.args.value.split("\n").map((a) => a.trim()).filter(Boolean);
      const workdir = inputs.working_dir.value.trim();
      if (command !== server.command) patch.command = command;
      if (JSON.stringify(args) !== JSON.stringify(server.args || [])) patch.args = args;
      if (workdir !== (server.working_dir || "")) patch.working_dir = workdir || null;
    } else if (inputs.url.value.trim() !== server.url) {
      patch.url = inputs.url.value.trim();
    }
    for (const [key] of TIMEOUTS) {
      const value = timeoutValue(inputs[key].value);
      const current = server[key] === undefined ? null : server[key];
      if (value !== current) patch[key] = value;
    }
    if (!Object.keys(patch).length) {
      onCancel();
      return;
    }
    const done = await busy(save, box, () => api("PATCH", `/api/v1/servers/${enc(server.name)}`, patch));
    if (done) onSaved(done);
  });
  return form;
}

export function launchCard(server, reload) {
  const stdio = isStdio(server);
  const box = errorBox();
  const body = h("div", {});
  const card = h("div", { class: "card launch-card", id: "card-launch" });
  const show = () => {
    edit.hidden = false;
    body.replaceChildren(launchFacts(server, stdio));
  };
  const edit = iconButton("pencil", "Edit launch settings", () => {
    edit.hidden = true;
    body.replaceChildren(launchForm(server, stdio, box, reload, () => { box.hidden = true; show(); edit.focus(); }));
    body.querySelector("input, textarea").focus();
  }, { id: "edit-launch" });
  show();
  card.append(h("div", { class: "card-head" }, h("h2", {}, stdio ? "Command" : "Connection"), edit), body, box);
  return card;
}
