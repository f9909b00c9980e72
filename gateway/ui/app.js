// mcpproxy Web UI: vanilla JS, no build step. Every API call sends X-API-Key; the key lives in
// sessionStorage only and is never put on screen. Data is rendered with DOM nodes (never innerHTML).
"use strict";

const KEY_STORAGE = "mcpproxy.apikey";
const MASK_RE = /^••••(.{0,2}) \((\d+) chars\)$/;
const REF_RE = /^\$\{(keyring|env):([^}]+)\}$/;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  servers: [],
  connected: false,
  source: null,
  timers: [],
  route: null,
  serversLoaded: false,
};

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ICONS = {
  pencil: "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
  trash: "M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z",
  lock: "M18 8h-1V6A5 5 0 0 0 7 6v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zm-6 9a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm3.1-9H8.9V6a3.1 3.1 0 0 1 6.2 0v2z",
  key: "M12.65 10A6 6 0 1 0 12.65 14H17v4h4v-4h2v-4H12.65zM7 14a2 2 0 1 1 0-4 2 2 0 0 1 0 4z",
};

function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

function iconButton(name, label, onclick, extra) {
  return h("button", { type: "button", class: "btn icon-btn", "aria-label": label, title: label, onclick, ...extra }, icon(name));
}

function errorBox() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

function showError(box, error) {
  if (!box) return;
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = error.message || String(error);
}

function stateBadge(value) {
  return h("span", { class: `badge state-${value}` }, value);
}

function fmtTime(epoch) {
  if (!epoch) return "";
  const date = new Date(epoch * 1000);
  return date.toLocaleString();
}

// Runs `action` with the button disabled; shows a failure in `box` (next to what caused it).
async function busy(button, box, action) {
  showError(box, null);
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(box, error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

async function api(method, path, body) {
  const headers = { "X-API-Key": apiKey(), Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(`The proxy did not answer (${error.message}).`, 0);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    throw new ApiError(`${method} ${path}: HTTP ${response.status}, not JSON`, response.status);
  }
  if (response.status === 401) {
    forgetKey("The API key was refused. Enter it again.");
    throw new ApiError(payload.error || "unauthorized", 401);
  }
  if (!response.ok || !payload.success) {
    const id = payload && payload.request_id ? ` (request ${payload.request_id})` : "";
    throw new ApiError(`${(payload && payload.error) || `HTTP ${response.status}`}${id}`, response.status);
  }
  return payload.data;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- key handling

function takeKeyFromUrl() {
  const url = new URL(window.location.href);
  const key = url.searchParams.get("apikey");
  if (key !== null) {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    url.searchParams.delete("apikey");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

let loginMessage = "";

function forgetKey(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  loginMessage = message || "";
  stopEvents();
  render();
}

function loginPage() {
  const input = h("input", {
    id: "apikey", type: "password", name: "apikey", autocomplete: "current-password", required: true,
    spellcheck: "false",
  });
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Open");
  const form = h(
    "form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, "Enter the proxy's API key (", h("code", {}, "api_key"), " in mcp_config.json). It is kept for this browser tab only."),
    h("label", { for: "apikey" }, "API key"),
    input,
    box,
    h("div", { class: "actions" }, submit),
  );
  if (loginMessage) showError(box, new Error(loginMessage));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    input.value = "";
    const ok = await busy(submit, box, () => api("GET", "/api/v1/status"));
    if (ok) {
      loginMessage = "";
      start();
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
    }
  });
  setTimeout(() => input.focus(), 0);
  return form;
}

// ---------------------------------------------------------------- live events

function startEvents() {
  stopEvents();
  const source = new EventSource(`/events?apikey=${enc(apiKey())}`);
  state.source = source;
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => setLive(false));
  source.addEventListener("servers.changed", (event) => {
    state.servers = JSON.parse(event.data).servers || [];
    state.serversLoaded = true;
    setLive(true);
    onServers();
  });
  source.addEventListener("tools.changed", (event) => {
    const data = JSON.parse(event.data);
    const server = state.servers.find((s) => s.name === data.server);
    if (server) server.tool_count = data.tool_count;
    onServers();
    document.dispatchEvent(new CustomEvent("mcpproxy:tools", { detail: data }));
  });
}

function stopEvents() {
  if (state.source) state.source.close();
  state.source = null;
  setLive(false);
}

function setLive(on) {
  state.connected = on;
  const live = document.getElementById("live");
  if (!live) return;
  live.hidden = !apiKey();
  live.textContent = on ? "● live" : "○ reconnecting…";
  live.className = on ? "live on" : "live off";
}

async function refreshServers() {
  const data = await api("GET", "/api/v1/servers");
  state.servers = data.servers;
  state.serversLoaded = true;
  onServers();
}

// Views subscribe to server-list changes; the current view's listeners are dropped on navigation.
let serverListeners = [];

function onServers() {
  const count = state.servers.filter((s) => s.quarantined).length;
  const badge = document.getElementById("quarantine-count");
  if (badge) {
    badge.hidden = count === 0;
    badge.textContent = String(count);
  }
  for (const listener of serverListeners) listener();
}

function listen(listener) {
  serverListeners.push(listener);
  listener();
}

// ---------------------------------------------------------------- modal dialogs

function openModal(title, body, buttons) {
  const dialog = document.getElementById("modal");
  dialog.replaceChildren(
    h("form", { method: "dialog", class: "modal-body" },
      h("h2", { id: "modal-title" }, title),
      body,
      h("div", { class: "actions" }, buttons)),
  );
  if (!dialog.open) dialog.showModal();
  return dialog;
}

function closeModal() {
  const dialog = document.getElementById("modal");
  if (dialog.open) dialog.close();
}

// Confirm with a real dialog; `action` runs on confirmation and its error stays in the dialog.
function confirmAction(title, message, confirmLabel, action) {
  const box = errorBox();
  const cancel = h("button", { type: "button", class: "btn", onclick: closeModal }, "Cancel");
  const confirm = h("button", { type: "button", class: "btn danger" }, confirmLabel);
  confirm.addEventListener("click", async () => {
    const done = await busy(confirm, box, async () => {
      await action();
      return true;
    });
    if (done) closeModal();
  });
  openModal(title, [h("p", {}, message), box], [cancel, confirm]);
  cancel.focus();
}

// ---------------------------------------------------------------- routing

function parseRoute() {
  const parts = (window.location.hash.replace(/^#\/?/, "") || "dashboard").split("/").map(decodeURIComponent);
  return { page: parts[0], args: parts.slice(1) };
}

function clearTimers() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
}

const PAGES = {
  dashboard: dashboardPage,
  servers: serversPage,
  server: serverPage,
  quarantine: quarantinePage,
  secrets: secretsPage,
  activity: activityPage,
};

function render() {
  clearTimers();
  serverListeners = [];
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const signout = document.getElementById("signout");
  if (!apiKey()) {
    nav.hidden = true;
    signout.hidden = true;
    document.getElementById("live").hidden = true;
    main.replaceChildren(loginPage());
    return;
  }
  nav.hidden = false;
  signout.hidden = false;
  const route = parseRoute();
  const page = PAGES[route.page] || notFoundPage;
  for (const link of nav.querySelectorAll("a")) {
    const current = link.dataset.page === route.page || (route.page === "server" && link.dataset.page === "servers");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren(page(...route.args));
  onServers();
}

function notFoundPage() {
  return h("section", {}, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/dashboard" }, "Back to the dashboard")));
}

function pageHeader(title, ...extra) {
  document.title = `${title} · mcpproxy`;
  return h("div", { class: "page-header" }, h("h1", {}, title), extra);
}

function tableWrap(table) {
  return h("div", { class: "table-wrap" }, table);
}

// ---------------------------------------------------------------- dashboard

function dashboardPage() {
  const totals = h("div", { class: "totals" });
  const tbody = h("tbody");
  const section = h(
    "section", {},
    pageHeader("Dashboard"),
    totals,
    h("h2", {}, "Servers"),
    tableWrap(h("table", { class: "grid", id: "health" },
      h("thead", {}, h("tr", {}, ["Server", "State", "Tools", "Restarts", "Last error"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
  );
  listen(() => {
    const servers = state.servers;
    const running = servers.filter((s) => s.state === "running").length;
    const failing = servers.filter((s) => ["backoff", "fatal", "failed", "error"].includes(s.state)).length;
    const tools = servers.reduce((sum, s) => sum + (s.tool_count || 0), 0);
    const quarantined = servers.filter((s) => s.quarantined).length;
    totals.replaceChildren(
      total("Servers", servers.length, "total-servers"),
      total("Running", running, "total-running"),
      total("Failing", failing, "total-failing", failing ? "warn" : ""),
      total("Tools", tools, "total-tools"),
      total("Quarantined", quarantined, "total-quarantined", quarantined ? "warn" : ""),
    );
    tbody.replaceChildren(
      ...servers.map((s) =>
        h("tr", { "data-server": s.name },
          h("th", { scope: "row" }, h("a", { href: `#/server/${enc(s.name)}` }, s.name)),
          h("td", { class: "cell-state" }, stateBadge(s.state), s.quarantined ? h("span", { class: "badge quarantined" }, "quarantined") : null,
            !s.enabled ? h("span", { class: "badge muted" }, "disabled") : null),
          h("td", { class: "num cell-tools" }, s.tool_count),
          h("td", { class: "num cell-restarts" }, s.restarts),
          h("td", { class: "cell-error" }, s.last_error ? h("span", { class: "error-text" }, s.last_error) : h("span", { class: "muted" }, "—")))),
    );
    if (!servers.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" },
        state.serversLoaded ? "No servers configured. " : "Loading…",
        state.serversLoaded ? h("a", { href: "#/servers" }, "Add one") : null)));
    }
  });
  return section;
}

function total(label, value, id, tone) {
  return h("div", { class: `total ${tone || ""}`, id }, h("span", { class: "total-value" }, value), h("span", { class: "total-label" }, label));
}

// ---------------------------------------------------------------- servers

function serversPage() {
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

// OAuth: the browser tab is opened on the click itself (a tab opened after an await is often
// blocked), then sent to the authorization URL once the proxy has it.
function signInButton(s, box, cls) {
  const button = h("button", { type: "button", class: `btn small primary sign-in ${cls || ""}`, "data-action": "login" }, "Sign in");
  button.addEventListener("click", () => {
    const tab = window.open("", "_blank");
    busy(button, box, async () => {
      let answer;
      try {
        answer = await api("POST", `/api/v1/servers/${enc(s.name)}/login`);
      } catch (error) {
        if (tab) tab.close();
        throw error;
      }
      const url = answer && answer.authorization_url;
      if (!url) {
        if (tab) tab.close();
      } else if (tab) {
        tab.opener = null;
        tab.location.href = url;
      }
      if (url && box) {
        box.hidden = false;
        box.classList.add("notice");
        box.replaceChildren(`Finish signing in to ${s.name} in the browser tab. `,
          h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "sign-in-link" }, "Open the sign-in page"));
      }
      await refreshServers();
    });
  });
  return button;
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
    h("td", {}, stateBadge(s.state), s.quarantined ? h("span", { class: "badge quarantined" }, "quarantined") : null),
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

function field(label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

function addServerForm() {
  const name = h("input", { id: "add-name", name: "name", required: true, pattern: "[A-Za-z0-9_.\\-]+", autocomplete: "off" });
  const kind = h("select", { id: "add-kind", name: "kind" }, h("option", { value: "stdio" }, "stdio (local command)"), h("option", { value: "http" }, "HTTP (remote URL)"));
  const command = h("input", { id: "add-command", name: "command", autocomplete: "off", placeholder: "npx" });
  const args = h("textarea", { id: "add-args", name: "args", rows: 3, placeholder: "-y\n@modelcontextprotocol/server-filesystem\n/home/me/projects" });
  const workdir = h("input", { id: "add-workdir", name: "working_dir", autocomplete: "off" });
  const url = h("input", { id: "add-url", name: "url", type: "url", autocomplete: "off", placeholder: "https://api.example.com/mcp" });
  const quarantined = h("input", { id: "add-quarantined", type: "checkbox", name: "quarantined" });
  const stdioFields = h("div", { class: "fields" }, field("Command", command), field("Arguments", args, "One per line."), field("Working directory", workdir, "Optional."));
  const oauth = h("input", { id: "add-oauth", type: "checkbox", name: "oauth" });
  const clientId = h("input", { id: "add-client-id", name: "client_id", autocomplete: "off" });
  const scopes = h("input", { id: "add-scopes", name: "scopes", autocomplete: "off", placeholder: "repo user" });
  const oauthFields = h("div", { class: "fields", hidden: true },
    field("OAuth client ID", clientId, "Optional: without one the proxy registers itself."),
    field("Scopes", scopes, "Optional, separated by spaces."));
  oauth.addEventListener("change", () => { oauthFields.hidden = !oauth.checked; });
  const httpFields = h("div", { class: "http-fields", hidden: true },
    h("div", { class: "fields" }, field("URL", url)),
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
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    if (kind.value === "http") {
      body.protocol = "http";
      body.url = url.value.trim();
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

// ---------------------------------------------------------------- server detail

const TABS = [["config", "Configuration"], ["tools", "Tools"], ["prompts", "Prompts"], ["resources", "Resources"], ["logs", "Logs"]];

function serverPage(name, tab) {
  tab = TABS.some(([id]) => id === tab) ? tab : "config";
  const summary = h("div", { class: "summary" });
  const panel = h("div", { class: "tab-panel", role: "tabpanel", id: `panel-${tab}`, "aria-labelledby": `tab-${tab}` });
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Server detail" },
    TABS.map(([id, label]) => h("a", {
      href: `#/server/${enc(name)}/${id}`, role: "tab", id: `tab-${id}`,
      "aria-selected": id === tab ? "true" : "false", class: id === tab ? "tab active" : "tab",
    }, label)));
  const signInBox = errorBox();
  const section = h("section", {}, pageHeader(name, h("a", { href: "#/servers", class: "back" }, "← All servers")), summary, tabs, panel);
  listen(() => {
    const s = state.servers.find((x) => x.name === name);
    if (!s) {
      summary.replaceChildren(state.serversLoaded ? h("p", { class: "error" }, `No server named "${name}".`) : h("p", { class: "muted" }, "Loading…"));
      return;
    }
    const where = s.url ? s.url : [s.command, ...(s.args || [])].join(" ");
    summary.replaceChildren(
      h("dl", { class: "facts" },
        fact("State", [stateBadge(s.state), s.quarantined ? h("span", { class: "badge quarantined" }, "quarantined") : null]),
        fact("Protocol", s.protocol),
        fact(s.url ? "URL" : "Command", h("code", {}, where)),
        fact("Tools", s.tool_count),
        fact("Restarts", s.restarts),
        s.oauth ? fact("Sign-in", s.signed_in ? "signed in (OAuth)" : s.action === "login" ? [h("span", { class: "error-text" }, "needed "), signInButton(s, signInBox)] : "not signed in") : null,
        s.last_error ? fact("Last error", h("span", { class: "error-text" }, s.last_error)) : null),
      signInBox,
    );
  });
  if (tab === "config") {
    configTab(name, panel);
    // Changes made elsewhere (CLI, another tab, a hand edit) show up live, unless an edit is open here.
    listen(() => {
      const s = state.servers.find((x) => x.name === name);
      if (!s || !panel.dataset.sig || panel.dataset.sig === configSig(s)) return;
      if (panel.querySelector("form") || document.getElementById("modal").open) return;
      configTab(name, panel, s);
    });
  }
  else if (tab === "tools") toolsTab(name, panel);
  else if (tab === "prompts") promptsTab(name, panel);
  else if (tab === "resources") resourcesTab(name, panel);
  else logsTab(name, panel);
  return section;
}

function fact(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

// `known` is the server as a change just answered it (the registry may not have caught up yet).
async function configTab(name, panel, known) {
  const box = errorBox();
  if (!known) panel.replaceChildren(h("p", { class: "muted" }, "Loading…"), box);
  try {
    const server = known || (await api("GET", `/api/v1/servers/${enc(name)}`)).server;
    panel.dataset.sig = configSig(server);
    const cards = [kvCard(name, "header", "Headers", "Add header", server.headers || {}, panel)];
    cards.push(kvCard(name, "env", "Environment Variables", "Add variable", server.env || {}, panel));
    panel.replaceChildren(h("div", { class: "cards" }, cards));
  } catch (error) {
    panel.replaceChildren(box);
    showError(box, error);
  }
}

function configSig(server) {
  return JSON.stringify([server.headers || {}, server.env || {}]);
}

// A value as the API shows it: a reference chip, a masked literal, or plain text. Never unmasked.
function valueView(value) {
  const ref = REF_RE.exec(value);
  if (ref) {
    const label = ref[1] === "keyring" ? "secret" : "env";
    return h("span", { class: `chip chip-${ref[1]}`, title: value }, icon(ref[1] === "keyring" ? "key" : "lock"),
      h("span", { class: "chip-kind" }, label), h("span", { class: "chip-name" }, ref[2]));
  }
  if (MASK_RE.test(value)) return h("span", { class: "masked", title: "Hidden value" }, value);
  return h("code", { class: "plain" }, value);
}

function kvCard(server, scope, title, addLabel, values, panel) {
  const field = scope === "header" ? "headers" : "env";
  const slug = scope === "header" ? "headers" : "env";
  const tbody = h("tbody");
  const cardBox = errorBox();
  const reload = (data) => configTab(server, panel, data && data.server);
  const patch = (key, value) => api("PATCH", `/api/v1/servers/${enc(server)}`, { [field]: { [key]: value } });

  const row = (key, value) => {
    const valueCell = h("td", { class: "value" }, valueView(value));
    const rowBox = errorBox();
    const isRef = REF_RE.test(value);
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
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
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

async function toolsTab(name, panel) {
  const box = errorBox();
  const load = async () => {
    try {
      const data = await api("GET", `/api/v1/servers/${enc(name)}/tools`);
      draw(data.tools);
    } catch (error) {
      panel.replaceChildren(box);
      showError(box, error);
    }
  };
  const draw = (tools) => {
    const held = tools.filter((t) => t.approval !== "approved");
    const allBox = errorBox();
    const approveAll = h("button", { type: "button", class: "btn primary small", id: "approve-all" }, `Approve all (${held.length})`);
    approveAll.addEventListener("click", () => busy(approveAll, allBox, async () => {
      await api("POST", `/api/v1/servers/${enc(name)}/tools/approve`, {});
      await load();
    }));
    const rows = tools.map((t) => {
      const rowBox = errorBox();
      let approve = null;
      if (t.approval !== "approved") {
        approve = h("button", { type: "button", class: "btn small", "aria-label": `Approve ${t.name}` }, "Approve");
        approve.addEventListener("click", () => busy(approve, rowBox, async () => {
          await api("POST", `/api/v1/servers/${enc(name)}/tools/approve`, { tools: [t.name] });
          await load();
        }));
      }
      return h("tr", { "data-tool": t.name },
        h("th", { scope: "row" }, h("code", {}, t.name)),
        h("td", {}, h("span", { class: `badge approval-${t.approval}` }, t.approval)),
        h("td", {}, t.description || h("span", { class: "muted" }, "—"),
          t.diff ? h("details", { class: "diff", open: true }, h("summary", {}, "What changed"), diffView(t.diff)) : null),
        h("td", {}, approve, rowBox));
    });
    panel.replaceChildren(
      h("div", { class: "card-head" }, h("h2", {}, `${tools.length} tool${tools.length === 1 ? "" : "s"}`), held.length ? approveAll : null),
      allBox,
      tools.length
        ? tableWrap(h("table", { class: "grid", id: "tools" },
          h("thead", {}, h("tr", {}, ["Tool", "Approval", "Description", h("span", { class: "sr-only" }, "Actions")].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No tools (yet). A stopped or quarantined server has none."),
    );
  };
  panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  await load();
  const onTools = (event) => {
    if (event.detail.server === name && document.body.contains(panel)) load();
    else if (!document.body.contains(panel)) document.removeEventListener("mcpproxy:tools", onTools);
  };
  document.addEventListener("mcpproxy:tools", onTools);
}

// Prompts are pinned like tools: a changed or new one is held from agents until approved here.
async function promptsTab(name, panel) {
  const box = errorBox();
  const approveRoute = `/api/v1/servers/${enc(name)}/prompts/approve`;
  const load = async () => {
    try {
      draw((await api("GET", `/api/v1/servers/${enc(name)}/prompts`)).prompts);
    } catch (error) {
      panel.replaceChildren(box);
      showError(box, error);
    }
  };
  const approveButton = (label, id, body, rowBox) => {
    const button = h("button", { type: "button", class: id ? "btn primary small" : "btn small", id, "aria-label": id ? null : label }, id ? label : "Approve");
    button.addEventListener("click", () => busy(button, rowBox, async () => {
      await api("POST", approveRoute, body);
      await load();
    }));
    return button;
  };
  const argumentsView = (args) => (args && args.length)
    ? h("ul", { class: "args" }, args.map((a) => h("li", {}, h("code", {}, a.name), a.required ? h("span", { class: "muted" }, " (required)") : null,
      a.description ? ` — ${a.description}` : null)))
    : h("span", { class: "muted" }, "—");
  const draw = (prompts) => {
    const held = prompts.filter((p) => p.approval !== "approved");
    const allBox = errorBox();
    const rows = prompts.map((p) => {
      const rowBox = errorBox();
      const approve = p.approval === "approved" ? null : approveButton(`Approve ${p.name}`, null, { prompts: [p.name] }, rowBox);
      return h("tr", { "data-prompt": p.name },
        h("th", { scope: "row" }, h("code", {}, p.name), h("div", { class: "muted" }, h("code", {}, p.mcp_name))),
        h("td", {}, h("span", { class: `badge approval-${p.approval}` }, p.approval)),
        h("td", {}, p.description || h("span", { class: "muted" }, "—"),
          p.diff ? h("details", { class: "diff", open: true }, h("summary", {}, "What changed"), diffView(p.diff)) : null),
        h("td", {}, argumentsView(p.arguments)),
        h("td", {}, approve, rowBox));
    });
    panel.replaceChildren(
      h("div", { class: "card-head" }, h("h2", {}, `${prompts.length} prompt${prompts.length === 1 ? "" : "s"}`),
        held.length ? approveButton(`Approve all (${held.length})`, "approve-all-prompts", {}, allBox) : null),
      allBox,
      prompts.length
        ? tableWrap(h("table", { class: "grid", id: "prompts" },
          h("thead", {}, h("tr", {}, ["Prompt", "Approval", "Description", "Arguments", h("span", { class: "sr-only" }, "Actions")].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No prompts. A stopped or quarantined server shows none."),
    );
  };
  panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  await load();
}

async function resourcesTab(name, panel) {
  const box = errorBox();
  panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let data;
  try {
    data = await api("GET", `/api/v1/servers/${enc(name)}/resources`);
  } catch (error) {
    panel.replaceChildren(box);
    showError(box, error);
    return;
  }
  const dash = () => h("span", { class: "muted" }, "—");
  const table = (id, head, rows) => tableWrap(h("table", { class: "grid", id },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)));
  const resources = data.resources || [];
  const templates = data.templates || [];
  // replaceChildren, unlike h(), would write a null as the text "null".
  panel.replaceChildren(...[
    h("div", { class: "card-head" }, h("h2", {}, `${resources.length} resource${resources.length === 1 ? "" : "s"}`)),
    resources.length
      ? table("resources", ["Name", "URI", "MIME type", "Description"], resources.map((r) =>
        h("tr", { "data-uri": r.uri },
          h("th", { scope: "row" }, r.title || r.name),
          h("td", {}, h("code", {}, r.uri), h("div", { class: "muted" }, h("code", { title: "The URI MCP clients read it by" }, r.mcp_uri))),
          h("td", {}, r.mimeType ? h("code", {}, r.mimeType) : dash()),
          h("td", {}, r.description || dash()))))
      : h("p", { class: "muted" }, "No resources. A stopped or quarantined server shows none."),
    templates.length ? h("div", { class: "card-head" }, h("h2", {}, `${templates.length} template${templates.length === 1 ? "" : "s"}`)) : null,
    templates.length
      ? table("templates", ["Name", "URI template", "MIME type", "Description"], templates.map((t) =>
        h("tr", { "data-template": t.uriTemplate },
          h("th", { scope: "row" }, t.title || t.name),
          h("td", {}, h("code", {}, t.uriTemplate), h("div", { class: "muted" }, h("code", {}, t.mcp_uri_template))),
          h("td", {}, t.mimeType ? h("code", {}, t.mimeType) : dash()),
          h("td", {}, t.description || dash()))))
      : null,
  ].filter(Boolean));
}

function diffView(diff) {
  return h("pre", { class: "diff-text" }, diff.split("\n").map((line) => {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
    return h("span", { class: cls }, `${line}\n`);
  }));
}

function logsTab(name, panel) {
  const pre = h("pre", { class: "logs", id: "log-lines", tabindex: "0", "aria-label": "Log lines" });
  const box = errorBox();
  const follow = h("input", { type: "checkbox", id: "follow" });
  const refresh = h("button", { type: "button", class: "btn small" }, "Refresh");
  let timer = null;
  const load = async () => {
    try {
      const data = await api("GET", `/api/v1/servers/${enc(name)}/logs?tail=200`);
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 20;
      pre.textContent = data.lines.length ? data.lines.join("\n") : "(no log lines yet)";
      if (atBottom || follow.checked) pre.scrollTop = pre.scrollHeight;
      showError(box, null);
    } catch (error) {
      showError(box, error);
    }
  };
  refresh.addEventListener("click", load);
  follow.addEventListener("change", () => {
    if (timer) {
      clearInterval(timer);
      state.timers = state.timers.filter((t) => t !== timer);
      timer = null;
    }
    if (follow.checked) {
      timer = setInterval(load, 2000);
      state.timers.push(timer);
      load();
    }
  });
  panel.replaceChildren(
    h("div", { class: "card-head" }, h("h2", {}, "Last 200 lines"),
      h("div", { class: "row-actions" }, h("span", { class: "check" }, follow, h("label", { for: "follow" }, "Follow (every 2 s)")), refresh)),
    box, pre);
  load();
}

// ---------------------------------------------------------------- quarantine

function quarantinePage() {
  const list = h("div", { class: "cards", id: "quarantine-list" });
  const section = h("section", {},
    pageHeader("Quarantine"),
    h("p", { class: "muted" }, "Servers added by an AI client or by hand without a review, and servers whose launch settings an AI client wants to change, do not run until you approve them here. Check what each would run."),
    list);
  listen(() => {
    const held = state.servers.filter((s) => s.quarantined);
    if (!held.length) {
      list.replaceChildren(h("p", { class: "muted empty" }, state.serversLoaded ? "Nothing is quarantined." : "Loading…"));
      return;
    }
    list.replaceChildren(...held.map((s) => {
      const box = errorBox();
      const pending = s.pending_change;
      const approve = h("button", { type: "button", class: "btn primary", "aria-label": `Approve ${s.name}` },
        pending ? "Approve change" : "Approve");
      approve.addEventListener("click", () => busy(approve, box, async () => {
        // Name the change reviewed here, so one proposed since this page drew is refused, not approved unseen.
        await api("POST", `/api/v1/servers/${enc(s.name)}/unquarantine`, pending ? { pending_change: pending.id } : undefined);
        await refreshServers();
      }));
      const buttons = [approve];
      if (pending) {
        const reject = h("button", { type: "button", class: "btn", "aria-label": `Reject change to ${s.name}` }, "Reject change");
        reject.addEventListener("click", () => busy(reject, box, async () => {
          await api("POST", `/api/v1/servers/${enc(s.name)}/reject`);
          await refreshServers();
        }));
        buttons.push(reject);
      }
      const facts = [fact("Protocol", s.protocol)];
      if (s.url) facts.push(fact("URL", h("code", {}, s.url)));
      if (s.command) facts.push(fact("Command", h("code", { class: "command" }, [s.command, ...(s.args || [])].join(" "))));
      if (s.working_dir) facts.push(fact("Working directory", h("code", {}, s.working_dir)));
      const env = Object.keys(s.env || {});
      const headers = Object.keys(s.headers || {});
      if (env.length) facts.push(fact("Environment", env.join(", ")));
      if (headers.length) facts.push(fact("Headers", headers.join(", ")));
      const change = pending
        ? h("div", { class: "pending-change" },
          h("p", {}, `An AI client proposed a change to ${(pending.fields || []).join(", ")} (${pending.proposed_at}). Nothing new runs until you approve it.`),
          diffView(pending.diff))
        : null;
      return h("article", { class: "card", "data-server": s.name },
        h("div", { class: "card-head" }, h("h2", {}, h("a", { href: `#/server/${enc(s.name)}` }, s.name)), h("div", { class: "actions" }, ...buttons)),
        change, h("dl", { class: "facts" }, facts), box);
    }));
  });
  return section;
}

// ---------------------------------------------------------------- secrets

function secretsPage() {
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
      h("thead", {}, h("tr", {}, ["Name", "Status", "Used by", h("span", { class: "sr-only" }, "Actions")].map((t) => h("th", { scope: "col" }, t)))),
      tbody)));
}

// ---------------------------------------------------------------- activity

const PAGE_SIZE = 50;

function activityPage() {
  const server = h("select", { id: "filter-server" }, h("option", { value: "" }, "All servers"));
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "Any status"),
    ["ok", "error", "blocked", "timeout", "unavailable"].map((s) => h("option", { value: s }, s)));
  const tbody = h("tbody");
  const box = errorBox();
  const pager = h("div", { class: "pager" });
  let offset = 0;
  let latest = 0;
  const load = async () => {
    const ticket = ++latest;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
    if (server.value) query.set("server", server.value);
    if (status.value) query.set("status", status.value);
    try {
      const data = await api("GET", `/api/v1/activity?${query}`);
      if (ticket !== latest) return; // a newer filter's answer wins, whatever order they arrive in
      showError(box, null);
      tbody.replaceChildren(...data.records.map((r) => h("tr", { "data-id": r.id },
        h("td", { class: "nowrap" }, fmtTime(r.time)),
        h("td", {}, r.server),
        h("td", {}, h("code", {}, r.tool)),
        h("td", {}, h("span", { class: `badge status-${r.status}` }, r.status)),
        h("td", { class: "num" }, r.duration_ms === null ? "" : `${Number(r.duration_ms).toFixed(1)} ms`),
        h("td", {}, r.surface, r.client_name ? h("span", { class: "muted" }, ` · ${r.client_name}`) : null),
        h("td", { class: "error-text" }, r.error || ""))));
      if (!data.records.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No tool calls match.")));
      const prev = h("button", { type: "button", class: "btn small", disabled: offset === 0 }, "← Newer");
      const next = h("button", { type: "button", class: "btn small", disabled: offset + PAGE_SIZE >= data.total }, "Older →");
      prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE_SIZE); load(); });
      next.addEventListener("click", () => { offset += PAGE_SIZE; load(); });
      const last = Math.min(offset + PAGE_SIZE, data.total);
      pager.replaceChildren(prev, h("span", { class: "muted" }, data.total ? `${offset + 1}–${last} of ${data.total}` : "0 records"), next);
    } catch (error) {
      showError(box, error);
    }
  };
  for (const select of [server, status]) select.addEventListener("change", () => { offset = 0; load(); });
  listen(() => {
    const names = state.servers.map((s) => s.name);
    const current = server.value;
    const have = [...server.options].slice(1).map((o) => o.value);
    if (names.join("\n") !== have.join("\n")) {
      server.replaceChildren(h("option", { value: "" }, "All servers"), ...names.map((n) => h("option", { value: n }, n)));
      server.value = names.includes(current) ? current : "";
    }
  });
  const refresh = h("button", { type: "button", class: "btn small", onclick: load }, "Refresh");
  load();
  return h("section", {}, pageHeader("Activity"),
    h("div", { class: "filters", role: "search" },
      field("Server", server), field("Status", status), refresh),
    box,
    tableWrap(h("table", { class: "grid", id: "activity" },
      h("thead", {}, h("tr", {}, ["Time", "Server", "Tool", "Status", "Duration", "Surface", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    pager);
}

// ---------------------------------------------------------------- start

function start() {
  render();
  startEvents();
  refreshServers().catch(() => {});
}

document.addEventListener("DOMContentLoaded", () => {
  takeKeyFromUrl();
  document.getElementById("signout").addEventListener("click", () => forgetKey(""));
  window.addEventListener("hashchange", () => {
    closeModal();
    render();
    document.getElementById("main").focus({ preventScroll: true });
  });
  if (apiKey()) start();
  else render();
});
