// An MCP tool result (CallToolResult JSON) as a person reads it: the text of each content block,
// images inline, anything else as JSON; `isError` results say so.
import { h } from "./dom.js";

const ERROR_META_KEY = "mcpproxy/error";

export function prettyJson(value) {
  return JSON.stringify(value, null, 2);
}

// The stored result text parsed, or null when it is not JSON (the log caps long results).
export function parseResult(text) {
  if (!text) return null;
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

// What an isError result says: its text blocks joined ("" when it is not an error).
export function resultErrorText(result) {
  if (!result || !result.isError) return "";
  const texts = (result.content || []).filter((c) => c && c.type === "text").map((c) => c.text);
  return texts.join("\n") || "the tool reported an error";
}

function blockView(block) {
  if (block.type === "text") return h("pre", { class: "result-text" }, block.text);
  if (block.type === "image" && typeof block.data === "string" && /^image\/[\w.+-]+$/.test(block.mimeType || "")) {
    return h("img", { class: "result-image", src: `data:${block.mimeType};base64,${block.data}`, alt: "Image from the tool" });
  }
  return h("pre", { class: "result-json" }, prettyJson(block));
}

export function resultView(result) {
  const meta = result._meta && result._meta[ERROR_META_KEY];
  const head = result.isError
    ? h("p", { class: "result-head error-text" }, meta && meta.kind ? `The proxy refused or could not make the call (${meta.kind}).` : "The tool reported an error.")
    : h("p", { class: "result-head ok-text" }, "The tool answered.");
  return h("div", { class: result.isError ? "tool-result is-error" : "tool-result" },
    head,
    (result.content || []).map(blockView),
    result.structuredContent !== undefined
      ? h("details", { class: "structured" }, h("summary", {}, "Structured content"), h("pre", { class: "result-json" }, prettyJson(result.structuredContent)))
      : null);
}
