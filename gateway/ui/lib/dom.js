// DOM helpers shared by every page. Data is rendered with DOM nodes, never innerHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ICONS = {
  pencil: "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
  trash: "M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z",
  lock: "M18 8h-1V6A5 5 0 0 0 7 6v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zm-6 9a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm3.1-9H8.9V6a3.1 3.1 0 0 1 6.2 0v2z",
  key: "M12.65 10A6 6 0 1 0 12.65 14H17v4h4v-4h2v-4H12.65zM7 14a2 2 0 1 1 0-4 2 2 0 0 1 0 4z",
};

export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

export function iconButton(name, label, onclick, extra) {
  return h("button", { type: "button", class: "btn icon-btn", "aria-label": label, title: label, onclick, ...extra }, icon(name));
}

export function errorBox() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

export function showError(box, error) {
  if (!box) return;
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = error.message || String(error);
}

export function stateBadge(value) {
  return h("span", { class: `badge state-${value}` }, value);
}

export function fmtTime(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleString();
}

export function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// Runs `action` with the button disabled; shows a failure in `box` (next to what caused it).
export async function busy(button, box, action) {
  showError(box, null);
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(box, error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function field(label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

export function fact(label, value, cls) {
  return h("div", { class: cls }, h("dt", {}, label), h("dd", {}, value));
}

export function pageHeader(title, ...extra) {
  document.title = `${title} · mcpproxy`;
  return h("div", { class: "page-header" }, h("h1", {}, title), extra);
}

export function tableWrap(table) {
  return h("div", { class: "table-wrap" }, table);
}

// A table with a header row; `head` entries are strings or nodes. A `stack` table turns into one
// card per row in a narrow window (its cells then show their `data-label`).
export function grid(id, head, rows, stack = false) {
  return tableWrap(h("table", { class: stack ? "grid stack" : "grid", id },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

export function srOnly(text) {
  return h("span", { class: "sr-only" }, text);
}

export function dash() {
  return h("span", { class: "muted" }, "—");
}

export function diffView(diff) {
  return h("pre", { class: "diff-text" }, diff.split("\n").map((line) => {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
    return h("span", { class: cls }, `${line}\n`);
  }));
}

// A word that may break only after its slashes (a long path), never between two letters.
function pathWord(word) {
  const parts = String(word).split(/(?<=\/)/);
  return h("span", { class: "word" }, parts.map((part, i) => [i ? h("wbr") : null, part]));
}

// A command line as words that wrap between one another, never inside one.
export function commandView(command, args) {
  const words = [command, ...(args || [])].filter((w) => w !== null && w !== undefined);
  return h("code", { class: "command" }, words.map((word, i) => [i ? " " : null, pathWord(word)]));
}
