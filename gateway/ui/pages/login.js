// The key, typed in once; kept for this tab only.
import { api, setApiKey } from "../lib/api.js";
import { busy, errorBox, h, showError } from "../lib/dom.js";

export function loginPage(message, onSignedIn) {
  const input = h("input", {
    id: "apikey", type: "password", name: "apikey", autocomplete: "current-password", required: true,
    spellcheck: "false",
  });
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "btn primary" }, "Open");
  const form = h(
    "form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, "Enter the proxy's API key (", h("code", {}, "api_key"), " in mcp_config.json). It is kept for this browser tab only."),
    h("label", { for: "apikey" }, "API key"),
    input,
    box,
    h("div", { class: "actions" }, submit),
  );
  if (message) showError(box, new Error(message));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    input.value = "";
    const ok = await busy(submit, box, () => api("GET", "/api/v1/status"));
    if (ok) onSignedIn();
    else setApiKey("");
  });
  setTimeout(() => input.focus(), 0);
  return form;
}
