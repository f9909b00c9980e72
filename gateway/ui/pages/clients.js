// Clients (issue 21): each a credential bound to a profile of the config. Add one, rotate or revoke it;
// a new credential is shown here once (the proxy keeps only its hash) and never again.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, field, fmtTime, h, iconButton, pageHeader, showError, srOnly, tableWrap } from "../lib/dom.js";
import { confirmAction } from "../lib/modal.js";

export function clientsPage() {
  const tbody = h("tbody");
  const listBox = errorBox();
  const issued = h("div", { id: "client-credential", class: "card", hidden: true });
  const showIssued = (data) => {
    issued.replaceChildren(
      h("h2", {}, `Credential of ${data.client.name}`),
      h("p", {}, "Shown this once: give it to the client as Authorization: Bearer <credential> or X-API-Key."),
      h("pre", { class: "credential" }, data.credential));
    issued.hidden = false;
  };
  const profile = h("select", { id: "client-new-profile", required: true });
  const load = async () => {
    try {
      const [clients, profiles] = await Promise.all([api("GET", "/api/v1/clients"), api("GET", "/api/v1/profiles")]);
      profile.replaceChildren(...profiles.profiles.map((p) => h("option", { value: p.name }, p.title ? `${p.name} (${p.title})` : p.name)));
      showError(listBox, null);
      tbody.replaceChildren(...clients.clients.map((client) => {
        const rotate = iconButton("key", `New credential for ${client.name}`, async () => {
          showIssued(await api("POST", `/api/v1/clients/${enc(client.name)}/rotate`, {}));
          await load();
        });
        const revoke = iconButton("trash", `Revoke ${client.name}`, () =>
          confirmAction(`Revoke ${client.name}?`, "Its credential is refused from the next request on.", "Revoke",
            async () => { await api("DELETE", `/api/v1/clients/${enc(client.name)}`); await load(); }));
        return h("tr", { "data-client": client.name },
          h("th", { scope: "row" }, h("code", {}, client.name)),
          h("td", {}, client.profile),
          h("td", {}, fmtTime(client.created_at)),
          h("td", {}, client.expires_at ? fmtTime(client.expires_at) : h("span", { class: "muted" }, "never")),
          h("td", {}, rotate, revoke));
      }));
      if (!clients.clients.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No clients.")));
    } catch (error) {
      showError(listBox, error);
    }
  };
  const name = h("input", { id: "client-new-name", required: true, autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*" });
  const expires = h("input", { id: "client-new-expires", autocomplete: "off", placeholder: "30d", pattern: "\\d+[mhdw]" });
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Add client");
  const form = h("form", { class: "card", id: "add-client", "aria-labelledby": "client-title" },
    h("h2", { id: "client-title" }, "Add a client"),
    h("div", { class: "fields" },
      field("Name", name, "Who uses it: chat-app, claude-code, nightly-job."),
      field("Profile", profile, "What it may see and do (profiles in the config)."),
      field("Expires after", expires, "Optional: 90m, 12h, 30d, 2w.")),
    box, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), profile: profile.value, ...(expires.value.trim() ? { expires: expires.value.trim() } : {}) };
    const data = await busy(submit, box, () => api("POST", "/api/v1/clients", body));
    if (data) {
      showIssued(data);
      form.reset();
      load();
    }
  });
  load();
  return h("section", {}, pageHeader("Clients"), issued, form,
    h("h2", {}, "Clients"), listBox,
    tableWrap(h("table", { class: "grid", id: "clients" },
      h("thead", {}, h("tr", {}, ["Name", "Profile", "Created", "Expires", srOnly("Actions")].map((t) => h("th", { scope: "col" }, t)))),
      tbody)));
}
