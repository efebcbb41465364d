// The new-job form: a goal for the planner, or a plan written by hand (JSON), plus options.

import { api } from "../api.js";
import { h, replace } from "../dom.js";

const EXAMPLE_PLAN = JSON.stringify(
  {
    tasks: [
      { id: "outline", goal: "Outline a short post about Go channels", kind: "execute", depends_on: [] },
      { id: "draft", goal: "Write the post from the outline", kind: "execute", depends_on: ["outline"] },
    ],
  },
  null,
  2,
);

/** Parse the plan text; returns {plan} or {error}. */
export function parsePlan(text) {
  let plan;
  try {
    plan = JSON.parse(text);
  } catch (exc) {
    return { error: `The plan is not valid JSON: ${exc.message}` };
  }
  if (Array.isArray(plan)) plan = { tasks: plan };
  if (!plan || typeof plan !== "object" || !Array.isArray(plan.tasks) || plan.tasks.length === 0) {
    return { error: 'The plan needs a "tasks" list with at least one task.' };
  }
  for (const [i, t] of plan.tasks.entries()) {
    if (!t || typeof t !== "object" || typeof t.id !== "string" || !t.id) return { error: `Task ${i + 1} needs an "id".` };
  }
  return { plan };
}

export function mountNewJob(container) {
  let mode = "goal";
  const goal = h("textarea", { id: "goal", name: "goal", rows: "5", placeholder: "What should be done? e.g. Write a short blog post about Go concurrency", "data-testid": "goal-input" });
  const planText = h("textarea", { id: "plan", name: "plan", rows: "14", class: "mono", spellcheck: "false", "data-testid": "plan-input" });
  planText.value = EXAMPLE_PLAN;
  const model = h("input", { id: "opt-model", name: "model", type: "text", placeholder: "server default, e.g. openai:gpt-4o-mini", "data-testid": "opt-model" });
  const onFailure = h(
    "select",
    { id: "opt-on-failure", name: "on_failure", "data-testid": "opt-on-failure" },
    h("option", { value: "" }, "default (fail)"),
    h("option", { value: "fail" }, "fail: end the job"),
    h("option", { value: "replan" }, "replan: plan around the failure"),
  );
  const maxCost = h("input", { id: "opt-max-cost", name: "max_cost_usd", type: "number", min: "0", step: "0.01", placeholder: "server default", "data-testid": "opt-max-cost" });
  const priority = h("input", { id: "opt-priority", name: "priority", type: "number", step: "1", placeholder: "0", "data-testid": "opt-priority" });
  const error = h("div", { class: "form-error", role: "alert", hidden: true, "data-testid": "form-error" });
  const submit = h("button", { type: "submit", class: "btn primary", "data-testid": "submit-job" }, "Submit job");

  const goalField = h("div", { class: "field" }, h("label", { for: "goal" }, "Goal"), goal, h("p", { class: "hint" }, "The planner turns the goal into a plan of tasks, runs them and composes the answer."));
  const planField = h(
    "div",
    { class: "field", hidden: true },
    h("label", { for: "plan" }, "Plan (JSON)"),
    planText,
    h("p", { class: "hint" }, "Tasks: id, goal, kind (execute | plan | tool | compose), depends_on, and agent, tool, args where needed."),
  );
  const tab = (value, label) =>
    h("label", { class: "seg" }, h("input", { type: "radio", name: "mode", value, checked: value === mode, "data-testid": `mode-${value}`, onchange: () => setMode(value) }), h("span", {}, label));

  function setMode(value) {
    mode = value;
    goalField.hidden = value !== "goal";
    planField.hidden = value !== "plan";
  }

  const form = h(
    "form",
    { class: "card form", "data-testid": "new-job-form", novalidate: true },
    h("div", { class: "card-head" }, h("h1", {}, "New job")),
    h("div", { class: "segmented", role: "radiogroup", "aria-label": "Job from" }, tab("goal", "From a goal"), tab("plan", "From a plan")),
    goalField,
    planField,
    h(
      "fieldset",
      { class: "options" },
      h("legend", {}, "Options"),
      h("div", { class: "field" }, h("label", { for: "opt-model" }, "Model"), model),
      h("div", { class: "field" }, h("label", { for: "opt-on-failure" }, "On failure"), onFailure),
      h("div", { class: "field" }, h("label", { for: "opt-max-cost" }, "Max cost (USD)"), maxCost),
      h("div", { class: "field" }, h("label", { for: "opt-priority" }, "Priority"), priority),
    ),
    error,
    h("div", { class: "form-actions" }, submit, h("a", { class: "btn ghost", href: "#/" }, "Cancel")),
  );

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("");
    const body = {};
    if (mode === "goal") {
      const text = goal.value.trim();
      if (!text) {
        showError("Write a goal first.");
        goal.focus();
        return;
      }
      body.goal = text;
    } else {
      const parsed = parsePlan(planText.value);
      if (parsed.error) {
        showError(parsed.error);
        planText.focus();
        return;
      }
      body.plan = parsed.plan;
    }
    const options = {};
    if (model.value.trim()) options.model = model.value.trim();
    if (onFailure.value) options.on_failure = onFailure.value;
    if (maxCost.value !== "") {
      const v = Number(maxCost.value);
      if (!(v >= 0)) return showError("Max cost must be a number of dollars, 0 or more.");
      options.max_cost_usd = v;
    }
    if (priority.value !== "") {
      const v = Number(priority.value);
      if (!Number.isInteger(v)) return showError("Priority must be a whole number.");
      options.priority = v;
    }
    if (Object.keys(options).length) body.options = options;
    submit.disabled = true;
    try {
      const job = await api.submitJob(body);
      location.hash = `#/jobs/${encodeURIComponent(job.job_id)}`;
    } catch (err) {
      if (err.status === 401 || err.status === 403) showError("The server needs a valid API token: enter it at the top right.");
      else showError(err.message || String(err));
    } finally {
      submit.disabled = false;
    }
  });

  replace(container, form);
  goal.focus();
  return null;
}
