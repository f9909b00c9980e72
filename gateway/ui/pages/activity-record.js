// One recorded tool call in full: who called what, with which arguments, and what came back.
import { api, enc } from "../lib/api.js";
import { dash, errorBox, fact, fmtTime, h, pageHeader, showError } from "../lib/dom.js";
import { parseResult, prettyJson, resultErrorText, resultView } from "../lib/tool-result.js";

// The log writes records a moment after the call (off the hot path): a call made from this page's
// "try it" link may not be on file yet when it is opened.
const LOOKUP_TRIES = 20;
const LOOKUP_PAUSE_MS = 250;

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function findByRequest(requestId) {
  for (let i = 0; i < LOOKUP_TRIES; i++) {
    const data = await api("GET", `/api/v1/activity?request_id=${enc(requestId)}&limit=1`);
    if (data.records.length) return data.records[0];
    await pause(LOOKUP_PAUSE_MS);
  }
  throw new Error(`No call with request id ${requestId} is on record (yet): try Refresh.`);
}

function payloadView(label, text, size, id) {
  if (!text) return h("section", { class: "card payload", id }, h("h2", {}, label), dash());
  const parsed = parseResult(text);
  const truncated = size > new TextEncoder().encode(text).length;
  return h("section", { class: "card payload", id },
    h("h2", {}, label),
    truncated ? h("p", { class: "muted" }, `Kept in part: the original was ${size} bytes.`) : null,
    h("pre", { class: "result-json" }, parsed ? prettyJson(parsed) : text));
}

function recordView(r) {
  const result = parseResult(r.result);
  const error = r.error || resultErrorText(result);
  const client = [r.client_name, r.client_version].filter(Boolean).join(" ");
  return [
    h("dl", { class: "facts record-facts" },
      fact("Time", fmtTime(r.time)),
      fact("Server", h("a", { href: `#/server/${enc(r.server)}/tools` }, r.server)),
      fact("Tool", h("code", {}, r.tool)),
      fact("Status", h("span", { class: `badge status-${r.status}` }, r.status)),
      fact("Duration", `${Number(r.duration_ms).toFixed(1)} ms`),
      fact("Surface", r.surface),
      fact("Client", client || dash()),
      fact("Session", r.session_id ? h("code", {}, r.session_id) : dash()),
      fact("Request id", r.request_id ? h("code", {}, r.request_id) : dash()),
      r.intent_reason ? fact("Intent", r.intent_reason) : null),
    error ? h("section", { class: "card record-error" }, h("h2", {}, "Error"), h("pre", { class: "result-text error-text" }, error)) : null,
    payloadView("Arguments", r.arguments, r.arguments_size, "record-arguments"),
    result
      ? h("section", { class: "card payload", id: "record-result" }, h("h2", {}, "Result"), resultView(result),
        h("details", {}, h("summary", {}, "As recorded (JSON)"), h("pre", { class: "result-json" }, prettyJson(result))))
      : payloadView("Result", r.result, r.result_size, "record-result"),
  ];
}

// `#/activity/<id>` or `#/activity/request/<request id>`.
export function activityRecordPage(key, requestId) {
  const byRequest = key === "request";
  const body = h("div", { class: "record", id: "record" }, h("p", { class: "muted" }, "Loading…"));
  const box = errorBox();
  const refresh = h("button", { type: "button", class: "btn small" }, "Refresh");
  const load = async () => {
    showError(box, null);
    try {
      const record = byRequest ? await findByRequest(requestId) : (await api("GET", `/api/v1/activity/${enc(key)}`)).record;
      document.title = `Call ${record.id} · mcpproxy`;
      body.dataset.id = record.id;
      body.replaceChildren(...recordView(record).filter(Boolean));
    } catch (error) {
      body.replaceChildren();
      showError(box, error);
    }
  };
  refresh.addEventListener("click", load);
  load();
  return h("section", {},
    pageHeader(byRequest ? "Tool call" : `Tool call ${key}`, h("a", { href: "#/activity", class: "back" }, "← All activity"), refresh),
    box, body);
}
