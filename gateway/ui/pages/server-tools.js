// Server -> Tools: each tool's tier (the call_tool_* variant it requires) and where the tier came from,
// with an override of it (tool_tiers in the config); approval (a changed one with its diff),
// annotations and input schema; approve one or all; try one.
import { api, enc } from "../lib/api.js";
import { busy, dash, diffView, errorBox, grid, h, plural, showError, srOnly } from "../lib/dom.js";
import { prettyJson } from "../lib/tool-result.js";
import { tryPanel } from "./try-tool.js";

const TIERS = {
  call_tool_read: ["read", "Reads only: agents call it with call_tool_read."],
  call_tool_write: ["write", "Changes something: agents call it with call_tool_write."],
  call_tool_destructive: ["destructive", "Destructive: agents must call it with call_tool_destructive."],
};

// MCP's ToolAnnotations hints, as the words a person would use.
const HINTS = [
  ["readOnlyHint", "read-only", "changes something", "Does not modify its environment."],
  ["destructiveHint", "destructive", "not destructive", "May perform destructive updates."],
  ["idempotentHint", "idempotent", "not idempotent", "Calling it again with the same arguments has no further effect."],
  ["openWorldHint", "open world", "closed world", "Interacts with an open world of external entities."],
];

// Where a tool's tier came from (tier_source, issue 21).
const SOURCES = {
  annotations: "Tier from its annotations.",
  mcp_default: "It has no annotations, so it is destructive by the MCP defaults; if it only reads, say so with tool_tiers in the config.",
  config: "Tier set by tool_tiers in the config.",
};
const SOURCE_LABELS = { annotations: "from annotations", mcp_default: "MCP default", config: "tool_tiers" };
const TIER_NAMES = ["read", "write", "destructive"];

function tierBadge(tool) {
  const [label, title] = TIERS[tool.call_with] || ["?", "unknown"];
  const source = SOURCES[tool.tier_source];
  return h("span", { class: `badge tier tier-${label}`, title: source ? `${title} ${source}` : title }, label);
}

// Override the tool's tier with its own `server:tool` entry in tool_tiers, or drop that entry so the
// tier comes from its annotations (or from a glob entry that matches it) again.
function tierOverride(server, tool, overrides, box, reload) {
  const pattern = `${server}:${tool.name}`;
  const own = overrides[pattern] || "";
  const inherited = !own && tool.tier_source === "config";
  const select = h("select", { class: "tier-override", "data-tier-override": tool.name, "aria-label": `Tier override for ${tool.name}` },
    h("option", { value: "" }, inherited ? "from a tool_tiers glob" : "from annotations"),
    TIER_NAMES.map((tier) => h("option", { value: tier, selected: tier === own }, `override: ${tier}`)));
  select.addEventListener("change", async () => {
    const path = `/api/v1/tool-tiers/${enc(pattern)}`;
    const done = await busy(select, box, async () => {
      if (select.value) await api("PUT", path, { tier: select.value });
      else await api("DELETE", path);
      return true;
    });
    if (done) await reload();
    else select.value = own;
  });
  return select;
}

function annotationsView(annotations) {
  const hints = HINTS.filter(([key]) => typeof (annotations || {})[key] === "boolean");
  if (!hints.length) return h("span", { class: "muted annotations" }, "no annotations");
  return h("span", { class: "annotations" }, hints.map(([key, yes, no, title]) =>
    h("span", { class: `hint ${annotations[key] ? "on" : "off"}`, title: `${key}: ${annotations[key]} (${title})` }, annotations[key] ? yes : no)));
}

function schemaView(label, schema, cls) {
  return h("details", { class: cls }, h("summary", {}, label), h("pre", { class: "schema" }, prettyJson(schema)));
}

export async function toolsTab(name, panel) {
  const box = errorBox();
  const tryHolder = h("div", { id: "try-holder" });
  let opened = null;
  const closeTry = () => {
    const trigger = opened && panel.querySelector(`button[data-try="${CSS.escape(opened)}"]`);
    opened = null;
    tryHolder.replaceChildren();
    if (trigger) trigger.focus();
  };
  const openTry = (tool) => {
    opened = tool.name;
    tryHolder.replaceChildren(tryPanel(name, tool, closeTry));
    tryHolder.scrollIntoView({ block: "nearest" });
    const first = tryHolder.querySelector("input, select, textarea");
    (first || tryHolder.querySelector("#try-title")).focus();
  };
  const load = async () => {
    try {
      const [listed, tiers] = await Promise.all([
        api("GET", `/api/v1/servers/${enc(name)}/tools`), api("GET", "/api/v1/tool-tiers")]);
      draw(listed.tools, tiers.tool_tiers);
    } catch (error) {
      panel.replaceChildren(box);
      showError(box, error);
    }
  };
  const draw = (tools, overrides) => {
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
      const tryIt = h("button", { type: "button", class: "btn small", "data-try": t.name, "aria-label": `Try ${t.name}` }, "Try it");
      tryIt.addEventListener("click", () => openTry(t));
      return h("tr", { "data-tool": t.name },
        h("th", { scope: "row" }, h("code", {}, t.name), t.title ? h("div", { class: "muted" }, t.title) : null),
        h("td", { class: "cell-tier", "data-label": "Tier" }, tierBadge(t),
          h("div", { class: "muted small tier-source" }, SOURCE_LABELS[t.tier_source] || t.tier_source),
          h("div", {}, h("code", { class: "muted small" }, t.call_with)),
          tierOverride(name, t, overrides, rowBox, load)),
        h("td", { "data-label": "Approval" }, h("span", { class: `badge approval approval-${t.approval}` }, t.approval)),
        h("td", { class: "cell-description" }, h("p", { class: "description" }, t.description || dash()),
          annotationsView(t.annotations),
          schemaView("Input schema", t.input_schema || {}, "schema-details input-schema"),
          t.output_schema ? schemaView("Output schema", t.output_schema, "schema-details output-schema") : null,
          t.diff ? h("details", { class: "diff", open: true }, h("summary", {}, "What changed"), diffView(t.diff)) : null),
        h("td", {}, h("div", { class: "row-actions" }, tryIt, approve), rowBox));
    });
    panel.replaceChildren(
      h("div", { class: "card-head" }, h("h2", {}, plural(tools.length, "tool")), held.length ? approveAll : null),
      allBox,
      tryHolder,
      tools.length
        ? grid("tools", ["Tool", "Tier", "Approval", "Description", srOnly("Actions")], rows, true)
        : h("p", { class: "muted" }, "No tools (yet). A stopped or quarantined server has none."),
    );
    // A reload (an approval, a list change) keeps an open "try it" panel, with the tool as it is now.
    const still = opened && tools.find((t) => t.name === opened);
    if (opened && !still) closeTry();
  };
  panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  await load();
  const onTools = (event) => {
    if (event.detail.server === name && document.body.contains(panel)) load();
    else if (!document.body.contains(panel)) document.removeEventListener("mcpproxy:tools", onTools);
  };
  document.addEventListener("mcpproxy:tools", onTools);
}
