// OAuth: the browser tab is opened on the click itself (a tab opened after an await is often
// blocked), then sent to the authorization URL once the proxy has it.
import { api, enc } from "../lib/api.js";
import { busy, h } from "../lib/dom.js";
import { refreshServers } from "../lib/state.js";

export function signInButton(s, box, cls) {
  const button = h("button", { type: "button", class: `btn small primary sign-in ${cls || ""}`, "data-action": "login" }, "Sign in");
  button.addEventListener("click", () => {
    const tab = window.open("", "_blank");
    busy(button, box, async () => {
      let answer;
      try {
        answer = await api("POST", `/api/v1/servers/${enc(s.name)}/login`);
      } catch (error) {
        if (tab) tab.close();
        throw error;
      }
      const url = answer && answer.authorization_url;
      if (!url) {
        if (tab) tab.close();
      } else if (tab) {
        tab.opener = null;
        tab.location.href = url;
      }
      if (url && box) {
        box.hidden = false;
        box.classList.add("notice");
        box.replaceChildren(`Finish signing in to ${s.name} in the browser tab. `,
          h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "sign-in-link" }, "Open the sign-in page"));
      }
      await refreshServers();
    });
  });
  return button;
}
