// Replies being written, by task, from the job stream's LlmDelta messages (?deltas=true).
// Deltas are live only (never stored, no seq): the task panel shows the text of a running
// task's current model call as it grows; the finished call appears among its LLM calls.

import { h } from "./dom.js";

export class LiveReplies {
  constructor() {
    this.byTask = new Map();
  }

  /** Add a delta to its task's reply; a later call or attempt starts afresh. Returns the task id. */
  add(ev) {
    const id = ev.task_id;
    if (!id || typeof ev.text !== "string") return null;
    const key = [ev.attempt || 1, ev.call || 1];
    const now = this.byTask.get(id);
    if (now && (key[0] < now.key[0] || (key[0] === now.key[0] && key[1] < now.key[1]))) return null;
    const same = now && now.key[0] === key[0] && now.key[1] === key[1];
    this.byTask.set(id, { key, text: (same ? now.text : "") + ev.text });
    return id;
  }

  text(id) {
    return this.byTask.get(id)?.text || "";
  }

  drop(id) {
    this.byTask.delete(id);
  }
}

/** Show (or update, or remove when empty) the reply being written in a task's panel. */
export function showLiveReply(panel, taskId, text) {
  const detail = panel.querySelector(".task-detail");
  if (!detail || detail.dataset.taskId !== taskId) return;
  let box = detail.querySelector('[data-testid="live-reply"]');
  if (!text) {
    if (box) box.closest("section").remove();
    return;
  }
  if (!box) {
    box = h("pre", { class: "code live-reply", "data-testid": "live-reply", "aria-live": "polite" });
    const sectionEl = h("section", { class: "panel-section" }, h("h3", {}, "Writing…"), box);
    const goal = detail.querySelector(".task-goal");
    if (goal) goal.after(sectionEl);
    else detail.appendChild(sectionEl);
  }
  box.textContent = text; // text, never HTML: a reply cannot inject markup
  box.scrollTop = box.scrollHeight;
}
