// Profiles (issue 21): what each client may see and do, and what a caller without a credential gets.
// Add, edit and remove profiles; each change is written to the config and holds from the next
// request on. The proxy refuses to remove a profile a client is bound to, and says so here.
import { api, enc } from "../lib/api.js";
import { busy, errorBox, field, h, iconButton, pageHeader, showError, srOnly, tableWrap } from "../lib/dom.js";
import { confirmAction } from "../lib/modal.js";
import { profileForm } from "./profile-form.js";

// require_mcp_auth as the select holds it: "" is unset (null), the proxy's default.
const AUTH_CHOICES = [
  ["", "Default: required when the proxy listens beyond loopback"],
  ["true", "Required: refuse callers without a credential"],
  ["false", "Not required: a caller without one gets the anonymous profile"],
];

function none(text) {
  return h("span", { class: "muted" }, text);
}

function globsView(profile) {
  const tools = profile.tools || {};
  const allow = tools.allow || [];
  const deny = tools.deny || [];
  return [
    h("div", { class: "globs-allow" }, "allow: ", allow.length ? allow.map((g) => h("code", { class: "tag" }, g)) : none("every tool")),
    deny.length ? h("div", { class: "globs-deny" }, "deny: ", deny.map((g) => h("code", { class: "tag" }, g))) : null,
  ];
}

function accessForm(onSaved) {
  const auth = h("select", { id: "access-require-auth" }, AUTH_CHOICES.map(([value, label]) => h("option", { value }, label)));
  const anonymous = h("select", { id: "access-anonymous-profile" });
  const box = errorBox();
  const saved = h("p", { class: "ok-text", id: "access-saved", role: "status" });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Save");
  const form = h("form", { class: "card", id: "access", "aria-labelledby": "access-title" },
    h("h2", { id: "access-title" }, "Callers without a credential"),
    h("div", { class: "fields" },
      field("Credential on /mcp (require_mcp_auth)", auth, "The API key and client credentials are always accepted."),
      field("Anonymous profile (anonymous_profile)", anonymous, "What a caller without a credential sees, where one is not required.")),
    box, saved, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    saved.textContent = "";
    const body = {
      require_mcp_auth: auth.value === "" ? null : auth.value === "true",
      anonymous_profile: anonymous.value || null,
    };
    const done = await busy(submit, box, async () => {
      await api("PATCH", "/api/v1/access", body);
      return true;
    });
    if (done) {
      saved.textContent = "Saved: it holds from the next request on.";
      onSaved();
    }
  });
  const show = (data) => {
    auth.value = data.require_mcp_auth === null || data.require_mcp_auth === undefined ? "" : String(data.require_mcp_auth);
    anonymous.replaceChildren(
      h("option", { value: "" }, "None: every server, without the management right"),
      ...data.profiles.map((p) => h("option", { value: p.name }, p.name)));
    anonymous.value = data.anonymous_profile || "";
  };
  return { node: form, show };
}

export function profilesPage() {
  const tbody = h("tbody");
  const listBox = errorBox();
  const form = profileForm(() => load());
  const access = accessForm(() => load());

  const row = (profile, bound, anonymous) => {
    const tier = profile.max_tier || "destructive";
    const edit = iconButton("pencil", `Edit ${profile.name}`, () => form.edit(profile));
    const consequence = bound.length
      ? `Clients bound to it (${bound.map((c) => c.name).join(", ")}) must be revoked or given another profile first.`
      : "Its endpoints stop answering from the next request on.";
    const remove = iconButton("trash", `Delete ${profile.name}`, () =>
      confirmAction(`Delete profile ${profile.name}?`, consequence, "Delete",
        async () => { await api("DELETE", `/api/v1/profiles/${enc(profile.name)}`); await load(); }));
    return h("tr", { "data-profile": profile.name },
      h("th", { scope: "row" }, h("code", {}, profile.name),
        profile.title ? h("div", { class: "muted" }, profile.title) : null,
        profile.name === anonymous ? h("div", {}, h("span", { class: "badge anonymous" }, "anonymous")) : null),
      h("td", { class: "cell-servers", "data-label": "Servers" },
        profile.servers === null || profile.servers === undefined
          ? none("all servers")
          : profile.servers.length ? profile.servers.map((s) => h("a", { href: `#/server/${enc(s)}`, class: "tag" }, s)) : none("none")),
      h("td", { class: "cell-tools", "data-label": "Tools" }, globsView(profile)),
      h("td", { class: "cell-max-tier", "data-label": "Highest tier" }, h("span", { class: `badge tier tier-${tier}` }, tier)),
      h("td", { class: "cell-management", "data-label": "Management" }, profile.management ? "yes" : none("no")),
      h("td", { class: "cell-clients", "data-label": "Clients" },
        bound.length ? bound.map((c) => h("a", { href: "#/clients", class: "tag" }, c.name)) : none("none")),
      h("td", { class: "cell-endpoints", "data-label": "Endpoints" },
        h("div", {}, h("code", {}, `/mcp/p/${profile.name}`)),
        h("div", {}, h("code", {}, `/mcp/p/${profile.name}/all`))),
      h("td", {}, h("div", { class: "row-actions" }, edit, remove)));
  };

  const load = async () => {
    try {
      const [profiles, clients, servers] = await Promise.all([
        api("GET", "/api/v1/profiles"), api("GET", "/api/v1/clients"), api("GET", "/api/v1/servers")]);
      showError(listBox, null);
      form.setServers(servers.servers.map((s) => s.name));
      access.show(profiles);
      tbody.replaceChildren(...profiles.profiles.map((profile) =>
        row(profile, clients.clients.filter((c) => c.profile === profile.name), profiles.anonymous_profile)));
      if (!profiles.profiles.length) {
        tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No profiles yet: without one, every caller sees every server.")));
      }
    } catch (error) {
      showError(listBox, error);
    }
  };
  load();
  const head = ["Name", "Servers", "Tools", "Highest tier", "Management", "Clients", "Endpoints", srOnly("Actions")];
  return h("section", {}, pageHeader("Profiles"),
    h("h2", {}, "Profiles"), listBox,
    tableWrap(h("table", { class: "grid stack", id: "profiles" },
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    form.node, access.node);
}
