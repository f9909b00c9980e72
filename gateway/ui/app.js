// mcpproxy Web UI: the entry module. Vanilla ES modules, no build step: lib/ holds what every page
// shares, pages/ one module per page. Every API call sends X-API-Key; the key lives in
// sessionStorage only and is never put on screen.
import { apiKey, enc, onUnauthorized, setApiKey } from "./lib/api.js";
import { h } from "./lib/dom.js";
import { closeModal } from "./lib/modal.js";
import { leavePage, onServers, refreshServers, setServers, state } from "./lib/state.js";
import { activityPage } from "./pages/activity.js";
import { activityRecordPage } from "./pages/activity-record.js";
import { clientsPage } from "./pages/clients.js";
import { dashboardPage } from "./pages/dashboard.js";
import { loginPage } from "./pages/login.js";
import { profilesPage } from "./pages/profiles.js";
import { quarantinePage } from "./pages/quarantine.js";
import { registryPage } from "./pages/registry.js";
import { secretsPage } from "./pages/secrets.js";
import { serverPage } from "./pages/server.js";
import { serversPage } from "./pages/servers.js";

const PAGES = {
  dashboard: dashboardPage,
  servers: serversPage,
  server: serverPage,
  quarantine: quarantinePage,
  registry: registryPage,
  secrets: secretsPage,
  clients: clientsPage,
  profiles: profilesPage,
  activity: (...args) => (args.length ? activityRecordPage(...args) : activityPage()),
};

let source = null;
let loginMessage = "";

// ---------------------------------------------------------------- key handling

function takeKeyFromUrl() {
  const url = new URL(window.location.href);
  const key = url.searchParams.get("apikey");
  if (key !== null) {
    if (key) setApiKey(key);
    url.searchParams.delete("apikey");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

function forgetKey(message) {
  setApiKey("");
  loginMessage = message || "";
  stopEvents();
  render();
}

// ---------------------------------------------------------------- live events

function startEvents() {
  stopEvents();
  source = new EventSource(`/events?apikey=${enc(apiKey())}`);
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => setLive(false));
  source.addEventListener("servers.changed", (event) => {
    setLive(true);
    setServers(JSON.parse(event.data).servers);
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
  if (source) source.close();
  source = null;
  setLive(false);
}

function setLive(on) {
  const live = document.getElementById("live");
  if (!live) return;
  live.hidden = !apiKey();
  live.textContent = on ? "● live" : "○ reconnecting…";
  live.className = on ? "live on" : "live off";
}

// ---------------------------------------------------------------- routing

function parseRoute() {
  const parts = (window.location.hash.replace(/^#\/?/, "") || "dashboard").split("/").map(decodeURIComponent);
  return { page: parts[0], args: parts.slice(1) };
}

function notFoundPage() {
  return h("section", {}, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/dashboard" }, "Back to the dashboard")));
}

function render() {
  leavePage();
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const signout = document.getElementById("signout");
  if (!apiKey()) {
    nav.hidden = true;
    signout.hidden = true;
    document.getElementById("live").hidden = true;
    main.replaceChildren(loginPage(loginMessage, start));
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

function start() {
  loginMessage = "";
  render();
  startEvents();
  refreshServers().catch(() => {});
}

onUnauthorized(forgetKey);

// A module runs after the document is parsed (like a deferred script).
takeKeyFromUrl();
document.getElementById("signout").addEventListener("click", () => forgetKey(""));
window.addEventListener("hashchange", () => {
  closeModal();
  render();
  document.getElementById("main").focus({ preventScroll: true });
});
if (apiKey()) start();
else render();
