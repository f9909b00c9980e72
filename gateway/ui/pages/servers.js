// The server list (enable/disable, restart, remove, sign in) and the add form.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, field, h, pageHeader, showError, stateBadge, tableWrap } from "../lib/dom.js";
import { confirmAction } from "../lib/modal.js";
import { listen, refreshServers, state } from "../lib/state.js";
import { signInButton } from "./sign-in.js";

export function serversPage() {
  const tbody = h("tbody");
  const listBox = errorBox();
  const section = h(
    "section", {},
    pageHeader("Servers"),
    addServerForm(),
    h("h2", {}, "Configured servers"),
    listBox,
    tableWrap(h("table", { class: "grid", id: "servers" },
      h("thead", {}, h("tr", {}, ["Server", "Protocol", "State", "Tools", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
  );
  listen(() => {
    tbody.replaceChildren(...state.servers.map((s) => serverRow(s)));
    if (!state.servers.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No servers yet.")));
  });
  return section;
}

function serverRow(s) {
  const box = errorBox();
  const act = (label, method, path, cls) => {
    const button = h("button", { type: "button", class: `btn small ${cls || ""}` }, label);
    button.addEventListener("click", () => busy(button, box, async () => {
      await api(method, path);
      await refreshServers();
    }));
    return button;
  };
  const remove = h("button", { type: "button", class: "btn small danger" }, "Remove");
  remove.addEventListener("click", () =>
    confirmAction(`Remove ${s.name}?`, `The server "${s.name}" is stopped and deleted from mcp_config.json.`, "Remove", async () => {
      await api("DELETE", `/api/v1/servers/${enc(s.name)}`);
      await refreshServers();
    }));
  return h("tr", { "data-server": s.name },
    h("th", { scope: "row" }, h("a", { href: `#/server/${enc(s.name)}` }, s.name)),
    h("td", {}, s.protocol),
    h("td", {}, stateBadge(s.state), s.quarantined ? h("span", { class: "badge quarantined" }, "quarantined") : null,
      s.on_demand ? h("span", { class: "badge on-demand", title: "starts on its first call, stops when idle" }, "on demand") : null),
    h("td", { class: "num" }, s.tool_count),
    h("td", {},
      h("div", { class: "row-actions" },
        s.enabled
          ? act("Disable", "POST", `/api/v1/servers/${enc(s.name)}/disable`)
          : act("Enable", "POST", `/api/v1/servers/${enc(s.name)}/enable`),
        s.action === "login" ? signInButton(s, box) : null,
        act("Restart", "POST", `/api/v1/servers/${enc(s.name)}/restart`),
        remove),
      box));
}

// "NAME=value" (or "Name: value") lines as an object; a line without the separator is refused.
function parsePairs(text, separator, label) {
  const pairs = {};
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf(separator);
    const key = at > 0 ? line.slice(0, at).trim() : "";
    if (!key) throw new Error(`${label}, line ${i + 1}: expected NAME${separator === "=" ? "=" : ": "}value`);
    pairs[key] = line.slice(at + 1).trim();
  });
  return pairs;
}

function addServerForm() {
  const name = h("input", { id: "add-name", name: "name", required: true, pattern: "[A-Za-z0-9_.\\-]+", autocomplete: "off" });
  const kind = h("select", { id: "add-kind", name: "kind" }, h("option", { value: "stdio" }, "stdio (local command)"), h("option", { value: "http" }, "HTTP (remote URL)"));
  const command = h("input", { id: "add-command", name: "command", autocomplete: "off", placeholder: "npx" });
  const args = h("textarea", { id: "add-args", name: "args", rows: 3, wrap: "off", placeholder: "-y\n@modelcontextprotocol/server-filesystem\n/home/me/projects" });
  const workdir = h("input", { id: "add-workdir", name: "working_dir", autocomplete: "off" });
  const url = h("input", { id: "add-url", name: "url", type: "url", autocomplete: "off", placeholder: "https://api.example.com/mcp" });
  const quarantined = h("input", { id: "add-quarantined", type: "checkbox", name: "quarantined" });
  const env = h("textarea", { id: "add-env", name: "env", rows: 3, wrap: "off", spellcheck: "false", placeholder: "LOG_LEVEL=debug\nAPI_TOKEN=${keyring:my_token}" });
  const headers = h("textarea", { id: "add-headers", name: "headers", rows: 2, spellcheck: "false", placeholder: "Authorization: Bearer ${keyring:my_token}" });
  const stdioFields = h("div", { class: "fields" }, field("Command", command), field("Arguments", args, "One per line."),
    field("Working directory", workdir, "Optional."), field("Environment variables", env, "Optional: NAME=value, one per line."));
  const oauth = h("input", { id: "add-oauth", type: "checkbox", name: "oauth" });
  const clientId = h("input", { id: "add-client-id", name: "client_id", autocomplete: "off" });
  const scopes = h("input", { id: "add-scopes", name: "scopes", autocomplete: "off", placeholder: "repo user" });
  const oauthFields = h("div", { class: "fields", hidden: true },
    field("OAuth client ID", clientId, "Optional: without one the proxy registers itself."),
    field("Scopes", scopes, "Optional, separated by spaces."));
  oauth.addEventListener("change", () => { oauthFields.hidden = !oauth.checked; });
  const httpFields = h("div", { class: "http-fields", hidden: true },
    h("div", { class: "fields" }, field("URL", url), field("Headers", headers, "Optional: Name: value, one per line.")),
    h("div", { class: "check" }, oauth, h("label", { for: "add-oauth" }, "Sign in with OAuth (then press Sign in)")),
    oauthFields);
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Add server");
  const sync = () => {
    const http = kind.value === "http";
    stdioFields.hidden = http;
    httpFields.hidden = !http;
    command.required = !http;
    url.required = http;
  };
  kind.addEventListener("change", sync);
  sync();
  const form = h("form", { class: "card", id: "add-server", "aria-labelledby": "add-title" },
    h("h2", { id: "add-title" }, "Add a server"),
    h("div", { class: "fields" }, field("Name", name), field("Type", kind)),
    stdioFields, httpFields,
    h("div", { class: "check" }, quarantined, h("label", { for: "add-quarantined" }, "Add quarantined (review before it starts)")),
    box,
    h("div", { class: "actions" }, submit));
  form.addEventListener("input", () => showError(box, null)); // the error was about what is being changed
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    let pairs;
    try {
      pairs = kind.value === "http" ? parsePairs(headers.value, ":", "Headers") : parsePairs(env.value, "=", "Environment variables");
    } catch (error) {
      showError(box, error);
      return;
    }
    if (kind.value === "http") {
      body.protocol = "http";
      body.url = url.value.trim();
      if (Object.keys(pairs).length) body.headers = pairs;
      if (oauth.checked) {
        body.oauth = {};
        if (clientId.value.trim()) body.oauth.client_id = clientId.value.trim();
        const wanted = scopes.value.split(/\s+/).filter(Boolean);
        if (wanted.length) body.oauth.scopes = wanted;
      }
    } else {
      body.protocol = "stdio";
      body.command = command.value.trim();
      body.args = args.value.split("\n").map((a) => a.trim()).filter(Boolean);
      if (workdir.value.trim()) body.working_dir = workdir.value.trim();
      if (Object.keys(pairs).length) body.env = pairs;
    }
    if (quarantined.checked) body.quarantined = true;
    const done = await busy(submit, box, async () => {
      await api("POST", "/api/v1/servers", body);
      await refreshServers();
      return true;
    });
    if (done) {
      form.reset();
      oauthFields.hidden = true;
      sync();
    }
  });
  return form;
}
