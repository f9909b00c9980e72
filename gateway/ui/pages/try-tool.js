// "Try it": call one tool with arguments from a form built from its input schema. The call goes
// through POST /api/v1/tools/call, the path every surface takes (quarantine, approval and the
// destructive check, then the activity log, as surface "ui"); the result links to its record.
import { apiCall, enc } from "../lib/api.js";
import { busy, errorBox, h, showError } from "../lib/dom.js";
import { confirmAction } from "../lib/modal.js";
import { schemaForm } from "../lib/schema-form.js";
import { resultView } from "../lib/tool-result.js";

export function tryPanel(server, tool, onClose) {
  const form = schemaForm(tool.input_schema || {}, "try-arg");
  const box = errorBox();
  const output = h("div", { class: "try-output", "aria-live": "polite" });
  const call = h("button", { type: "submit", class: "btn primary", id: "try-call" }, `Call ${tool.name}`);
  const close = h("button", { type: "button", class: "btn", onclick: onClose }, "Close");
  const destructive = tool.call_with === "call_tool_destructive";
  const run = () => busy(call, box, async () => {
    const args = form.read();
    output.replaceChildren(h("p", { class: "muted" }, "Calling…"));
    const { data, requestId } = await apiCall("POST", "/api/v1/tools/call",
      { name: `${server}:${tool.name}`, args, variant: tool.call_with }, { "X-Mcpproxy-Surface": "ui" });
    output.replaceChildren(resultView(data.result),
      requestId ? h("p", { class: "muted" }, h("a", { href: `#/activity/request/${enc(requestId)}`, id: "try-record" }, "This call in the activity log")) : null);
    return true;
  }).then((ok) => { if (ok === undefined) output.replaceChildren(); });
  const node = h("form", { class: "card try-panel", id: "try-panel", "aria-labelledby": "try-title" },
    h("div", { class: "card-head" },
      h("h2", { id: "try-title", tabindex: "-1" }, "Try ", h("code", {}, tool.name)),
      close),
    destructive ? h("p", { class: "error notice" }, "Annotated destructive: the call runs for real, after you confirm it.") : null,
    form.node, box,
    h("div", { class: "actions" }, call),
    output);
  node.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      form.read();
    } catch (error) {
      showError(box, error);
      return;
    }
    if (!destructive) {
      run();
      return;
    }
    confirmAction(`Call ${tool.name}?`, `${server}:${tool.name} is annotated destructive. It runs for real.`, "Call it", run);
  });
  node.addEventListener("keydown", (event) => { if (event.key === "Escape") onClose(); });
  return node;
}
