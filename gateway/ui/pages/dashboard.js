// Every server's state, tools, restarts and last error, with totals; live from /events.
import { enc } from "../lib/api.js";
import { dash, h, pageHeader, stateBadge, tableWrap } from "../lib/dom.js";
import { listen, state } from "../lib/state.js";

const FAILING = ["backoff", "fatal", "failed", "error"];

function total(label, value, id, tone) {
  return h("div", { class: `total ${tone || ""}`, id }, h("span", { class: "total-value" }, value), h("span", { class: "total-label" }, label));
}

function serverRow(s) {
  // data-label: in a narrow window each row is a card and the cells name themselves.
  return h("tr", { "data-server": s.name },
    h("th", { scope: "row" }, h("a", { href: `#/server/${enc(s.name)}` }, s.name)),
    h("td", { class: "cell-state", "data-label": "State" }, stateBadge(s.state),
      s.quarantined ? h("span", { class: "badge quarantined" }, "quarantined") : null,
      !s.enabled ? h("span", { class: "badge muted" }, "disabled") : null,
      s.on_demand ? h("span", { class: "badge on-demand", title: "starts on its first call, stops when idle" }, "on demand") : null,
      s.draining ? h("span", { class: "badge muted", title: "finishing its calls before it stops" }, "draining") : null),
    h("td", { class: "num cell-tools", "data-label": "Tools" }, s.tool_count),
    h("td", { class: "num cell-restarts", "data-label": "Restarts" }, s.restarts),
    h("td", { class: "cell-error", "data-label": "Last error" }, s.last_error ? h("span", { class: "error-text" }, s.last_error) : dash()));
}

export function dashboardPage() {
  const totals = h("div", { class: "totals" });
  const tbody = h("tbody");
  const section = h(
    "section", {},
    pageHeader("Dashboard"),
    totals,
    h("h2", {}, "Servers"),
    tableWrap(h("table", { class: "grid stack", id: "health" },
      h("thead", {}, h("tr", {}, ["Server", "State", "Tools", "Restarts", "Last error"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
  );
  listen(() => {
    const servers = state.servers;
    const running = servers.filter((s) => s.state === "running").length;
    const failing = servers.filter((s) => FAILING.includes(s.state)).length;
    const tools = servers.reduce((sum, s) => sum + (s.tool_count || 0), 0);
    const quarantined = servers.filter((s) => s.quarantined).length;
    totals.replaceChildren(
      total("Servers", servers.length, "total-servers"),
      total("Running", running, "total-running"),
      total("Failing", failing, "total-failing", failing ? "warn" : ""),
      total("Tools", tools, "total-tools"),
      total("Quarantined", quarantined, "total-quarantined", quarantined ? "warn" : ""),
    );
    tbody.replaceChildren(...servers.map(serverRow));
    if (!servers.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" },
        state.serversLoaded ? "No servers configured. " : "Loading…",
        state.serversLoaded ? h("a", { href: "#/servers" }, "Add one") : null)));
    }
  });
  return section;
}
