// Recorded tool calls, filtered by server and status; each one's record in full.
import { api, enc } from "../lib/api.js";
import { errorBox, field, fmtTime, h, pageHeader, showError, tableWrap } from "../lib/dom.js";
import { listen, state } from "../lib/state.js";
import { parseResult, resultErrorText } from "../lib/tool-result.js";

const PAGE_SIZE = 50;
const STATUSES = ["ok", "error", "blocked", "timeout", "unavailable"];

export function activityPage() {
  const server = h("select", { id: "filter-server" }, h("option", { value: "" }, "All servers"));
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s }, s)));
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
        h("td", { class: "nowrap" }, h("a", { href: `#/activity/${enc(r.id)}`, title: "The whole record" }, fmtTime(r.time))),
        h("td", { "data-label": "Server" }, r.server),
        h("td", { "data-label": "Tool" }, h("code", {}, r.tool)),
        h("td", { "data-label": "Status" }, h("span", { class: `badge status-${r.status}` }, r.status)),
        h("td", { class: "num", "data-label": "Duration" }, r.duration_ms === null ? "" : `${Number(r.duration_ms).toFixed(1)} ms`),
        h("td", { "data-label": "Surface" }, r.surface, r.client_name && r.surface !== "ui" ? h("span", { class: "muted" }, ` · ${r.client_name}`) : null),
        // A tool that ran and failed has no proxy error: what it said is in its isError result.
        h("td", { class: "error-text cell-error", "data-label": "Error" }, r.error || resultErrorText(parseResult(r.result))))));
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
    tableWrap(h("table", { class: "grid stack", id: "activity" },
      h("thead", {}, h("tr", {}, ["Time", "Server", "Tool", "Status", "Duration", "Surface", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    pager);
}
