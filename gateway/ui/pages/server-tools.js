// Server -> Tools: each tool's approval (a changed one with its diff); approve one or all.
import { api, enc } from "../lib/api.js";
import { busy, diffView, errorBox, h, plural, showError, srOnly, tableWrap } from "../lib/dom.js";

export async function toolsTab(name, panel) {
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
      h("div", { class: "card-head" }, h("h2", {}, plural(tools.length, "tool")), held.length ? approveAll : null),
      allBox,
      tools.length
        ? tableWrap(h("table", { class: "grid", id: "tools" },
          h("thead", {}, h("tr", {}, ["Tool", "Approval", "Description", srOnly("Actions")].map((t) => h("th", { scope: "col" }, t)))),
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
