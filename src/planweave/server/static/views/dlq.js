// Dead letters: work items that failed delivery too often, with a button to send each back.

import { api } from "../api.js";
import { fmtAge, fmtDateTime, h, replace, truncate } from "../dom.js";
import { notify, reportError } from "../notice.js";

export function mountDeadLetters(container) {
  const controller = new AbortController();
  const tbody = h("tbody");
  const refreshBtn = h("button", { type: "button", class: "btn small", onclick: () => refresh() }, "Refresh");
  replace(
    container,
    h(
      "section",
      { class: "card" },
      h("div", { class: "card-head" }, h("h1", {}, "Dead letters"), h("div", { class: "spacer" }), refreshBtn),
      h("p", { class: "muted" }, "Work items whose delivery failed too often. Redrive puts one back on its queue."),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table", "data-testid": "dlq-table" },
          h("thead", {}, h("tr", {}, ["Queue", "Job", "Task", "Deliveries", "Reason", "When", ""].map((c) => h("th", {}, c)))),
          tbody,
        ),
      ),
    ),
  );

  async function redrive(item, button) {
    button.disabled = true;
    try {
      await api.redrive(item.queue, item.id);
      notify(`Sent ${item.id} back to ${item.queue}.`, "info");
      refresh();
    } catch (err) {
      button.disabled = false;
      reportError(err, "Could not redrive");
    }
  }

  async function refresh() {
    try {
      const body = await api.listDeadLetters({ signal: controller.signal });
      const items = body.dead_letters || [];
      if (items.length === 0) {
        replace(tbody, h("tr", {}, h("td", { colspan: "7", class: "empty" }, "No dead letters.")));
        return;
      }
      replace(
        tbody,
        items.map((item) => {
          const button = h("button", { type: "button", class: "btn small", "data-testid": "redrive" }, "Redrive");
          button.addEventListener("click", () => redrive(item, button));
          return h(
            "tr",
            { "data-id": item.id },
            h("td", {}, h("code", {}, item.queue)),
            h("td", {}, item.job_id ? h("a", { href: `#/jobs/${encodeURIComponent(item.job_id)}` }, truncate(item.job_id, 16)) : "–"),
            h("td", {}, item.task_id || "–"),
            h("td", { class: "num" }, String(item.deliveries ?? "–")),
            h("td", { class: "detail", title: item.reason || "" }, truncate(item.reason || "", 160)),
            h("td", { class: "nowrap", title: fmtDateTime(item.at) }, fmtAge(item.at)),
            h("td", {}, button),
          );
        }),
      );
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(tbody, h("tr", {}, h("td", { colspan: "7", class: "error-line" }, `Could not load the dead letters: ${err.message}`)));
      reportError(err, "Could not load the dead letters");
    }
  }

  refresh();
  return () => controller.abort();
}
