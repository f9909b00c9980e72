// Secret names, whether they are stored and who uses them; add (write-only) and delete. Never a value.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, field, h, iconButton, pageHeader, showError, srOnly, tableWrap } from "../lib/dom.js";
import { confirmAction } from "../lib/modal.js";

export function secretsPage() {
  const tbody = h("tbody");
  const listBox = errorBox();
  const backend = h("span", { class: "muted" });
  const load = async () => {
    try {
      const data = await api("GET", "/api/v1/secrets");
      backend.textContent = data.backend ? `Stored in: ${data.backend}` : "";
      showError(listBox, null);
      tbody.replaceChildren(...data.secrets.map((secret) => {
        const box = errorBox();
        const remove = iconButton("trash", `Delete secret ${secret.name}`, () =>
          confirmAction(`Delete secret ${secret.name}?`,
            secret.servers.length ? `Servers that use it (${secret.servers.join(", ")}) restart and fail until it is set again.` : "No server uses it.",
            "Delete", async () => { await api("DELETE", `/api/v1/secrets/${enc(secret.name)}`); await load(); }));
        return h("tr", { "data-secret": secret.name },
          h("th", { scope: "row" }, h("code", {}, secret.name)),
          h("td", {}, secret.stored ? h("span", { class: "badge state-running" }, "stored") : h("span", { class: "badge state-fatal" }, "missing")),
          h("td", {}, secret.servers.length ? secret.servers.map((s) => h("a", { href: `#/server/${enc(s)}`, class: "tag" }, s)) : h("span", { class: "muted" }, "unused")),
          h("td", {}, secret.stored ? remove : null, box));
      }));
      if (!data.secrets.length) tbody.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No secrets.")));
    } catch (error) {
      showError(listBox, error);
    }
  };
  const name = h("input", { id: "secret-new-name", required: true, autocomplete: "off", pattern: "[A-Za-z0-9_.\\-]+" });
  const value = h("input", { id: "secret-new-value", type: "password", required: true, autocomplete: "new-password" });
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Save secret");
  const form = h("form", { class: "card", id: "add-secret", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, "Add or replace a secret"),
    h("div", { class: "fields" }, field("Name", name, "Use it in headers or env as ${keyring:NAME}."), field("Value", value, "Write-only: never shown again.")),
    box, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = await busy(submit, box, async () => {
      await api("POST", "/api/v1/secrets", { name: name.value.trim(), value: value.value });
      return true;
    });
    value.value = "";
    if (done) {
      form.reset();
      load();
    }
  });
  load();
  return h("section", {}, pageHeader("Secrets", backend), form,
    h("h2", {}, "Secrets"), listBox,
    tableWrap(h("table", { class: "grid", id: "secrets" },
      h("thead", {}, h("tr", {}, ["Name", "Status", "Used by", srOnly("Actions")].map((t) => h("th", { scope: "col" }, t)))),
      tbody)));
}
