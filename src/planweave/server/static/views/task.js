// The task detail panel: everything one task did, from GET /v1/jobs/{id}/tasks/{task_id}.

import { asText, fmtCost, fmtDateTime, fmtDuration, fmtTime, fmtTokens, h, statusBadge, toMs } from "../dom.js";
import { renderMarkdown } from "../markdown.js";

function section(title, ...body) {
  return h("section", { class: "panel-section" }, h("h3", {}, title), ...body);
}

function pre(value, cls = "") {
  return h("pre", { class: `code ${cls}`.trim() }, asText(value));
}

/** A result: Markdown when it is text, JSON otherwise. */
export function renderValue(value) {
  if (value === null || value === undefined || value === "") return h("p", { class: "muted" }, "(empty)");
  if (typeof value === "string") return renderMarkdown(value);
  return pre(value);
}

function renderPrompt(prompt) {
  if (Array.isArray(prompt)) {
    return h(
      "div",
      { class: "messages" },
      prompt.map((m) =>
        m && typeof m === "object" && "role" in m
          ? h("div", { class: `message role-${String(m.role).replace(/[^\w-]/g, "")}` }, h("div", { class: "message-role" }, String(m.role)), pre(m.content ?? m))
          : pre(m),
      ),
    );
  }
  return pre(prompt);
}

function kv(pairs) {
  return h(
    "dl",
    { class: "kv" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

function llmCall(call, index, open) {
  const summary = h(
    "summary",
    {},
    h("span", { class: "call-title" }, `#${index + 1} ${call.role || "llm"}`),
    h("span", { class: "muted" }, ` ${call.model || ""}`),
    h("span", { class: "call-meta" }, `${fmtTokens(call.tokens_in)} → ${fmtTokens(call.tokens_out)} tok · ${fmtDuration(call.latency_ms)} · ${fmtCost(call.cost_usd)}`),
    call.error ? h("span", { class: "badge status-failed" }, "error") : null,
  );
  return h(
    "details",
    { class: "call llm-call", "data-testid": "llm-call", open },
    summary,
    h("div", { class: "call-label" }, "Prompt"),
    h("div", { "data-testid": "llm-prompt" }, renderPrompt(call.prompt)),
    h("div", { class: "call-label" }, "Reply"),
    h("div", { "data-testid": "llm-reply" }, pre(call.reply)),
    call.error ? h("div", { class: "error-box" }, asText(call.error)) : null,
    h("div", { class: "muted small" }, `at ${fmtTime(call.at)}${call.seq !== undefined ? ` · event #${call.seq}` : ""}`),
  );
}

function toolCall(call, index, open) {
  return h(
    "details",
    { class: "call tool-call", "data-testid": "tool-call", open },
    h(
      "summary",
      {},
      h("span", { class: "call-title" }, `#${index + 1} ${call.name}`),
      h("span", { class: `badge outcome-${String(call.outcome || "").replace(/[^\w-]/g, "")}` }, call.outcome || "?"),
      h("span", { class: "call-meta" }, fmtDuration(call.latency_ms)),
    ),
    h("div", { class: "call-label" }, "Arguments"),
    pre(call.args),
    call.result !== undefined && call.result !== null ? [h("div", { class: "call-label" }, "Result"), pre(call.result)] : null,
    call.error ? h("div", { class: "error-box" }, asText(call.error)) : null,
  );
}

/** The critic's verdicts on the task's answers, oldest first. */
function verdictList(verdicts) {
  return h(
    "ol",
    { class: "verdicts" },
    verdicts.map((v) =>
      h(
        "li",
        { class: "verdict", "data-testid": "critic-verdict", "data-verdict": v.verdict },
        h("span", { class: `badge verdict-${String(v.verdict).replace(/[^\w-]/g, "")}` }, v.verdict),
        h("span", { class: "muted" }, ` answer ${Number(v.revision || 0) + 1} · ${v.critic || "critic"}${v.model ? ` · ${v.model}` : ""}`),
        v.feedback ? h("div", { class: "verdict-feedback" }, asText(v.feedback)) : null,
      ),
    ),
  );
}

/** The call a task waits on, with Approve / Reject and a box for the reason. */
function waitingCall(task, onApprove, onReject) {
  const call = task.waiting_call;
  const reason = h("textarea", { class: "approval-reason", rows: 2, placeholder: "Reason (required to reject; the agent reads it)", "data-testid": "approval-reason" });
  const problem = h("div", { class: "error-line", hidden: true, "data-testid": "approval-problem" });
  const reject = () => {
    if (!reason.value.trim()) {
      problem.textContent = "Give a reason to reject: the agent reads it.";
      problem.hidden = false;
      return;
    }
    onReject(task.id, reason.value.trim());
  };
  return section(
    "Waiting for your approval",
    h("div", { class: "approval", "data-testid": "approval-request" },
      kv([
        ["Tool", call.tool],
        ["Why", call.reason],
        ["Waiting since", fmtDateTime(call.since)],
        ["Rejected at", call.timeout_at ? fmtDateTime(call.timeout_at) : null],
      ]),
      h("div", { class: "call-label" }, "Arguments"),
      pre(call.args),
      reason,
      problem,
      h("div", { class: "panel-actions" },
        h("button", { type: "button", class: "btn small primary", "data-testid": "approve-task", onclick: () => onApprove(task.id, reason.value.trim()) }, "Approve"),
        h("button", { type: "button", class: "btn small danger", "data-testid": "reject-task", onclick: reject }, "Reject"),
      ),
    ),
  );
}

function decisions(list) {
  return section(
    `Approvals (${list.length})`,
    h("ul", { class: "approvals" }, list.map((d) =>
      h("li", { class: d.approved ? "approved" : "rejected", "data-testid": "approval-decision" },
        h("span", { class: `badge ${d.approved ? "status-succeeded" : "status-failed"}` }, d.approved ? "approved" : "rejected"),
        ` ${d.tool} by ${d.by}`,
        d.reason ? `: ${d.reason}` : "",
        d.at ? h("span", { class: "muted" }, ` · ${fmtTime(d.at)}`) : null,
      ),
    )),
  );
}

/**
 * Build the panel for one task.
 *
 * handlers: onClose(), onRetry(taskId), onSelect(taskId) for links to the task's inputs,
 * onApprove(taskId, reason) and onReject(taskId, reason) for a call that waits for approval.
 */
export function renderTaskDetail(task, { onClose, onRetry, onSelect, onApprove = () => {}, onReject = () => {} }) {
  const started = toMs(task.started_at);
  const finished = toMs(task.finished_at);
  const canRetry = task.status === "failed" || task.status === "cancelled";
  const head = h(
    "div",
    { class: "panel-head" },
    h("div", { class: "panel-title" }, h("h2", { title: task.id }, task.id), statusBadge(task.status), h("span", { class: "kind" }, task.kind || "")),
    h("div", { class: "panel-actions" },
      canRetry ? h("button", { type: "button", class: "btn small primary", "data-testid": "retry-task", onclick: () => onRetry(task.id) }, "Retry task") : null,
      h("button", { type: "button", class: "btn small ghost", "aria-label": "Close", onclick: onClose }, "✕"),
    ),
  );
  const llm = task.llm_calls || [];
  const tools = task.tool_calls || [];
  const inputs = task.inputs || {};
  const history = task.history || [];
  const verdicts = task.verdicts || [];
  return h(
    "div",
    { class: "task-detail", "data-task-id": task.id, "data-status": task.status, "data-testid": "task-detail" },
    head,
    h("p", { class: "task-goal" }, task.goal || ""),
    kv([
      ["Attempt", task.attempt ? String(task.attempt) : "–"],
      ["Failures", String(task.failures || 0)],
      ["Agent", task.agent || null],
      ["Tool", task.tool || null],
      ["Parent", task.parent || null],
      ["Depends on", (task.depends_on || []).length ? (task.depends_on || []).join(", ") : null],
      ["Started", started ? fmtDateTime(task.started_at) : null],
      ["Duration", started ? fmtDuration((finished || Date.now()) - started) : null],
      ["Tokens", `${fmtTokens(task.tokens_in || 0)} in / ${fmtTokens(task.tokens_out || 0)} out`],
      ["Cost", fmtCost(task.cost_usd || 0)],
    ]),
    task.status === "awaiting_approval" && task.waiting_call ? waitingCall(task, onApprove, onReject) : null,
    (task.approvals || []).length ? decisions(task.approvals) : null,
    task.error ? section("Error", h("div", { class: "error-box", "data-testid": "task-error" }, asText(task.error))) : null,
    task.args && Object.keys(task.args).length ? section("Arguments", pre(task.args)) : null,
    Object.keys(inputs).length
      ? section(
          "Inputs",
          Object.entries(inputs).map(([dep, value]) =>
            h("div", { class: "input" }, h("button", { type: "button", class: "link", onclick: () => onSelect(dep) }, dep), pre(value, "short")),
          ),
        )
      : null,
    verdicts.length ? section(`Critic (${verdicts.length})`, verdictList(verdicts)) : null,
    llm.length ? section(`LLM calls (${llm.length})`, llm.map((c, i) => llmCall(c, i, llm.length <= 3))) : null,
    tools.length ? section(`Tool calls (${tools.length})`, tools.map((c, i) => toolCall(c, i, tools.length <= 3))) : null,
    section("Output", h("div", { class: "output", "data-testid": "task-output" }, task.status === "succeeded" ? renderValue(task.result) : h("p", { class: "muted" }, task.result ? asText(task.result) : "No output yet."))),
    history.length
      ? section(
          "History",
          h(
            "ol",
            { class: "history" },
            history.map((e) =>
              h("li", {}, h("span", { class: "seq" }, `#${e.seq}`), " ", h("span", { class: `evt evt-${e.type}` }, e.type), " ", h("span", { class: "muted" }, fmtTime(e.at)), e.error ? h("div", { class: "error-line" }, asText(e.error)) : null),
            ),
          ),
        )
      : null,
  );
}
