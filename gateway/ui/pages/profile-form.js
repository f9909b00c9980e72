// The form that adds a profile or replaces one (PUT /api/v1/profiles/{name}): its servers (every one,
// or those ticked), its tool globs, the highest tier it may call and the management right. A save
// sends the whole profile, so what the form shows is what the config then holds.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, field, h } from "../lib/dom.js";

export const TIERS = ["read", "write", "destructive"];
const NEW_PROFILE_TIER = "read";

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

// Returns { node, edit(profile), setServers(names) }; `onSaved()` runs after each save.
export function profileForm(onSaved) {
  const heading = h("h2", { id: "profile-form-title" }, "Add a profile");
  const name = h("input", {
    id: "profile-name", required: true, autocomplete: "off", spellcheck: "false",
    pattern: "[a-z0-9][a-z0-9_\\-]*", title: "Lower case letters, digits, - and _",
  });
  const title = h("input", { id: "profile-title", autocomplete: "off" });
  const all = h("input", { type: "checkbox", id: "profile-all-servers", checked: true });
  const serverList = h("div", { class: "server-checks", id: "profile-servers" });
  const maxTier = h("select", { id: "profile-max-tier" },
    TIERS.map((tier) => h("option", { value: tier, selected: tier === NEW_PROFILE_TIER }, tier)));
  const allow = h("textarea", { id: "profile-allow", rows: 3, spellcheck: "false", placeholder: "git:*" });
  const deny = h("textarea", { id: "profile-deny", rows: 3, spellcheck: "false", placeholder: "git:git_reset" });
  const management = h("input", { type: "checkbox", id: "profile-management" });
  const box = errorBox();
  const saved = h("p", { class: "ok-text", id: "profile-saved", role: "status" });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Add profile");
  const cancel = h("button", { type: "button", class: "btn", hidden: true }, "Cancel");

  let editing = null;
  let configured = [];
  let ticked = new Set();
  const readTicks = () => new Set([...serverList.querySelectorAll("input:checked")].map((input) => input.dataset.server));
  // The configured servers, and any the profile names that the config no longer has (so a save keeps them).
  const drawServers = () => {
    const names = [...new Set([...configured, ...ticked])].sort();
    const checks = names.map((server, i) => {
      const input = h("input", { type: "checkbox", id: `profile-server-${i}`, "data-server": server, checked: ticked.has(server), disabled: all.checked });
      input.addEventListener("change", () => { ticked = readTicks(); });
      return h("div", { class: "check" }, input,
        h("label", { for: input.id }, server, configured.includes(server) ? null : h("span", { class: "muted" }, " (not configured)")));
    });
    serverList.replaceChildren(...(checks.length ? checks : [h("p", { class: "muted" }, "No servers are configured yet.")]));
  };
  all.addEventListener("change", drawServers);

  const form = h("form", { class: "card", id: "profile-form", "aria-labelledby": "profile-form-title" },
    heading,
    h("div", { class: "fields" },
      field("Name", name, "Lower case, digits, - and _: it is part of the profile's URLs."),
      field("Title", title, "Optional: what it is for, as people read it."),
      field("Highest tier", maxTier, "read: only tools that read; write: also tools that change things; destructive: every tool.")),
    h("fieldset", { class: "servers-field" },
      h("legend", {}, "Servers"),
      h("div", { class: "check" }, all, h("label", { for: all.id }, "All servers, including those added later")),
      serverList),
    h("div", { class: "fields" },
      field("Allow tools", allow, "Globs on server:tool, one per line; empty: every tool of its servers."),
      field("Deny tools", deny, "Globs on server:tool, one per line; a match is never offered.")),
    h("div", { class: "check" }, management,
      h("label", { for: management.id }, "Management right: may add, change and restart servers through MCP")),
    box, saved, h("div", { class: "actions" }, cancel, submit));

  const reset = () => {
    editing = null;
    form.reset();
    name.readOnly = false;
    ticked = new Set();
    heading.textContent = "Add a profile";
    submit.textContent = "Add profile";
    cancel.hidden = true;
    drawServers();
  };
  cancel.addEventListener("click", () => {
    reset();
    saved.textContent = "";
  });

  const edit = (profile) => {
    reset();
    editing = profile.name;
    name.value = profile.name;
    name.readOnly = true;
    title.value = profile.title || "";
    all.checked = profile.servers === null || profile.servers === undefined;
    ticked = new Set(profile.servers || []);
    maxTier.value = profile.max_tier || "destructive";
    allow.value = ((profile.tools && profile.tools.allow) || []).join("\n");
    deny.value = ((profile.tools && profile.tools.deny) || []).join("\n");
    management.checked = Boolean(profile.management);
    heading.textContent = `Edit profile ${profile.name}`;
    submit.textContent = "Save profile";
    cancel.hidden = false;
    saved.textContent = "";
    drawServers();
    form.scrollIntoView({ block: "start" });
    title.focus();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    saved.textContent = "";
    const profileName = editing || name.value.trim();
    const body = {
      title: title.value.trim(),
      servers: all.checked ? null : [...readTicks()],
      max_tier: maxTier.value,
      tools: { allow: lines(allow.value), deny: lines(deny.value) },
      management: management.checked,
    };
    const verb = editing ? "saved" : "added";
    const done = await busy(submit, box, async () => {
      await api("PUT", `/api/v1/profiles/${enc(profileName)}`, body);
      return true;
    });
    if (done) {
      reset();
      saved.textContent = `Profile ${profileName} ${verb}: it holds from the next request on.`;
      onSaved();
    }
  });

  drawServers();
  return {
    node: form,
    edit,
    setServers: (names) => {
      configured = names;
      drawServers();
    },
  };
}
