// The one <dialog>: confirmations and small forms.
import { busy, errorBox, h } from "./dom.js";

export function openModal(title, body, buttons) {
  const dialog = document.getElementById("modal");
  dialog.replaceChildren(
    h("form", { method: "dialog", class: "modal-body" },
      h("h2", { id: "modal-title" }, title),
      body,
      h("div", { class: "actions" }, buttons)),
  );
  if (!dialog.open) dialog.showModal();
  return dialog;
}

export function closeModal() {
  const dialog = document.getElementById("modal");
  if (dialog.open) dialog.close();
}

export function modalOpen() {
  return document.getElementById("modal").open;
}

// Confirm with a real dialog; `action` runs on confirmation and its error stays in the dialog.
export function confirmAction(title, message, confirmLabel, action, tone = "danger") {
  const box = errorBox();
  const cancel = h("button", { type: "button", class: "btn", onclick: closeModal }, "Cancel");
  const confirm = h("button", { type: "button", class: `btn ${tone}`, id: "modal-confirm" }, confirmLabel);
  confirm.addEventListener("click", async () => {
    const done = await busy(confirm, box, async () => {
      await action();
      return true;
    });
    if (done) closeModal();
  });
  openModal(title, [h("p", {}, message), box], [cancel, confirm]);
  cancel.focus();
}
