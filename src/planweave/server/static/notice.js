// One message line under the header, for errors and confirmations.

import { h, replace } from "./dom.js";

/** Show a message under the header (kind "error" or "info"); notify(null) hides it. */
export function notify(message, kind = "error") {
  const box = document.getElementById("notice");
  if (!box) return;
  if (!message) {
    box.hidden = true;
    replace(box);
    return;
  }
  box.className = `notice ${kind}`;
  box.hidden = false;
  replace(
    box,
    h("span", { "data-testid": "notice" }, message),
    h("button", { type: "button", class: "btn small ghost", onclick: () => notify(null) }, "Dismiss"),
  );
}

/** Report a failed call (ignoring aborts from leaving the page). */
export function reportError(err, what) {
  if (err && err.name === "AbortError") return;
  if (err && (err.status === 401 || err.status === 403)) return; // the auth notice covers it
  notify(`${what}: ${err && err.message ? err.message : String(err)}`);
}
