// The sessions list: every reactive session with its version and whether it is settled,
// polled every 2 s while it is on screen.

import { api } from "../api.js";
import { h, replace, statusBadge } from "../dom.js";
import { notify, reportError } from "../notice.js";

const POLL_MS = 2000;

export function mountSessions(container) {
  let timer = null;
  let controller = null;
  let stopped = false;
  let failing = false;

  const updated = h("span", { class: "muted small" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "table sessions", "data-testid": "sessions-table" },
    h("thead", {}, h("tr", {}, ["State", "Session", "Name", "Inputs", "Version"].map((c) => h("th", {}, c)))),
    tbody,
  );
  replace(
    container,
    h(
      "section",
      { class: "card" },
      h("div", { class: "card-head" }, h("h1", {}, "Sessions"), h("div", { class: "spacer" }), updated),
      h("div", { class: "table-wrap" }, table),
    ),
  );

  function row(item) {
    const id = item.session_id || item.id || "";
    const link = `#/sessions/${encodeURIComponent(id)}`;
    const settled = item.settled === undefined ? null : Boolean(item.settled);
    const inputs = Array.isArray(item.inputs) ? item.inputs.length : (item.inputs_count ?? item.inputs ?? "");
    return h(
      "tr",
      { "data-session-id": id, class: "clickable", onclick: (ev) => {
        if (ev.target.closest("a")) return;
        location.hash = link;
      } },
      h("td", {}, settled === null ? "" : statusBadge(settled ? "settled" : "running")),
      h("td", { class: "mono" }, h("a", { href: link }, id)),
      h("td", {}, item.name || ""),
      h("td", { class: "num" }, String(inputs)),
      h("td", { class: "num" }, String(item.version ?? item.input_rev ?? "")),
    );
  }

  async function refresh() {
    clearTimeout(timer);
    if (stopped) return;
    controller?.abort();
    controller = new AbortController();
    try {
      const page = await api.listSessions({ signal: controller.signal });
      const sessions = Array.isArray(page) ? page : page?.sessions || [];
      if (sessions.length === 0) {
        replace(tbody, h("tr", {}, h("td", { colspan: "5", class: "empty" }, "No sessions yet. Start one with planweave session new SPEC.yaml.")));
      } else {
        replace(tbody, sessions.map(row));
      }
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (failing) notify(null);
      failing = false;
    } catch (err) {
      if (err.name === "AbortError") return;
      failing = true;
      reportError(err, "Could not load the sessions");
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
  };
}
