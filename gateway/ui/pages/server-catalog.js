// Server -> Prompts and Resources. Prompts are pinned like tools: a changed or new one is held
// from agents until approved here.
import { api, enc } from "../lib/api.js";
import { busy, dash, diffView, errorBox, grid, h, plural, showError, srOnly } from "../lib/dom.js";

export async function promptsTab(name, panel) {
  const box = errorBox();
  const approveRoute = `/api/v1/servers/${enc(name)}/prompts/approve`;
  const load = async () => {
    try {
      draw((await api("GET", `/api/v1/servers/${enc(name)}/prompts`)).prompts);
    } catch (error) {
      panel.replaceChildren(box);
      showError(box, error);
    }
  };
  const approveButton = (label, id, body, rowBox) => {
    const button = h("button", { type: "button", class: id ? "btn primary small" : "btn small", id, "aria-label": id ? null : label }, id ? label : "Approve");
    button.addEventListener("click", () => busy(button, rowBox, async () => {
      await api("POST", approveRoute, body);
      await load();
    }));
    return button;
  };
  const argumentsView = (args) => (args && args.length)
    ? h("ul", { class: "args" }, args.map((a) => h("li", {}, h("code", {}, a.name), a.required ? h("span", { class: "muted" }, " (required)") : null,
      a.description ? ` — ${a.description}` : null)))
    : dash();
  const draw = (prompts) => {
    const held = prompts.filter((p) => p.approval !== "approved");
    const allBox = errorBox();
    const rows = prompts.map((p) => {
      const rowBox = errorBox();
      const approve = p.approval === "approved" ? null : approveButton(`Approve ${p.name}`, null, { prompts: [p.name] }, rowBox);
      return h("tr", { "data-prompt": p.name },
        h("th", { scope: "row" }, h("code", {}, p.name), h("div", { class: "muted" }, h("code", {}, p.mcp_name))),
        h("td", {}, h("span", { class: `badge approval-${p.approval}` }, p.approval)),
        h("td", {}, p.description || dash(),
          p.diff ? h("details", { class: "diff", open: true }, h("summary", {}, "What changed"), diffView(p.diff)) : null),
        h("td", {}, argumentsView(p.arguments)),
        h("td", {}, approve, rowBox));
    });
    panel.replaceChildren(
      h("div", { class: "card-head" }, h("h2", {}, plural(prompts.length, "prompt")),
        held.length ? approveButton(`Approve all (${held.length})`, "approve-all-prompts", {}, allBox) : null),
      allBox,
      prompts.length
        ? grid("prompts", ["Prompt", "Approval", "Description", "Arguments", srOnly("Actions")], rows)
        : h("p", { class: "muted" }, "No prompts. A stopped or quarantined server shows none."),
    );
  };
  panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  await load();
}

export async function resourcesTab(name, panel) {
  const box = errorBox();
  panel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let data;
  try {
    data = await api("GET", `/api/v1/servers/${enc(name)}/resources`);
  } catch (error) {
    panel.replaceChildren(box);
    showError(box, error);
    return;
  }
  const resources = data.resources || [];
  const templates = data.templates || [];
  // replaceChildren, unlike h(), would write a null as the text "null".
  panel.replaceChildren(...[
    h("div", { class: "card-head" }, h("h2", {}, plural(resources.length, "resource"))),
    resources.length
      ? grid("resources", ["Name", "URI", "MIME type", "Description"], resources.map((r) =>
        h("tr", { "data-uri": r.uri },
          h("th", { scope: "row" }, r.title || r.name),
          h("td", {}, h("code", {}, r.uri), h("div", { class: "muted" }, h("code", { title: "The URI MCP clients read it by" }, r.mcp_uri))),
          h("td", {}, r.mimeType ? h("code", {}, r.mimeType) : dash()),
          h("td", {}, r.description || dash()))))
      : h("p", { class: "muted" }, "No resources. A stopped or quarantined server shows none."),
    templates.length ? h("div", { class: "card-head" }, h("h2", {}, plural(templates.length, "template"))) : null,
    templates.length
      ? grid("templates", ["Name", "URI template", "MIME type", "Description"], templates.map((t) =>
        h("tr", { "data-template": t.uriTemplate },
          h("th", { scope: "row" }, t.title || t.name),
          h("td", {}, h("code", {}, t.uriTemplate), h("div", { class: "muted" }, h("code", {}, t.mcp_uri_template))),
          h("td", {}, t.mimeType ? h("code", {}, t.mimeType) : dash()),
          h("td", {}, t.description || dash()))))
      : null,
  ].filter(Boolean));
}
