// The last 200 lines of a server's stderr log; "Follow" polls.
import { api, enc } from "../lib/api.js";
import { errorBox, h, showError } from "../lib/dom.js";
import { every } from "../lib/state.js";

const FOLLOW_MS = 2000;

export function logsTab(name, panel) {
  const pre = h("pre", { class: "logs", id: "log-lines", tabindex: "0", "aria-label": "Log lines" });
  const box = errorBox();
  const follow = h("input", { type: "checkbox", id: "follow" });
  const refresh = h("button", { type: "button", class: "btn small" }, "Refresh");
  let stop = null;
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
    if (stop) stop();
    stop = null;
    if (follow.checked) {
      stop = every(FOLLOW_MS, load);
      load();
    }
  });
  panel.replaceChildren(
    h("div", { class: "card-head" }, h("h2", {}, "Last 200 lines"),
      h("div", { class: "row-actions" }, h("span", { class: "check" }, follow, h("label", { for: "follow" }, "Follow (every 2 s)")), refresh)),
    box, pre);
  load();
}
