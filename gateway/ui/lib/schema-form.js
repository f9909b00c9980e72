// A form for a tool's arguments, generated from its JSON Schema (`inputSchema`).
//
// Each top-level property gets the input its type suggests: text, a number, a true/false choice,
// a list of its enum values, one line per item for an array of strings or numbers, and JSON for
// anything else (objects, unions, arrays of objects). An empty optional field is left out of the
// arguments; a required one is refused before anything is sent. "Edit as JSON" shows the same
// arguments as one JSON object, for a schema the fields cannot express.
import { field, h } from "./dom.js";

function typeOf(schema) {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (type) return type;
  if (schema.enum) return "enum";
  if (schema.properties) return "object";
  return "json";
}

function kindOf(schema) {
  if (Array.isArray(schema.enum) && schema.enum.length) return "enum";
  const type = typeOf(schema);
  if (type === "array") {
    const items = typeOf(schema.items || {});
    return ["string", "number", "integer"].includes(items) ? `lines-${items}` : "json";
  }
  return ["string", "number", "integer", "boolean"].includes(type) ? type : "json";
}

function hintOf(schema, kind) {
  const parts = [];
  if (schema.description) parts.push(schema.description);
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || (kind === "enum" ? "enum" : "any");
  parts.push(kind.startsWith("lines-") ? `${type} of ${schema.items.type}, one per line` : kind === "json" ? `${type}, as JSON` : type);
  return parts.join(" · ");
}

// One property: its input and how to read a value from it (undefined when left empty).
function propertyInput(id, name, schema, required) {
  const kind = kindOf(schema);
  const has = schema.default !== undefined;
  let input;
  let read;
  if (kind === "enum" || kind === "boolean") {
    const values = kind === "enum" ? schema.enum : [true, false];
    input = h("select", { id },
      h("option", { value: "" }, required ? "— choose —" : "— not sent —"),
      values.map((v) => h("option", { value: JSON.stringify(v), selected: has && JSON.stringify(v) === JSON.stringify(schema.default) }, String(v))));
    read = () => (input.value === "" ? undefined : JSON.parse(input.value));
  } else if (kind === "string") {
    input = h("input", { id, type: "text", autocomplete: "off", spellcheck: "false", value: has ? String(schema.default) : null });
    read = () => (input.value === "" ? undefined : input.value);
  } else if (kind === "number" || kind === "integer") {
    input = h("input", { id, type: "number", step: kind === "integer" ? "1" : "any", value: has ? String(schema.default) : null });
    read = () => {
      if (input.value.trim() === "") return undefined;
      const value = Number(input.value);
      if (!Number.isFinite(value)) throw new Error(`${name}: expected a number`);
      if (kind === "integer" && !Number.isInteger(value)) throw new Error(`${name}: expected a whole number`);
      return value;
    };
  } else if (kind.startsWith("lines-")) {
    const itemKind = kind.slice("lines-".length);
    input = h("textarea", { id, rows: 3, spellcheck: "false" }, has && Array.isArray(schema.default) ? schema.default.join("\n") : "");
    read = () => {
      const lines = input.value.split("\n").map((l) => l.trim()).filter(Boolean);
      if (!lines.length) return undefined;
      if (itemKind === "string") return lines;
      return lines.map((line) => {
        const value = Number(line);
        if (!Number.isFinite(value)) throw new Error(`${name}: "${line}" is not a number`);
        return value;
      });
    };
  } else {
    input = h("textarea", { id, rows: 3, spellcheck: "false", class: "json" }, has ? JSON.stringify(schema.default, null, 2) : "");
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch (error) {
        throw new Error(`${name}: not valid JSON (${error.message})`);
      }
    };
  }
  if (required) input.setAttribute("aria-required", "true");
  input.dataset.arg = name;
  const label = required ? `${name} (required)` : name;
  return { node: field(label, input, hintOf(schema, kind)), read, write: (value) => writeInput(input, kind, value) };
}

function writeInput(input, kind, value) {
  if (value === undefined) input.value = "";
  else if (kind === "enum" || kind === "boolean") input.value = JSON.stringify(value);
  else if (kind === "json") input.value = JSON.stringify(value, null, 2);
  else if (kind.startsWith("lines-") && Array.isArray(value)) input.value = value.join("\n");
  else input.value = String(value);
}

// Returns { node, read }: `read()` gives the arguments object or throws an Error that names the field.
export function schemaForm(schema, idPrefix) {
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = Object.keys(properties);
  const inputs = names.map((name, i) => [name, propertyInput(`${idPrefix}-${i}`, name, properties[name] || {}, required.has(name))]);
  const fields = h("div", { class: "fields try-fields" },
    inputs.map(([, p]) => p.node),
    names.length ? null : h("p", { class: "muted" }, "This tool takes no named arguments."));
  const raw = h("textarea", { id: `${idPrefix}-json`, rows: 6, spellcheck: "false", class: "json", "aria-label": "Arguments as JSON" });
  const rawField = h("div", { class: "field", hidden: true }, raw);
  const asJson = h("input", { type: "checkbox", id: `${idPrefix}-as-json` });
  const readFields = () => {
    const args = {};
    for (const [name, p] of inputs) {
      const value = p.read();
      if (value === undefined) {
        if (required.has(name)) throw new Error(`${name}: required`);
      } else {
        args[name] = value;
      }
    }
    return args;
  };
  const readRaw = () => {
    let args;
    try {
      args = JSON.parse(raw.value.trim() || "{}");
    } catch (error) {
      throw new Error(`arguments: not valid JSON (${error.message})`);
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) throw new Error("arguments: expected a JSON object");
    return args;
  };
  asJson.addEventListener("change", () => {
    if (asJson.checked) {
      let args = {};
      try {
        args = readFields();
      } catch {
        // half-filled fields: start from what reads
      }
      raw.value = JSON.stringify(args, null, 2);
    } else {
      let args = {};
      try {
        args = readRaw();
      } catch {
        // invalid JSON: the fields keep their own values
      }
      for (const [name, p] of inputs) if (name in args) p.write(args[name]);
    }
    fields.hidden = asJson.checked;
    rawField.hidden = !asJson.checked;
  });
  const toggle = h("div", { class: "check" }, asJson, h("label", { for: asJson.id }, "Edit the arguments as JSON"));
  return {
    node: h("div", { class: "schema-form" }, fields, rawField, toggle),
    read: () => (asJson.checked ? readRaw() : readFields()),
  };
}
