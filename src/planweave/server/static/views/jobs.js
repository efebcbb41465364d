// The jobs list: polled every 2 s while it is on screen.

import { api } from "../api.js";
import { fmtAge, fmtCost, fmtDateTime, fmtTokens, h, replace, statusBadge, truncate } from "../dom.js";
import { notify, reportError } from "../notice.js";

const POLL_MS = 2000;
const PAGE = 50;
const STATUSES = ["", "running", "succeeded", "failed", "cancelled"];

export function mountJobs(container) {
  let status = "";
  let offset = 0;
  let timer = null;
  let controller = null;
  let stopped = false;
  let failing = false;

  const filter = h(
    "select",
    { "aria-label": "Status", "data-testid": "status-filter", onchange: () => {
      status = filter.value;
      offset = 0;
      refresh();
    } },
    STATUSES.map((s) => h("option", { value: s }, s || "all statuses")),
  );
  const updated = h("span", { class: "muted small" });
  const tbody = h("tbody");
  const prev = h("button", { type: "button", class: "btn small ghost", onclick: () => {
    offset = Math.max(0, offset - PAGE);
    refresh();
  } }, "← Newer");
  const next = h("button", { type: "button", class: "btn small ghost", onclick: () => {
    offset += PAGE;
    refresh();
  } }, "Older →");
  const pager = h("div", { class: "pager" }, prev, next);

  const table = h(
    "table",
    { class: "table jobs", "data-testid": "jobs-table" },
    h("thead", {}, h("tr", {}, ["Status", "Goal", "Created", "Tasks", "Tokens in / out", "Cost"].map((c) => h("th", {}, c)))),
    tbody,
  );
  replace(
    container,
    h(
      "section",
      { class: "card" },
      h("div", { class: "card-head" }, h("h1", {}, "Jobs"), h("div", { class: "spacer" }), updated, filter, h("a", { class: "btn primary", href: "#/new" }, "New job")),
      h("div", { class: "table-wrap" }, table),
      pager,
    ),
  );

  function row(job) {
    const link = `#/jobs/${encodeURIComponent(job.job_id)}`;
    const total = job.tasks_total || 0;
    const done = job.tasks_done || 0;
    return h(
      "tr",
      { "data-job-id": job.job_id, "data-status": job.status, class: "clickable", onclick: (ev) => {
        if (ev.target.closest("a")) return;
        location.hash = link;
      } },
      h("td", {}, statusBadge(job.stalled ? "stalled" : job.status)),
      h(
        "td",
        { class: "goal" },
        h("a", { href: link, title: job.goal || "" }, truncate(job.goal || "(user plan)", 120)),
        job.error ? h("div", { class: "error-line", title: job.error }, truncate(job.error, 140)) : null,
      ),
      h("td", { class: "nowrap", title: fmtDateTime(job.created_at) }, fmtAge(job.created_at)),
      h(
        "td",
        { class: "nowrap" },
        h("progress", { max: String(Math.max(total, 1)), value: String(done) }),
        h("span", { class: "num" }, ` ${done}/${total}`),
      ),
      h("td", { class: "num nowrap" }, `${fmtTokens(job.tokens_in)} / ${fmtTokens(job.tokens_out)}`),
      h("td", { class: "num" }, fmtCost(job.cost_usd)),
    );
  }

  async function refresh() {
    clearTimeout(timer);
    if (stopped) return;
    controller?.abort();
    controller = new AbortController();
    try {
      const page = await api.listJobs({ status, limit: PAGE, offset }, { signal: controller.signal });
      const jobs = page.jobs || [];
      if (jobs.length === 0) {
        replace(tbody, h("tr", {}, h("td", { colspan: "6", class: "empty" }, offset ? "No older jobs." : "No jobs yet. ", offset ? null : h("a", { href: "#/new" }, "Submit one."))));
      } else {
        replace(tbody, jobs.map(row));
      }
      prev.disabled = offset === 0;
      next.disabled = jobs.length < PAGE;
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (failing) notify(null);
      failing = false;
    } catch (err) {
      if (err.name === "AbortError") return;
      failing = true;
      reportError(err, "Could not load the jobs");
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
