"""The live tree of a job's tasks, as a pure function of its state.

``render(state, now=...)`` turns a ``JobState`` (rebuilt in the CLI by replaying the job's events
through ``planweave.state.apply``) into a rich renderable. It reads no clock and touches no
terminal, so it is tested by printing into a recording console; the command redraws it about
eight times a second.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from planweave.cli._format import (
    STATUS_STYLE,
    VERDICT_STYLE,
    cost,
    duration,
    spend_parts,
    tokens,
    truncate,
    verdict_text,
)
from planweave.cli._replies import reply_tail
from planweave.state import JobState, TaskState

__all__ = ["STATUS_ICON", "render", "task_label"]

STATUS_ICON: dict[str, str] = {
    "pending": "○",
    "ready": "◌",
    "running": "●",
    "awaiting_approval": "⏸",
    "succeeded": "✓",
    "failed": "✗",
    "cancelled": "⊘",
}
"""Icon of each task status (a running task shows a spinner in the live view)."""

GOAL_WIDTH = 56


def render(
    state: JobState | None,
    *,
    now: float,
    max_tasks: int = 40,
    spinners: bool = True,
    replies: Mapping[str, str] | None = None,
) -> RenderableType:
    """The job's header and its task tree.

    Args:
        state: The job (``None`` while its first event has not arrived).
        now: Current time, for the elapsed times of running work.
        max_tasks: Most task lines shown; past it, running, ready and failed tasks are kept
            and the rest summed up in one line.
        spinners: Animate running tasks (off for a final, static picture).
        replies: The reply each task's model is writing, by task id: a running task shows
            its last lines under it.
    """
    if state is None:
        return Text("waiting for the job to start…", style="dim")
    tree = Tree(_header(state, now), guide_style="dim")
    visible = _visible(state, max_tasks)
    nodes: dict[str, Tree] = {}
    for task in state.tasks.values():
        if task.id not in visible:
            continue
        parent = nodes.get(task.parent) if task.parent is not None else None
        label = task_label(task, now=now, spinner=spinners)
        nodes[task.id] = (parent or tree).add(label)
        reply = replies.get(task.id) if replies and task.status == "running" else None
        if reply and reply.strip():
            nodes[task.id].add(reply_tail(reply))
    hidden = len(state.tasks) - len(visible)
    if hidden > 0:
        counts: dict[str, int] = {}
        for task in state.tasks.values():
            if task.id not in visible:
                counts[task.status] = counts.get(task.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        tree.add(Text(f"… {hidden} more tasks ({summary})", style="dim"))
    footer = _footer(state)
    return Group(tree, footer) if footer is not None else tree


def task_label(task: TaskState, *, now: float, spinner: bool = True) -> RenderableType:
    """One task's line: status icon, id, kind (and agent), goal, status word, elapsed, tokens
    and cost."""
    style = STATUS_STYLE.get(task.status, "")
    line = Text()
    line.append(f"{task.id} ", style="bold")
    agent = f" {task.spec.agent}" if task.spec.agent else ""  # a workflow step's agent
    line.append(f"[{task.spec.kind}{agent}] ", style="dim")
    goal = task.spec.goal or (f"{task.spec.tool}" if task.spec.tool else "")
    if goal:
        line.append(truncate(goal, GOAL_WIDTH) + "  ")
    status: str = task.status
    if task.superseded and not task.terminal:
        status = "superseded"
    elif task.status == "pending" and task.failures:
        status = f"retrying after {task.failures} failure{'s' if task.failures > 1 else ''}"
    elif task.status == "running" and task.reviewing:
        status = "reviewing"
    line.append(status, style=style)
    if task.attempt > 1:
        line.append(f" (attempt {task.attempt})", style="dim")
    elapsed = _task_elapsed(task, now)
    if elapsed:
        line.append(f"  {elapsed}", style="dim")
    if task.tokens_in or task.tokens_out:
        line.append(f"  {tokens(task.tokens_in + task.tokens_out)} tok", style="dim")
    if task.cost_usd:
        line.append(f"  {cost(task.cost_usd)}", style="dim")
    if task.verdicts:
        line.append(f"  {verdict_text(task)}", style=VERDICT_STYLE.get(task.verdicts[-1][0], ""))
    if task.status == "failed" and task.error:
        line.append(f"  {truncate(task.error, 80)}", style="red")
    if task.status == "awaiting_approval" and task.pending_approval is not None:
        line.append(f"  {task.pending_approval.get('tool')}", style="bold blue")
        line.append(f" ({truncate(str(task.pending_approval.get('reason', '')), 60)})", style="dim")
    if task.superseded:
        line.stylize("strike dim")
    if task.status == "running" and spinner:
        return Spinner("dots", text=line, style=style)
    return Text.assemble((STATUS_ICON.get(task.status, "?") + " ", style), line)


def _header(state: JobState, now: float) -> RenderableType:
    done = sum(1 for task in state.tasks.values() if task.terminal)
    total = len(state.tasks)
    progress = f"{done}/{total} tasks done"
    if state.status in ("failed", "cancelled"):  # "done" would hide what did not succeed
        succeeded = sum(1 for task in state.tasks.values() if task.status == "succeeded")
        progress = f"{succeeded}/{total} tasks done, job {state.status}"
    style = STATUS_STYLE.get(state.status, "")
    title = Text.assemble(
        ("job ", "bold"),
        (state.id, "bold"),
        "  ",
        (state.status, f"bold {style}"),
        ("  " + "  ".join(spend_parts(state, now)), "dim"),
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(total, 1), completed=done, width=30),
        Text(progress, style="dim"),
    )
    goal = Text(truncate(state.goal, 100), style="italic")
    return Group(title, goal, bar)


def _footer(state: JobState) -> RenderableType | None:
    waiting = [t.id for t in state.tasks.values() if t.status == "awaiting_approval"]
    if waiting and not state.terminal:
        lines = [
            f"task {task_id} waits for your approval: planweave approve {state.id} {task_id}"
            f"  (or planweave reject {state.id} {task_id} --reason ...)"
            for task_id in waiting
        ]
        return Text("\n".join(lines), style="bold blue")
    if state.status == "failed" and state.error:
        return Text(f"failed: {state.error}", style="red")
    if state.status == "cancelled":
        return Text(f"cancelled: {state.error or 'cancelled'}", style="magenta")
    return None


def _task_elapsed(task: TaskState, now: float) -> str:
    if task.started_at is None:
        return ""
    end = task.finished_at if task.finished_at is not None else now
    return duration(end - task.started_at)


def _visible(state: JobState, max_tasks: int) -> set[str]:
    """Ids of the tasks to draw: all of them, or the interesting ones and their ancestors."""
    tasks = state.tasks
    if len(tasks) <= max_tasks:
        return set(tasks)
    chosen: list[str] = [
        t.id for t in tasks.values() if t.status in ("running", "awaiting_approval", "failed")
    ]
    chosen += [t.id for t in tasks.values() if t.status == "ready"]
    visible: set[str] = set()
    for task_id in chosen[:max_tasks]:
        current: str | None = task_id
        while current is not None and current not in visible and current in tasks:
            visible.add(current)
            current = tasks[current].parent
    return visible
