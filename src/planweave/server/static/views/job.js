// The job page: header, live DAG, task panel, result, artifacts and the events timeline.
//
// Start-up: read the event history (JSON), then the job and its tasks, then follow the SSE
// stream from the last seq seen. Each event updates the local copy of the tasks at once (so the
// graph changes colour with no round trip), and a short debounce later the tasks and the job are
// read again, so the page always settles on the server's state.

import { api, fetchBlob } from "../api.js";
import { DagView } from "../dag.js";
import { asText, clear, fmtBytes, fmtCost, fmtDuration, fmtTime, fmtTokens, h, replace, statusBadge, TERMINAL_JOB, toMs, truncate } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { notify, reportError } from "../notice.js";
import { followEvents } from "../sse.js";
import { LiveReplies, showLiveReply } from "../replies.js";
import { renderTaskDetail, renderValue } from "./task.js";

const STATUSES = ["pending", "ready", "running", "awaiting_approval", "succeeded", "failed", "cancelled"];
const RECONCILE_MS = 300;
const POLL_MS = 1500;
const MAX_TASK_PAGES = 1000;

/** One line about an event for the timeline. */
export function eventDetail(ev) {
  switch (ev.type) {
    case "JobSubmitted":
      return ev.goal ? truncate(ev.goal, 120) : ev.plan ? `user plan of ${ev.plan.length} tasks` : "";
    case "SubtasksPlanned":
      return `+${(ev.tasks || []).length} tasks: ${(ev.tasks || []).map((t) => t.id).join(", ")}`;
    case "TaskAssigned":
      return ev.attempt ? `attempt ${ev.attempt}${ev.worker ? ` on ${ev.worker}` : ""}` : "";
    case "TaskCompleted":
    case "JobCompleted":
      return truncate(asText(ev.result).replace(/\s+/g, " "), 120);
    case "TaskRetrying":
      return `${truncate(asText(ev.error), 100)}${ev.delay_s !== undefined ? ` · retry in ${Number(ev.delay_s).toFixed(1)} s` : ""}`;
    case "TaskFailed":
      return truncate(asText(ev.error), 140);
    case "TaskCancelled":
    case "JobCancelled":
      return ev.reason ? truncate(asText(ev.reason), 120) : "";
    case "JobFailed":
      return truncate(asText(ev.reason ?? ev.error), 140);
    case "TaskReviewing":
      return `critic ${ev.critic || ""} checks the answer${ev.revision ? ` (revision ${ev.revision})` : ""}`;
    case "CriticVerdict":
      return `${ev.verdict}${ev.feedback ? `: ${truncate(asText(ev.feedback), 120)}` : ""}`;
    case "ReplanRequested":
      return `replan after ${ev.failed_task || "?"}${ev.superseded?.length ? `, superseding ${ev.superseded.join(", ")}` : ""}`;
    case "JobReopened":
      return ev.tasks ? `reopened ${ev.tasks.join(", ")}` : "";
    case "LlmCalled":
      return `${ev.model || ""} ${ev.role || ""} · ${fmtTokens(ev.tokens_in)} → ${fmtTokens(ev.tokens_out)} tok · ${fmtDuration(ev.latency_ms)} · ${fmtCost(ev.cost_usd)}`;
    case "ToolCalled":
      return `${ev.name || ""} → ${ev.outcome || ""}`;
    case "PolicyDenied":
      return truncate(`${ev.tool || "result"} denied by ${ev.rule || "?"}: ${asText(ev.reason)}`, 160);
    case "ArtifactCreated":
      return ev.name || "";
    default:
      return "";
  }
}

// Events after which a task's reply being written is no longer shown.
const REPLY_ENDS = new Set(["TaskCompleted", "TaskFailed", "TaskCancelled", "TaskRetrying"]);

export function mountJob(container, { jobId }) {
  const st = {
    job: null,
    tasks: new Map(),
    lastSeq: 0,
    selected: null,
    stream: null,
    stopped: false,
    eventCount: 0,
    streamed: 0,
    streamState: "connecting",
  };
  const replies = new LiveReplies();
  const controller = new AbortController();
  const opts = { signal: controller.signal };
  const timers = new Set();
  const later = (fn, ms) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };

  // --- skeleton -----------------------------------------------------------------------------
  const title = h("h1", { class: "job-goal", "data-testid": "job-goal" }, "Loading…");
  const badge = h("span", { "data-testid": "job-status" });
  const idLine = h("code", { class: "muted small" }, jobId);
  const stats = h("dl", { class: "stats" });
  const actions = h("div", { class: "actions" });
  const live = h("span", { class: "live", "data-state": "connecting", "data-testid": "stream-state" }, "connecting");
  const head = h(
    "section",
    { class: "card job-head" },
    h("div", { class: "job-head-main" }, h("div", { class: "job-title-row" }, badge, title), h("div", { class: "job-sub" }, h("a", { href: "#/" }, "← Jobs"), " · ", idLine, " · ", live), stats),
    actions,
  );

  const dag = new DagView({ onSelect: (id) => selectTask(id) });
  const dagWrap = h("div", { class: "dag-wrap" }, dag.svg);
  const legend = h("div", { class: "legend" }, STATUSES.map((s) => h("span", { class: "legend-item", "data-status": s }, h("span", { class: "legend-dot" }), s)));
  const dagCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Plan"), h("div", { class: "spacer" }), legend), dagWrap);

  const resultBody = h("div", { class: "result", "data-testid": "result" }, h("p", { class: "muted" }, "No result yet."));
  const resultCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Result")), resultBody);

  const artifactList = h("ul", { class: "artifacts", "data-testid": "artifacts" });
  const artifactPreview = h("div", { class: "artifact-preview", hidden: true, "data-testid": "artifact-preview" });
  const artifactCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Artifacts")), artifactList, artifactPreview);

  const eventCount = h("span", { class: "muted small" }, "");
  const eventRows = h("tbody");
  const eventWrap = h(
    "div",
    { class: "events-wrap" },
    h("table", { class: "table events", "data-testid": "events" }, h("thead", {}, h("tr", {}, ["#", "Time", "Event", "Task", "Detail"].map((c) => h("th", {}, c)))), eventRows),
  );
  const eventsCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Events"), h("div", { class: "spacer" }), eventCount), eventWrap);

  const panel = h("aside", { class: "task-panel card", "data-testid": "task-panel" });
  const grid = h("div", { class: "job-grid" }, h("div", { class: "job-main" }, dagCard, resultCard, artifactCard, eventsCard), panel);
  replace(container, h("div", { class: "job-page" }, head, grid));
  const resize = new ResizeObserver(() => dag.fit(dagWrap.clientWidth - 2));
  resize.observe(dagWrap);
  showPanelHint();

  // --- rendering ----------------------------------------------------------------------------
  let renderQueued = false;
  function renderSoon() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      if (st.stopped) return;
      renderDag();
      renderHead();
    });
  }

  function renderDag() {
    const tasks = [...st.tasks.values()];
    dag.update(tasks);
    dagWrap.classList.toggle("empty", tasks.length === 0);
  }

  function renderHead() {
    const job = st.job;
    if (!job) return;
    title.textContent = job.goal || "(user plan)";
    title.title = job.goal || "";
    replace(badge, statusBadge(job.stalled ? "stalled" : job.status));
    head.setAttribute("data-status", job.status);
    const usage = job.usage || {};
    const tasks = [...st.tasks.values()];
    const total = tasks.length || job.tasks_total || 0;
    const done = tasks.length ? tasks.filter((t) => t.status === "succeeded").length : job.tasks_done || 0;
    const created = toMs(job.created_at);
    const end = toMs(job.finished_at) || (TERMINAL_JOB.has(job.status) ? toMs(job.updated_at) : Date.now());
    const stat = (k, v, id) => [h("dt", {}, k), h("dd", { "data-testid": id }, v)];
    // The job's budgets (from the job view), shown as "spent / budget" where one is set.
    const budget = job.budget || {};
    const spent = job.spent || {};
    const of = (limit, fmt) => (limit === null || limit === undefined ? "" : ` / ${fmt(limit)}`);
    const tokensIn = usage.tokens_in ?? job.tokens_in ?? 0;
    const tokensOut = usage.tokens_out ?? job.tokens_out ?? 0;
    const tokenBudget = budget.max_tokens ? ` (${fmtTokens(tokensIn + tokensOut)}${of(budget.max_tokens, fmtTokens)})` : "";
    const toolCalls = spent.tool_calls ?? 0;
    replace(
      stats,
      stat("Elapsed", created ? fmtDuration(end - created) + of(budget.max_time_s, (s) => fmtDuration(s * 1000)) : "–", "elapsed"),
      stat("Tasks", `${done}/${total}`, "tasks-done"),
      stat("Tokens", `${fmtTokens(tokensIn)} in / ${fmtTokens(tokensOut)} out${tokenBudget}`, "tokens"),
      stat("LLM calls", String(usage.llm_calls ?? "–"), "llm-calls"),
      stat("Cost", fmtCost(usage.cost_usd ?? job.cost_usd ?? 0) + of(budget.max_cost_usd, fmtCost), "cost"),
      toolCalls || budget.max_tool_calls != null ? stat("Tool calls", String(toolCalls) + of(budget.max_tool_calls, String), "tool-calls") : null,
      job.options?.model ? stat("Model", job.options.model, "model") : null,
    );
    renderActions();
  }

  function renderActions() {
    const s = st.job?.status;
    // Rebuild only when the status changes, so a click is never lost to a re-render.
    if (actions.dataset.for === s) return;
    actions.dataset.for = s;
    const btn = (label, cls, testid, fn) => h("button", { type: "button", class: `btn ${cls}`, "data-testid": testid, onclick: fn }, label);
    replace(
      actions,
      s === "running" ? btn("Cancel", "", "cancel-job", () => act("cancel", () => api.cancelJob(jobId))) : null,
      s === "failed" ? btn("Replan", "", "replan-job", () => act("replan", () => api.replanJob(jobId))) : null,
      s === "failed" || s === "cancelled" ? btn("Retry all", "primary", "retry-job", () => act("retry", () => api.retryJob(jobId))) : null,
      TERMINAL_JOB.has(s) ? btn("Delete", "danger", "delete-job", deleteJob) : null,
    );
  }

  function renderResult() {
    const job = st.job;
    if (!job) return;
    const parts = [];
    if (job.error) parts.push(h("div", { class: "error-box", "data-testid": "job-error" }, asText(job.error)));
    if (job.result !== null && job.result !== undefined && job.result !== "") {
      parts.push(renderValue(job.result));
      if (job.result_truncated) parts.push(h("p", { class: "muted small", "data-testid": "result-truncated" }, "The result is longer than this page shows: the JobCompleted event holds all of it."));
    }
    if (parts.length === 0) parts.push(h("p", { class: "muted" }, job.status === "running" ? "The job is still running." : "No result."));
    replace(resultBody, parts);
  }

  // --- data ---------------------------------------------------------------------------------
  // `since`: the last seq seen when the answer was asked for. A task an event changed after
  // that keeps its local copy: the answer is older than what the event said (the next read,
  // which that event already asked for, brings it in line).
  function setTasks(list, since) {
    const next = new Map();
    for (const t of list) {
      const local = st.tasks.get(t.id);
      next.set(t.id, local && local._seq > since ? local : t);
    }
    // Keep tasks seen in events but not yet in a (slightly older) answer.
    for (const [id, t] of st.tasks) if (!next.has(id) && t._local) next.set(id, t);
    st.tasks = next;
  }

  let jobAsked = 0;
  async function loadJob() {
    const mine = ++jobAsked;
    const job = await api.getJob(jobId, opts);
    if (mine !== jobAsked) return;
    st.job = job;
    renderHead();
    renderResult();
  }

  // The server answers a job's tasks a page at a time (plan order); read every page, so the
  // graph shows the whole plan however large it is.
  let tasksAsked = 0;
  async function loadTasks() {
    const mine = ++tasksAsked;
    const since = st.lastSeq;
    const all = [];
    let after = null;
    for (let page = 0; page < MAX_TASK_PAGES; page++) {
      const body = await api.listTasks(jobId, { after }, opts);
      if (mine !== tasksAsked) return; // a newer answer is on its way
      all.push(...(body.tasks || []));
      after = body.next_after ?? null;
      if (after === null || (body.tasks || []).length === 0) break;
    }
    setTasks(all, since);
    renderSoon();
  }

  let reconcileTimer = null;
  let reconcileFirst = 0;
  function reconcileSoon() {
    const now = Date.now();
    if (!reconcileTimer) reconcileFirst = now;
    clearTimeout(reconcileTimer);
    timers.delete(reconcileTimer);
    // Debounce, but never hold off longer than a second while events keep coming.
    const wait = Math.max(0, Math.min(RECONCILE_MS, reconcileFirst + 1000 - now));
    reconcileTimer = later(async () => {
      reconcileTimer = null;
      try {
        await Promise.all([loadTasks(), loadJob()]);
      } catch (err) {
        reportError(err, "Could not refresh the job");
      }
    }, wait);
  }

  async function loadArtifacts() {
    try {
      const body = await api.listArtifacts(jobId, opts);
      const list = body.artifacts || [];
      if (list.length === 0) {
        replace(artifactList, h("li", { class: "muted" }, "No artifacts yet."));
        return;
      }
      replace(
        artifactList,
        list.map((a) => {
          const path = typeof a.url === "string" && a.url.startsWith("/") && !a.url.startsWith("//") ? a.url : api.artifactPath(jobId, a.name);
          const previewable = /\.(md|markdown|txt|json|csv|log)$/i.test(a.name) || /^text\//.test(a.content_type || "");
          return h(
            "li",
            { "data-artifact": a.name },
            h("span", { class: "artifact-name" }, a.name),
            h("span", { class: "muted small" }, ` ${fmtBytes(a.size)}${a.content_type ? ` · ${a.content_type}` : ""}`),
            h("div", { class: "spacer" }),
            previewable ? h("button", { type: "button", class: "btn small ghost", "data-testid": "preview-artifact", onclick: () => preview(a, path) }, "Preview") : null,
            h("button", { type: "button", class: "btn small", "data-testid": "download-artifact", onclick: () => download(a, path) }, "Download"),
          );
        }),
      );
    } catch (err) {
      if (err.name !== "AbortError") replace(artifactList, h("li", { class: "error-line" }, `Could not list the artifacts: ${err.message}`));
    }
  }

  async function preview(artifact, path) {
    try {
      const blob = await fetchBlob(path, opts);
      const text = await blob.text();
      const isMd = /\.(md|markdown)$/i.test(artifact.name) || /markdown/.test(artifact.content_type || "");
      replace(
        artifactPreview,
        h("div", { class: "card-head" }, h("h3", {}, artifact.name), h("div", { class: "spacer" }), h("button", { type: "button", class: "btn small ghost", onclick: () => {
          artifactPreview.hidden = true;
        } }, "Close")),
        isMd ? renderMarkdown(text) : h("pre", { class: "code" }, text),
      );
      artifactPreview.hidden = false;
    } catch (err) {
      reportError(err, `Could not open ${artifact.name}`);
    }
  }

  async function download(artifact, path) {
    try {
      const blob = await fetchBlob(path, opts);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: artifact.name, class: "visually-hidden" });
      document.body.appendChild(a);
      a.click();
      a.remove();
      later(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      reportError(err, `Could not download ${artifact.name}`);
    }
  }

  // --- events -------------------------------------------------------------------------------
  function addEventRow(ev) {
    const atBottom = eventWrap.scrollTop + eventWrap.clientHeight >= eventWrap.scrollHeight - 24;
    const taskCell = ev.task_id
      ? h("button", { type: "button", class: "link", onclick: () => selectTask(ev.task_id) }, ev.task_id)
      : h("span", { class: "muted" }, "–");
    eventRows.appendChild(
      h(
        "tr",
        { "data-seq": String(ev.seq), "data-type": ev.type },
        h("td", { class: "num" }, String(ev.seq)),
        h("td", { class: "nowrap num" }, fmtTime(ev.at)),
        h("td", {}, h("span", { class: `evt evt-${ev.type}` }, ev.type)),
        h("td", { class: "nowrap" }, taskCell),
        h("td", { class: "detail" }, eventDetail(ev)),
      ),
    );
    st.eventCount += 1;
    eventCount.textContent = `${st.eventCount} events`;
    if (atBottom) eventWrap.scrollTop = eventWrap.scrollHeight;
  }

  function patchTask(id, fields) {
    const task = st.tasks.get(id);
    if (task) Object.assign(task, fields, { _seq: st.lastSeq });
  }

  function applyEvent(ev) {
    if (!ev || typeof ev.seq !== "number") return;
    if (ev.seq <= st.lastSeq) return;
    st.lastSeq = ev.seq;
    addEventRow(ev);
    const id = ev.task_id;
    const task = id ? st.tasks.get(id) : null;
    if (id && REPLY_ENDS.has(ev.type)) {
      replies.drop(id);
      if (id === st.selected) showLiveReply(panel, id, "");
    }
    switch (ev.type) {
      case "TaskReady":
        patchTask(id, { status: "ready" });
        break;
      case "TaskAssigned":
        patchTask(id, { status: "running", attempt: ev.attempt ?? (task?.attempt || 0) + 1 });
        break;
      case "TaskStarted":
        if (task && !task.started_at) task.started_at = ev.at;
        break;
      case "TaskNeedsBudget":
        patchTask(id, { status: "pending" });
        break;
      case "TaskCompleted":
        patchTask(id, { status: "succeeded", result: ev.result, error: null, finished_at: ev.at });
        break;
      case "TaskRetrying":
        patchTask(id, { status: "pending", error: ev.error, failures: (task?.failures || 0) + 1 });
        break;
      case "TaskFailed":
        patchTask(id, { status: "failed", error: ev.error, finished_at: ev.at });
        break;
      case "TaskCancelled":
        patchTask(id, { status: "cancelled", finished_at: ev.at });
        break;
      case "ApprovalRequested":
        patchTask(id, { status: "awaiting_approval" });
        break;
      case "SubtasksPlanned":
        for (const spec of ev.tasks || []) {
          if (!st.tasks.has(spec.id)) {
            st.tasks.set(spec.id, { ...spec, status: "pending", parent: id, depth: ev.depth ?? (task?.depth ?? 0) + 1, attempt: 0, failures: 0, _local: true });
          }
        }
        break;
      case "LlmCalled":
        if (task) {
          task.tokens_in = (task.tokens_in || 0) + (ev.tokens_in || 0);
          task.tokens_out = (task.tokens_out || 0) + (ev.tokens_out || 0);
        }
        if (st.job) {
          const u = (st.job.usage ||= {});
          u.tokens_in = (u.tokens_in || 0) + (ev.tokens_in || 0);
          u.tokens_out = (u.tokens_out || 0) + (ev.tokens_out || 0);
          u.cost_usd = (u.cost_usd || 0) + (ev.cost_usd || 0);
          u.llm_calls = (u.llm_calls || 0) + 1;
        }
        break;
      case "ToolCalled":
        if (st.job) {
          const spent = (st.job.spent ||= {});
          spent.tool_calls = (spent.tool_calls || 0) + 1;
        }
        break;
      case "ArtifactCreated":
        loadArtifacts();
        break;
      case "JobCompleted":
        if (st.job) Object.assign(st.job, { status: "succeeded", result: ev.result, finished_at: ev.at });
        renderResult();
        loadArtifacts();
        break;
      case "JobFailed":
        if (st.job) Object.assign(st.job, { status: "failed", error: ev.reason ?? ev.error, finished_at: ev.at });
        renderResult();
        break;
      case "JobCancelled":
        if (st.job) Object.assign(st.job, { status: "cancelled", error: ev.reason, finished_at: ev.at });
        renderResult();
        break;
      case "JobReopened":
        if (st.job) Object.assign(st.job, { status: "running", error: null, result: null, finished_at: null });
        renderResult();
        break;
      default:
        break;
    }
    reconcileSoon();
    if (id && id === st.selected) refreshPanelSoon();
    renderSoon();
  }

  async function loadHistory() {
    let after = st.lastSeq;
    for (let page = 0; page < 1000; page++) {
      const body = await api.eventsAfter(jobId, after, opts);
      const events = body.events || [];
      for (const ev of events) applyEvent(ev);
      const next = body.next_after ?? (events.length ? events[events.length - 1].seq : after);
      if (events.length === 0 || next <= after) break;
      after = next;
    }
  }

  function startStream() {
    pollWhileDown();
    if (st.stream) {
      st.stream.restart();
      return;
    }
    st.stream = followEvents({
      path: `${api.eventsPath(jobId)}?deltas=true`,
      lastEventId: () => st.lastSeq || null,
      onEvent: (ev) => {
        if (ev && ev.type === "LlmDelta") {
          const id = replies.add(ev);
          if (id && id === st.selected) showLiveReply(panel, id, replies.text(id));
          return;
        }
        st.streamed += 1;
        live.setAttribute("data-streamed", String(st.streamed));
        applyEvent(ev);
      },
      onState: (state) => {
        st.streamState = state;
        const shown = state === "closed" && TERMINAL_JOB.has(st.job?.status) ? "ended" : state;
        live.textContent = shown;
        live.setAttribute("data-state", shown);
      },
      shouldReconnect: () => !st.stopped && !TERMINAL_JOB.has(st.job?.status),
      onError: (err) => reportError(err, "The event stream stopped"),
    });
  }

  // While the stream is down (a proxy that buffers it, a server restart), read the events as
  // JSON pages instead; applyEvent drops any event seen twice.
  let polling = false;
  function pollWhileDown() {
    if (polling) return;
    polling = true;
    const tick = async () => {
      if (st.stopped) return;
      if (TERMINAL_JOB.has(st.job?.status)) {
        polling = false;
        return;
      }
      if (st.streamState !== "live") {
        try {
          const body = await api.eventsAfter(jobId, st.lastSeq, opts);
          for (const ev of body.events || []) applyEvent(ev);
        } catch (err) {
          if (err.name === "AbortError") return;
        }
      }
      later(tick, POLL_MS);
    };
    later(tick, POLL_MS);
  }

  // --- task panel ---------------------------------------------------------------------------
  function showPanelHint() {
    grid.classList.remove("with-panel");
    replace(panel, h("div", { class: "panel-hint muted" }, "Select a task in the plan to see its goal, inputs, LLM and tool calls, and output."));
  }

  let panelSeq = 0;
  async function selectTask(id) {
    st.selected = id;
    dag.select(id);
    grid.classList.add("with-panel");
    const mine = ++panelSeq;
    if (!panel.querySelector(`.task-detail`) || panel.querySelector(".task-detail")?.dataset.taskId !== id) {
      replace(panel, h("div", { class: "panel-hint muted" }, `Loading ${id}…`));
    }
    try {
      const detail = await api.getTask(jobId, id, opts);
      if (mine !== panelSeq || st.selected !== id) return;
      const openBefore = [...panel.querySelectorAll("details")].map((d) => d.open);
      const scroll = panel.scrollTop;
      replace(
        panel,
        renderTaskDetail(detail, {
          onClose: closePanel,
          onRetry: (taskId) => act("retry task", () => api.retryTask(jobId, taskId)),
          onApprove: (taskId, reason) => act("approve", () => api.approveTask(jobId, taskId, reason)),
          onReject: (taskId, reason) => act("reject", () => api.rejectTask(jobId, taskId, reason)),
          onSelect: selectTask,
        }),
      );
      showLiveReply(panel, id, replies.text(id));
      // Keep what the user opened or closed, and where they were, across live refreshes.
      if (openBefore.length) panel.querySelectorAll("details").forEach((d, i) => {
        if (i < openBefore.length) d.open = openBefore[i];
      });
      panel.scrollTop = scroll;
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(panel, h("div", { class: "panel-hint error-line" }, `Could not load ${id}: ${err.message}`));
    }
  }

  let panelTimer = null;
  function refreshPanelSoon() {
    if (panelTimer) return;
    panelTimer = later(() => {
      panelTimer = null;
      if (st.selected) selectTask(st.selected);
    }, 400);
  }

  function closePanel() {
    st.selected = null;
    dag.select(null);
    showPanelHint();
  }

  // --- actions ------------------------------------------------------------------------------
  async function act(name, call) {
    try {
      await call();
      notify(`Requested: ${name}.`, "info");
      // The stream ended with the job; catch up on what the action started, then follow again.
      await loadHistory();
      await Promise.all([loadJob(), loadTasks()]);
      renderResult();
      if (!TERMINAL_JOB.has(st.job?.status)) startStream();
      if (st.selected) selectTask(st.selected);
    } catch (err) {
      reportError(err, `Could not ${name}`);
    }
  }

  async function deleteJob() {
    if (!window.confirm("Delete this job and its events and artifacts?")) return;
    try {
      await api.deleteJob(jobId);
      notify("Job deleted.", "info");
      location.hash = "#/";
    } catch (err) {
      reportError(err, "Could not delete the job");
    }
  }

  // --- start --------------------------------------------------------------------------------
  (async () => {
    try {
      await loadHistory();
      await Promise.all([loadJob(), loadTasks()]);
      loadArtifacts();
      startStream();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 404) {
        replace(container, h("section", { class: "card empty" }, h("h1", {}, "Job not found"), h("p", {}, `There is no job ${jobId}. `), h("a", { href: "#/" }, "Back to the jobs")));
        return;
      }
      title.textContent = "Could not load the job";
      reportError(err, "Could not load the job");
    }
  })();

  const ticker = setInterval(() => {
    if (st.job && !TERMINAL_JOB.has(st.job.status)) renderHead();
  }, 1000);

  return () => {
    st.stopped = true;
    resize.disconnect();
    clearInterval(ticker);
    for (const t of timers) clearTimeout(t);
    controller.abort();
    st.stream?.close();
    clear(container);
  };
}
