// Add from registry (issue 26): search the MCP registries of the config (and the reference servers
// shipped with mcpproxy), then add one. It arrives quarantined; what it still needs (secrets as
// ${keyring:NAME}, arguments) is listed so the user can fill it in before approving.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, field, h, pageHeader, srOnly, tableWrap } from "../lib/dom.js";

export function registryPage() {
  const query = h("input", { id: "registry-query", type: "search", autocomplete: "off", placeholder: "github, files, time" });
  const offline = h("input", { id: "registry-offline", type: "checkbox" });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Search");
  const box = errorBox();
  const notes = h("p", { class: "muted", id: "registry-notes" });
  const added = h("div", { id: "registry-added", class: "card", hidden: true });
  const tbody = h("tbody");

  const showAdded = (data) => {
    const server = data.server;
    const runs = server.url || [server.command, ...(server.args || [])].join(" ");
    added.replaceChildren(
      h("h2", {}, `Added ${server.name} (quarantined)`),
      h("p", {}, h("code", {}, runs)),
      ...(data.needs.length ? [h("p", {}, "Still needed before it can run:"), h("ul", {}, data.needs.map((n) => h("li", {}, n)))] : []),
      h("p", {}, h("a", { href: `#/server/${enc(server.name)}` }, `Review and approve ${server.name}`)));
    added.hidden = false;
  };

  const row = (server) => {
    const add = h("button", { type: "button", class: "btn small" }, "Add");
    add.addEventListener("click", async () => {
      const data = await busy(add, box, () => api("POST", "/api/v1/registry/add", { id: server.id }));
      if (data) showAdded(data);
    });
    return h("tr", { "data-registry-id": server.id },
      h("th", { scope: "row" }, h("code", {}, server.id)),
      h("td", {}, server.description),
      h("td", {}, [...server.packages, ...server.remotes].join(", ")),
      h("td", {}, server.source),
      h("td", {}, add));
  };

  const form = h("form", { class: "card", id: "registry-search", role: "search" },
    h("div", { class: "fields" },
      field("Search", query, "Words in a server's name or description."),
      field("Shipped list only", offline, "The reference servers that come with mcpproxy; no network.")),
    box, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = `q=${enc(query.value.trim())}${offline.checked ? "&offline=true" : ""}`;
    const data = await busy(submit, box, () => api("GET", `/api/v1/registry/search?${params}`));
    if (!data) return;
    notes.textContent = data.errors.length ? `Not reachable: ${data.errors.join("; ")}` : "";
    tbody.replaceChildren(...data.servers.map(row));
    if (!data.servers.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing found.")));
  });
  return h("section", {}, pageHeader("Add from registry"), form, added, notes,
    tableWrap(h("table", { class: "grid", id: "registry-results" },
      h("thead", {}, h("tr", {}, ["Server", "Description", "Runs", "From", srOnly("Actions")].map((t) => h("th", { scope: "col" }, t)))),
      tbody)));
}
