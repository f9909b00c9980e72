// Servers held for review, with what each would run; approve or reject a proposed change.
import { api, enc } from "../lib/api.js";
import { busy, commandView, diffView, errorBox, fact, h, pageHeader } from "../lib/dom.js";
import { listen, refreshServers, state } from "../lib/state.js";

function heldCard(s) {
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
  if (s.url) facts.push(fact("URL", h("code", {}, s.url), "wide"));
  if (s.command) facts.push(fact("Command", commandView(s.command, s.args), "wide fact-command"));
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
}

export function quarantinePage() {
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
    list.replaceChildren(...held.map(heldCard));
  });
  return section;
}
