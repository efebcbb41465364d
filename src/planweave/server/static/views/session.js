// A session's board: its inputs as cards (add, remove), each agent's latest result with its
// version and status, the dependency graph lighting up as agents run, and the aggregate.
//
// The board is read from GET /v1/sessions/{id}; the session's event stream marks agents
// running the moment they start and asks for the board again after each change, so the page
// follows the session live. A stale add (409) or a rate-limited one (429) is shown as a notice
// and the typed text stays in the form.

import { api } from "../api.js";
import { DagView } from "../dag.js";
import { asText, h, replace, statusBadge, truncate } from "../dom.js";
import { notify, reportError } from "../notice.js";
import { followEvents } from "../sse.js";

const REFRESH_MS = 150;
// The board's agent status, as the graph's node status (its colours) and as a word.
const DAG_STATUS = { running: "running", fresh: "succeeded", failed: "failed", dropped: "cancelled", idle: "pending", stale: "ready" };

/** An agent's status on the board: running, stale, failed, dropped, done or idle. */
export function agentStatus(agent) {
  if (!agent) return "idle";
  if (agent.status === "running") return "running";
  if (agent.stale) return "stale";
  if (agent.status === "fresh") return "done";
  return agent.status || "idle";
}

export function mountSession(container, { sessionId }) {
  const st = { board: null, stopped: false, stream: null, timer: null, controller: null, lastSeq: null, running: new Set() };

  const title = h("h1", { class: "job-title" }, sessionId);
  const versionLine = h("span", { class: "muted", "data-testid": "session-version" }, "");
  const live = h("span", { class: "live", "data-state": "connecting", "data-testid": "session-live" }, "connecting");
  const head = h(
    "section",
    { class: "card job-head", "data-testid": "session-head" },
    h("div", { class: "job-head-main" }, h("div", { class: "job-title-row" }, title), h("div", { class: "job-sub" }, h("a", { href: "#/sessions" }, "← Sessions"), " · ", versionLine, " · ", live)),
  );

  // --- inputs -------------------------------------------------------------------------------
  const cards = h("ul", { class: "input-cards", "data-testid": "input-cards", "aria-label": "Inputs" });
  const text = h("textarea", { id: "input-text", name: "text", rows: "2", "data-testid": "input-text", required: true });
  const tags = h("input", { id: "input-tags", name: "tags", type: "text", placeholder: "budget, venue", "data-testid": "input-tags", autocomplete: "off" });
  const addButton = h("button", { type: "submit", class: "btn primary", "data-testid": "add-input" }, "Add input");
  const form = h(
    "form",
    { class: "form input-form", "data-testid": "input-form", "aria-label": "Add an input", novalidate: true, onsubmit: (ev) => {
      ev.preventDefault();
      addInput();
    } },
    h("div", { class: "field" }, h("label", { for: "input-text" }, "New input"), text),
    h("div", { class: "field" }, h("label", { for: "input-tags" }, "Tags (comma-separated, optional)"), tags),
    h("div", { class: "form-actions" }, addButton),
  );
  const inputsCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Inputs")), cards, form);

  // --- agents and graph ---------------------------------------------------------------------
  const dag = new DagView({ onSelect: (id) => document.getElementById(`agent-${id}`)?.scrollIntoView({ block: "nearest" }) });
  dag.svg.setAttribute("aria-label", "Agent dependency graph");
  const dagWrap = h("div", { class: "dag-wrap", "data-testid": "session-dag" }, dag.svg);
  const graphCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Agents")), dagWrap);
  const agentRows = h("tbody");
  const agentTable = h(
    "table",
    { class: "table agents", "data-testid": "agents-table" },
    h("thead", {}, h("tr", {}, ["Agent", "Status", "Version", "Runs", "Latest result"].map((c) => h("th", {}, c)))),
    agentRows,
  );
  const agentsCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Results")), h("div", { class: "table-wrap" }, agentTable));

  // --- aggregate ----------------------------------------------------------------------------
  const aggregateBody = h("div", { class: "aggregate", "data-testid": "aggregate", "aria-live": "polite" }, h("p", { class: "muted" }, "No aggregate yet."));
  const aggregateCard = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Plan")), aggregateBody);

  replace(container, h("div", { class: "job-page session-page", "data-testid": "session-board" }, head, aggregateCard, inputsCard, graphCard, agentsCard));
  const resize = new ResizeObserver(() => dag.fit(dagWrap.clientWidth - 2));
  resize.observe(dagWrap);

  // --- rendering ----------------------------------------------------------------------------
  function render() {
    const board = st.board;
    if (!board) return;
    title.textContent = board.name ? `${board.name} · ${board.session_id}` : board.session_id;
    versionLine.textContent = `version ${board.version}${board.settled ? " · settled" : " · working"}`;
    head.setAttribute("data-settled", board.settled ? "true" : "false");
    renderInputs(board);
    renderAgents(board);
    renderAggregate(board);
  }

  function renderInputs(board) {
    const inputs = board.inputs || [];
    if (inputs.length === 0) {
      replace(cards, h("li", { class: "muted empty" }, "No inputs yet: add one below."));
      return;
    }
    replace(
      cards,
      inputs.map((input) =>
        h(
          "li",
          { class: "input-card", "data-testid": "input-card", "data-input-id": input.input_id },
          h("p", { class: "input-text" }, input.text),
          h(
            "div",
            { class: "input-meta muted small" },
            (input.tags || []).map((t) => h("span", { class: "tag" }, t)),
            input.routes && input.routes.length ? ` → ${input.routes.join(", ")}` : " → no agent",
          ),
          h(
            "button",
            { type: "button", class: "btn small ghost", "data-testid": "remove-input", "aria-label": `Remove input: ${truncate(input.text, 60)}`, onclick: (ev) => removeInput(input.input_id, ev.currentTarget) },
            "Remove",
          ),
        ),
      ),
    );
  }

  function agentList(board) {
    return Object.entries(board.agents || {}).map(([name, agent]) => {
      const status = st.running.has(name) ? "running" : agentStatus(agent);
      return { name, agent, status };
    });
  }

  function renderAgents(board) {
    const agents = agentList(board);
    const tasks = agents.map(({ name, agent, status }) => ({
      id: name,
      status: DAG_STATUS[status === "done" ? "fresh" : status] || "pending",
      kind: "agent",
      goal: `v${agent.version} · ${status}`,
      depends_on: agent.depends_on || [],
      attempt: agent.runs,
      error: agent.error,
    }));
    dag.update(tasks);
    for (const { name, status } of agents) dag.nodes.get(name)?.g.setAttribute("data-agent-status", status);
    replace(
      agentRows,
      agents.map(({ name, agent, status }) =>
        h(
          "tr",
          { id: `agent-${name}`, "data-testid": "agent-row", "data-agent": name, "data-status": status },
          h("th", { scope: "row" }, name),
          h("td", {}, statusBadge(status)),
          h("td", { class: "num" }, String(agent.version ?? 0)),
          h("td", { class: "num" }, String(agent.runs ?? 0)),
          h("td", {}, agent.error ? h("div", { class: "error-line" }, agent.error) : null, agent.value === null || agent.value === undefined ? h("span", { class: "muted" }, "—") : h("pre", { class: "mono small agent-value" }, asText(agent.value))),
        ),
      ),
    );
  }

  function renderAggregate(board) {
    const aggregate = board.aggregate || {};
    const value = aggregate.value;
    const budget = board.budget || {};
    const budgetLine = h(
      "p",
      { class: "small", "data-testid": "session-budget" },
      `Budget: ${budget.tokens ?? 0} tokens${budget.max_tokens ? ` of ${budget.max_tokens}` : ""}, $${Number(budget.cost_usd || 0).toFixed(4)}${budget.max_cost_usd ? ` of $${budget.max_cost_usd}` : ""}${budget.blocked ? " (spent: agents wait)" : ""}`,
    );
    if (!value) {
      replace(aggregateBody, h("p", { class: "muted" }, aggregate.running ? "The aggregate is being computed…" : "No aggregate yet."), budgetLine);
      aggregateBody.setAttribute("data-version", String(aggregate.version ?? 0));
      return;
    }
    const percent = Number(value.completion_percent ?? 0);
    const item = (r) => (r && typeof r === "object" ? [r.category ? h("strong", {}, `${r.category}: `) : null, r.description ?? asText(r), r.priority ? h("span", { class: "muted small" }, ` (${r.priority})`) : null] : String(r));
    replace(
      aggregateBody,
      h(
        "div",
        { class: "completion" },
        h("label", { for: "completion-bar" }, "Completion "),
        h("progress", { id: "completion-bar", max: "100", value: String(percent) }),
        h("span", { class: "num", "data-testid": "completion" }, ` ${percent}%`),
        value.missing_agents && value.missing_agents.length ? h("span", { class: "muted small" }, ` · missing: ${value.missing_agents.join(", ")}`) : null,
      ),
      h("h3", {}, "Recommendations"),
      h("ul", { "data-testid": "recommendations" }, (value.recommendations || []).map((r) => h("li", {}, item(r)))),
      h("h3", {}, "Next steps"),
      h("ol", { "data-testid": "next-steps" }, (value.next_steps || []).map((r) => h("li", {}, item(r)))),
      h("h3", {}, "Budget summary"),
      h("pre", { class: "mono small", "data-testid": "budget-summary" }, asText(value.budget_summary || {})),
      value.error ? h("div", { class: "error-line" }, value.error) : null,
      budgetLine,
    );
    aggregateBody.setAttribute("data-version", String(aggregate.version ?? 0));
  }

  // --- loading ------------------------------------------------------------------------------
  async function load() {
    if (st.stopped) return;
    st.controller?.abort();
    st.controller = new AbortController();
    try {
      const board = await api.getSession(sessionId, { signal: st.controller.signal });
      st.board = board;
      for (const [name, agent] of Object.entries(board.agents || {})) if (agent.status !== "running") st.running.delete(name);
      if (st.lastSeq === null) st.lastSeq = board.seq ?? 0;
      render();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 404) {
        replace(container, h("section", { class: "card empty" }, h("h1", {}, "No such session"), h("p", {}, `There is no session ${sessionId}. `), h("a", { href: "#/sessions" }, "Back to the sessions")));
        stop();
        return;
      }
      reportError(err, "Could not load the session");
    }
  }

  function loadSoon() {
    clearTimeout(st.timer);
    st.timer = setTimeout(load, REFRESH_MS);
  }

  function onEvent(event) {
    if (typeof event.seq === "number") st.lastSeq = event.seq;
    const name = event.agent;
    if (event.type === "agent.run.started" && name) st.running.add(name);
    if (["agent.completed", "agent.failed", "agent.dropped", "agent.run.superseded"].includes(event.type) && name) st.running.delete(name);
    if (st.board && name && st.board.agents?.[name]) renderAgents(st.board);
    loadSoon();
  }

  async function addInput() {
    const value = text.value.trim();
    if (!value) {
      notify("Write the input's text first.");
      text.focus();
      return;
    }
    const tagList = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    addButton.disabled = true;
    try {
      const body = { text: value, tags: tagList };
      if (st.board) body.expected_version = st.board.version;
      await api.addSessionInput(sessionId, body);
      text.value = "";
      tags.value = "";
      notify(null);
      await load();
    } catch (err) {
      showChangeError(err, "Could not add the input");
    } finally {
      addButton.disabled = false;
    }
  }

  async function removeInput(inputId, button) {
    if (button) button.disabled = true;
    try {
      await api.removeSessionInput(sessionId, inputId);
      notify(null);
      await load();
    } catch (err) {
      if (button) button.disabled = false;
      showChangeError(err, "Could not remove the input");
    }
  }

  function showChangeError(err, what) {
    if (err && err.status === 409) {
      const current = err.details?.current_version;
      notify(`The board changed${current !== undefined ? ` (now version ${current})` : ""} while you were writing: it is reloaded, your text is kept. Press Add input again to add it.`);
      load();
    } else if (err && err.status === 429) {
      notify(`Too many changes to this session: try again in ${err.retryAfterS ?? "a few"} seconds. Your text is kept.`);
    } else {
      reportError(err, what);
    }
  }

  function stop() {
    st.stopped = true;
    clearTimeout(st.timer);
    st.controller?.abort();
    st.stream?.close();
    resize.disconnect();
  }

  load().then(() => {
    if (st.stopped) return;
    st.stream = followEvents({
      path: api.sessionEventsPath(sessionId),
      lastEventId: () => st.lastSeq,
      onEvent,
      onState: (state) => {
        live.setAttribute("data-state", state);
        live.textContent = state;
        if (state === "live") loadSoon();
      },
      onError: (err) => reportError(err, "The session's event stream stopped"),
    });
  });
  return stop;
}
