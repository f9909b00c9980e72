// One server: its summary and the tabs (configuration, tools, prompts, resources, logs).
import { enc } from "../lib/api.js";
import { commandView, errorBox, fact, h, pageHeader, stateBadge } from "../lib/dom.js";
import { findServer, listen, state } from "../lib/state.js";
import { promptsTab, resourcesTab } from "./server-catalog.js";
import { configTab } from "./server-config.js";
import { logsTab } from "./server-logs.js";
import { toolsTab } from "./server-tools.js";
import { signInButton } from "./sign-in.js";

const TABS = [
  ["config", "Configuration", configTab],
  ["tools", "Tools", toolsTab],
  ["prompts", "Prompts", promptsTab],
  ["resources", "Resources", resourcesTab],
  ["logs", "Logs", logsTab],
];

function summaryFacts(s, signInBox) {
  return h("dl", { class: "facts" },
    fact("State", [stateBadge(s.state), s.quarantined ? h("span", { class: "badge quarantined" }, "quarantined") : null]),
    fact("Protocol", s.protocol),
    s.url ? fact("URL", h("code", { class: "url" }, s.url), "wide") : fact("Command", commandView(s.command, s.args), "wide fact-command"),
    fact("Tools", s.tool_count),
    fact("Restarts", s.restarts),
    s.oauth ? fact("Sign-in", s.signed_in ? "signed in (OAuth)" : s.action === "login" ? [h("span", { class: "error-text" }, "needed "), signInButton(s, signInBox)] : "not signed in") : null,
    s.last_error ? fact("Last error", h("span", { class: "error-text" }, s.last_error), "wide") : null);
}

export function serverPage(name, tab) {
  const [id, , draw] = TABS.find(([key]) => key === tab) || TABS[0];
  const summary = h("div", { class: "summary" });
  const panel = h("div", { class: "tab-panel", role: "tabpanel", id: `panel-${id}`, "aria-labelledby": `tab-${id}` });
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Server detail" },
    TABS.map(([key, label]) => h("a", {
      href: `#/server/${enc(name)}/${key}`, role: "tab", id: `tab-${key}`,
      "aria-selected": key === id ? "true" : "false", class: key === id ? "tab active" : "tab",
    }, label)));
  const signInBox = errorBox();
  const section = h("section", {}, pageHeader(name, h("a", { href: "#/servers", class: "back" }, "← All servers")), summary, tabs, panel);
  listen(() => {
    const s = findServer(name);
    if (!s) {
      summary.replaceChildren(state.serversLoaded ? h("p", { class: "error" }, `No server named "${name}".`) : h("p", { class: "muted" }, "Loading…"));
      return;
    }
    summary.replaceChildren(summaryFacts(s, signInBox), signInBox);
  });
  draw(name, panel);
  return section;
}
