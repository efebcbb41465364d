"""Hooks on whole jobs (SQLite file, scripted model): observe, modify and veto at every point, a
hook that raises, ordering, and engine, per-agent and per-job registration."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from planweave import Engine, JobOptions, Plan, TaskSpec, ToolError, UsageError, tool
from planweave.agents import AgentContext, AgentResult, AgentTask, ReactAgent
from planweave.events import LlmCalled, TaskFailed, ToolCalled
from planweave.hooks import (
    AfterModelCall,
    AfterStep,
    AfterTask,
    AfterToolCall,
    BeforeModelCall,
    BeforeStep,
    BeforeTask,
    BeforeToolCall,
    Hook,
    HookVeto,
    JobEnd,
    JobStart,
    hook,
    load_hooks,
    run_step_hooks,
)
from planweave.llm import ChatMessage, ScriptedModel

ROOT = Path(__file__).resolve().parent.parent
CALL_ECHO = {
    "match": {"role": "executor", "contains": "Echo"},
    "tool_calls": [{"name": "echo", "arguments": {"text": "hello"}}],
}


@tool
def echo(text: str) -> str:
    """Give the text back."""
    return f"echo:{text}"


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    kwargs.setdefault("tools", [echo])
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )


def one_task(goal: str = "Echo hello", agent: str | None = None) -> Plan:
    return Plan(tasks=(TaskSpec(id="t", kind="execute", goal=goal, agent=agent),))


def echo_then_answer(answer: str = "done") -> list[dict[str, Any]]:
    return [CALL_ECHO, {"match": {"role": "executor"}, "content": answer}]


async def of_type(engine: Engine, job_id: str, kind: type[Any]) -> list[Any]:
    return [e for e in await engine.events(job_id) if isinstance(e, kind)]


# --- model calls ------------------------------------------------------------------------------


async def test_a_hook_rewrites_the_prompt_and_the_reply_of_a_model_call(tmp_path: Path) -> None:
    @hook("before_model_call")
    async def rewrite(ctx: BeforeModelCall) -> BeforeModelCall:
        extra = ChatMessage(role="user", content="Always answer in French.")
        return replace(
            ctx, request=ctx.request.model_copy(update={"messages": (*ctx.request.messages, extra)})
        )

    @hook("after_model_call")
    async def shout(ctx: AfterModelCall) -> AfterModelCall | None:
        if ctx.response is None:
            return None
        return replace(
            ctx, response=ctx.response.model_copy(update={"content": ctx.response.content.upper()})
        )

    model = ScriptedModel([{"match": {"role": "executor"}, "content": "bonjour"}])
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        data_dir=tmp_path,
        hooks=[rewrite, shout],
    ) as engine:
        result = await engine.run(plan=one_task("Say hi"))
        assert result.ok, result.error
        assert result.result == "BONJOUR"
        assert model.requests[0].messages[-1].content == "Always answer in French."
        (called,) = await of_type(engine, result.job_id, LlmCalled)
        assert "Always answer in French." in called.prompt
        assert called.reply == "BONJOUR"


async def test_a_vetoed_model_call_fails_the_task_for_good_with_the_reason(tmp_path: Path) -> None:
    @hook("before_model_call", name="budget_guard")
    async def refuse(ctx: BeforeModelCall) -> None:
        raise HookVeto("no model calls after hours")

    seen: list[str | None] = []

    @hook("after_model_call")
    async def observe(ctx: AfterModelCall) -> None:
        seen.append(ctx.error)

    async with engine_for(tmp_path, echo_then_answer(), hooks=[refuse, observe]) as engine:
        result = await engine.run(plan=one_task(), max_attempts=3)
        assert not result.ok
        assert len(seen) == 1 and seen[0] is not None and "after hours" in seen[0]
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert failed.error_type == "vetoed"
        assert failed.attempt == 1  # not retried
        assert "budget_guard" in failed.error and "no model calls after hours" in failed.error
        (called,) = await of_type(engine, result.job_id, LlmCalled)
        assert called.error is not None and "no model calls after hours" in called.error


# --- tool calls -------------------------------------------------------------------------------


async def test_a_hook_changes_tool_arguments_and_results(tmp_path: Path) -> None:
    @hook("before_tool_call")
    async def louder(ctx: BeforeToolCall) -> BeforeToolCall:
        return replace(ctx, args={**ctx.args, "text": "HELLO"})

    @hook("after_tool_call")
    async def tag(ctx: AfterToolCall) -> AfterToolCall:
        return replace(ctx, result=replace(ctx.result, value=f"{ctx.result.value}!"))

    model = ScriptedModel(echo_then_answer())
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        data_dir=tmp_path,
        tools=[echo],
        hooks=[louder, tag],
    ) as engine:
        result = await engine.run(plan=one_task())
        assert result.ok, result.error
        (called,) = await of_type(engine, result.job_id, ToolCalled)
        assert called.args == {"text": "HELLO"}
        assert called.result == "echo:HELLO!"
        observation = [m for m in model.requests[1].messages if m.role == "tool"]
        assert observation[0].content == "echo:HELLO!"


async def test_a_vetoed_tool_call_is_an_error_the_agent_reads(tmp_path: Path) -> None:
    @hook("before_tool_call", name="no_echo")
    async def refuse(ctx: BeforeToolCall) -> None:
        if ctx.name == "echo":
            raise HookVeto("echo is not allowed")

    model = ScriptedModel(echo_then_answer("could not echo"))
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        data_dir=tmp_path,
        tools=[echo],
        hooks=[refuse],
    ) as engine:
        result = await engine.run(plan=one_task())
        assert result.ok, result.error
        assert result.result == "could not echo"
        (called,) = await of_type(engine, result.job_id, ToolCalled)
        assert called.outcome == "error"
        assert called.error is not None and "echo is not allowed" in called.error
        observation = [m for m in model.requests[1].messages if m.role == "tool"]
        assert "echo is not allowed" in observation[0].content


# --- tasks ------------------------------------------------------------------------------------


async def test_task_hooks_rewrite_the_goal_and_change_the_result(tmp_path: Path) -> None:
    @hook("before_task")
    async def regoal(ctx: BeforeTask) -> BeforeTask:
        spec = ctx.item.spec.model_copy(update={"goal": "Echo hello, politely"})
        return replace(ctx, item=ctx.item.model_copy(update={"spec": spec}))

    @hook("after_task")
    async def stamp(ctx: AfterTask) -> AfterTask:
        return replace(
            ctx, outcome=ctx.outcome.model_copy(update={"result": f"[{ctx.outcome.result}]"})
        )

    replies = [{"match": {"role": "executor", "contains": "politely"}, "content": "hi"}]
    async with engine_for(tmp_path, replies, hooks=[regoal, stamp]) as engine:
        result = await engine.run(plan=one_task("Say something"))
        assert result.ok, result.error
        assert result.result == "[hi]"


async def test_a_vetoed_task_fails_for_good_before_it_runs(tmp_path: Path) -> None:
    ran: list[str] = []

    @tool
    def mark(name: str) -> str:
        """Remember a name."""
        ran.append(name)
        return name

    @hook("before_task", name="gate")
    async def gate(ctx: BeforeTask) -> None:
        if ctx.task_id == "b":
            raise HookVeto("task b is off limits")

    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="mark", args={"name": "a"}),
            TaskSpec(id="b", kind="tool", tool="mark", args={"name": "b"}),
        )
    )
    ended: dict[str, str] = {}

    @hook("after_task")
    async def observe(ctx: AfterTask) -> None:
        ended[ctx.task_id] = ctx.outcome.status

    async with engine_for(tmp_path, [], tools=[mark], hooks=[gate, observe]) as engine:
        result = await engine.run(plan=plan, max_attempts=3)
        assert not result.ok
        assert ran == ["a"]
        assert ended == {"a": "succeeded", "b": "failed"}  # the after hooks see the veto
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert failed.task_id == "b" and failed.error_type == "vetoed" and failed.attempt == 1
        assert "task b is off limits" in failed.error


async def test_an_after_task_veto_fails_the_task(tmp_path: Path) -> None:
    @hook("after_task")
    async def reject(ctx: AfterTask) -> None:
        if ctx.outcome.result == "echo:bad":
            raise HookVeto("result rejected")

    plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="echo", args={"text": "bad"}),))
    async with engine_for(tmp_path, [], hooks=[reject]) as engine:
        result = await engine.run(plan=plan)
        assert not result.ok
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert failed.error_type == "vetoed" and "result rejected" in failed.error


# --- workflow steps ---------------------------------------------------------------------------


class TwoSteps:
    """An agent made of two steps, each run through the step hooks (as workflows do)."""

    name = "two_steps"

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        value: Any = task.goal
        for step in ("first", "second"):
            before = await run_step_hooks(
                BeforeStep(
                    job_id=ctx.job_id,
                    task_id=ctx.task_id,
                    workflow=self.name,
                    step=step,
                    input=value,
                )
            )
            output = f"{before.input}>{step}"
            after = await run_step_hooks(
                AfterStep(
                    job_id=ctx.job_id,
                    task_id=ctx.task_id,
                    workflow=self.name,
                    step=step,
                    input=before.input,
                    output=output,
                )
            )
            value = after.output
        return AgentResult(output=value)


async def test_step_hooks_change_input_and_output_and_veto(tmp_path: Path) -> None:
    @hook("before_step")
    async def upper(ctx: BeforeStep) -> BeforeStep:
        return replace(ctx, input=str(ctx.input).upper())

    @hook("after_step")
    async def star(ctx: AfterStep) -> AfterStep:
        return replace(ctx, output=f"{ctx.output}*")

    async with engine_for(tmp_path, [], agents=[TwoSteps()], hooks=[upper, star]) as engine:
        result = await engine.run(plan=one_task("go", agent="two_steps"))
        assert result.ok, result.error
        assert result.result == "GO>FIRST*>second*"  # step two upper-cases "GO>FIRST*"

    @hook("before_step")
    async def no_second(ctx: BeforeStep) -> None:
        if ctx.step == "second":
            raise HookVeto("only one step")

    async with engine_for(tmp_path / "veto", [], agents=[TwoSteps()], hooks=[no_second]) as engine:
        result = await engine.run(plan=one_task("go", agent="two_steps"), max_attempts=2)
        assert not result.ok
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert failed.error_type == "vetoed" and "only one step" in failed.error


class Echo:
    """Answers with its goal and the outputs it was given."""

    name = "echo"

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        return AgentResult(output="|".join([task.goal, *map(str, task.inputs.values())]))


async def test_the_steps_of_a_workflow_run_in_one_task_go_through_the_step_hooks(
    tmp_path: Path,
) -> None:
    from planweave.agents import Loop

    seen: list[tuple[str, str]] = []

    @hook("before_step")
    async def shout(ctx: BeforeStep) -> BeforeStep:
        seen.append((ctx.workflow, ctx.step))
        return replace(ctx, input=replace(ctx.input, goal=ctx.input.goal.upper()))

    @hook("after_step")
    async def star(ctx: AfterStep) -> AfterStep:
        return replace(ctx, output=replace(ctx.output, output=ctx.output.output + "*"))

    loop = Loop("twice", body=Echo(), max_iterations=2)
    async with engine_for(tmp_path, [], agents=[loop], hooks=[shout, star]) as engine:
        result = await engine.run(plan=one_task("go", agent="twice"))
        assert result.ok, result.error
        assert seen == [("twice", "echo#1"), ("twice", "echo#2")]
        assert result.result == "GO|GO**"  # the second iteration is given the first's output

    @hook("before_step")
    async def no_second(ctx: BeforeStep) -> None:
        if ctx.step == "echo#2":
            raise HookVeto("one iteration is enough")

    async with engine_for(tmp_path / "veto", [], agents=[loop], hooks=[no_second]) as engine:
        result = await engine.run(plan=one_task("go", agent="twice"), max_attempts=2)
        assert not result.ok
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert failed.error_type == "vetoed" and "one iteration is enough" in failed.error


async def test_step_hooks_cost_nothing_outside_a_task() -> None:
    ctx = BeforeStep(job_id="j", task_id=None, workflow="w", step="s", input=1)
    assert await run_step_hooks(ctx) is ctx


# --- jobs -------------------------------------------------------------------------------------


class JobWatcher(Hook):
    name = "watcher"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def job_start(self, ctx: JobStart) -> None:
        self.seen.append(("start", ctx.job_id))

    async def job_end(self, ctx: JobEnd) -> None:
        self.seen.append((ctx.status, ctx.job_id))


async def test_job_start_and_end_hooks_see_each_job(tmp_path: Path) -> None:
    watcher = JobWatcher()
    plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="echo", args={"text": "x"}),))
    bad = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="boom"),))

    @tool
    def boom() -> str:
        """Always fail."""
        raise ToolError("boom")

    async with engine_for(tmp_path, [], tools=[echo, boom], hooks=[watcher]) as engine:
        good = await engine.run(plan=plan)
        failed = await engine.run(plan=bad, max_attempts=1)
    assert watcher.seen == [
        ("start", good.job_id),
        ("succeeded", good.job_id),
        ("start", failed.job_id),
        ("failed", failed.job_id),
    ]


# --- a hook that raises -----------------------------------------------------------------------


async def test_a_hook_that_raises_is_logged_and_the_call_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @hook("before_tool_call", name="broken")
    async def broken(ctx: BeforeToolCall) -> None:
        raise RuntimeError("hook bug")

    @hook("after_task", name="broken_after")
    async def broken_after(ctx: AfterTask) -> None:
        raise KeyError("another bug")

    caplog.set_level(logging.ERROR, logger="planweave.hooks")
    replies = echo_then_answer() * 2
    async with engine_for(tmp_path, replies, hooks=[broken, broken_after]) as engine:
        result = await engine.run(plan=one_task())
        second = await engine.run(plan=one_task())  # the worker is still there
        assert result.ok, result.error
        (called,) = await of_type(engine, result.job_id, ToolCalled)
        assert called.outcome == "ok" and called.result == "echo:hello"
    assert second.ok
    messages = [r.getMessage() for r in caplog.records]
    assert any("'broken' failed at before_tool_call" in m for m in messages)
    assert any("'broken_after' failed at after_task" in m for m in messages)


# --- ordering ---------------------------------------------------------------------------------


async def test_hooks_run_by_priority_then_in_registration_order(tmp_path: Path) -> None:
    order: list[str] = []

    def recorder(label: str, priority: int = 0) -> Hook:
        @hook("before_tool_call", name=label, priority=priority)
        async def record(ctx: BeforeToolCall) -> BeforeToolCall:
            order.append(label)
            return replace(ctx, args={"text": f"{ctx.args['text']}+{label}"})

        return record

    hooks = [
        recorder("b"),
        recorder("a"),
        recorder("first", priority=-5),
        recorder("last", priority=5),
    ]
    plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="echo", args={"text": "x"}),))
    async with engine_for(tmp_path, [], hooks=hooks) as engine:
        result = await engine.run(plan=plan)
    assert order == ["first", "b", "a", "last"]
    assert result.result == "echo:x+first+b+a+last"


# --- per agent and per job --------------------------------------------------------------------


async def test_an_agents_hooks_apply_to_its_own_calls_only(tmp_path: Path) -> None:
    seen: list[str | None] = []

    @hook("before_tool_call")
    async def watch(ctx: BeforeToolCall) -> None:
        seen.append(ctx.agent)

    careful = ReactAgent("careful", tools=["echo"], hooks=[watch])
    plain = ReactAgent("plain", tools=["echo"])
    replies = [
        {
            "match": {"role": "careful", "contains": "Echo"},
            "tool_calls": [{"name": "echo", "arguments": {"text": "a"}}],
        },
        {"match": {"role": "careful"}, "content": "a done"},
        {
            "match": {"role": "plain", "contains": "Echo"},
            "tool_calls": [{"name": "echo", "arguments": {"text": "b"}}],
        },
        {"match": {"role": "plain"}, "content": "b done"},
    ]
    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="execute", goal="Echo a", agent="careful"),
            TaskSpec(id="b", kind="execute", goal="Echo b", agent="plain", depends_on=("a",)),
        )
    )
    async with engine_for(tmp_path, replies, agents=[careful, plain]) as engine:
        result = await engine.run(plan=plan)
        assert result.ok, result.error
        assert len(await of_type(engine, result.job_id, ToolCalled)) == 2
    assert seen == ["careful"]


async def test_job_hooks_run_only_for_the_jobs_that_name_them(tmp_path: Path) -> None:
    audited: list[str] = []

    @hook("after_tool_call", name="audit")
    async def audit(ctx: AfterToolCall) -> None:
        audited.append(ctx.job_id)

    plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="echo", args={"text": "x"}),))
    async with engine_for(tmp_path, [], job_hooks=[audit]) as engine:
        plain = await engine.run(plan=plan)
        named = await engine.run(plan=plan, options=JobOptions(hooks=("audit",)))
        with pytest.raises(UsageError, match=r"unknown job hook 'nope'.*audit"):
            await engine.submit(plan=plan, hooks=("nope",))
    assert plain.ok and named.ok
    assert audited == [named.job_id]


# --- loading by name --------------------------------------------------------------------------


def test_hooks_load_by_builtin_name_and_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_hooks.py").write_text(
        "from planweave.hooks import Hook, hook\n"
        "class Audit(Hook):\n"
        "    name = 'audit'\n"
        "    async def after_task(self, ctx):\n"
        "        return None\n"
        "@hook('before_tool_call')\n"
        "async def guard(ctx):\n"
        "    return None\n"
        "not_a_hook = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_hooks(["logging", "metrics", "my_hooks:Audit", "my_hooks:guard"])
    assert [h.name for h in loaded] == ["logging", "metrics", "audit", "guard"]
    with pytest.raises(UsageError, match="not a built-in hook"):
        load_hooks(["loggin"])
    with pytest.raises(UsageError, match="is not a hook"):
        load_hooks(["my_hooks:not_a_hook"])
    with pytest.raises(UsageError, match="has no 'missing'"):
        load_hooks(["my_hooks:missing"])


def test_settings_load_hooks_from_the_environment(tmp_path: Path) -> None:
    from planweave.config import load_settings

    settings = load_settings(
        {}, env={"PLANWEAVE_HOOKS": "logging,metrics", "PLANWEAVE_JOB_HOOKS": "redaction"}
    )
    assert settings.hooks == ("logging", "metrics")
    kwargs = settings.engine_kwargs()
    assert [h.name for h in kwargs["hooks"]] == ["logging", "metrics"]
    assert [h.name for h in kwargs["job_hooks"]] == ["redaction"]


async def test_a_hook_returning_the_wrong_context_is_ignored_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from planweave.hooks import HookSet

    @hook("before_step", name="confused")
    async def confused(ctx: BeforeStep) -> Any:
        return "not a context"

    caplog.set_level(logging.ERROR, logger="planweave.hooks")
    ctx = BeforeStep(job_id="j", task_id="t", workflow="w", step="s", input=1)
    assert await HookSet([confused]).run("before_step", ctx) is ctx
    assert any("'confused' returned a str" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="unknown hook point 'before_everything'"):
        hook(cast(Any, "before_everything"))(confused.fn)


def test_planweave_run_loads_hooks_by_name_from_flags_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "audit_hooks.py").write_text(
        "from pathlib import Path\n"
        "from planweave.hooks import Hook\n"
        "class Audit(Hook):\n"
        "    name = 'audit'\n"
        "    async def after_tool_call(self, ctx):\n"
        "        with Path('audit.txt').open('a') as out:\n"
        "            out.write(f'{ctx.name} {ctx.result.ok}\\n')\n"
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "tasks:\n  - {id: t, kind: tool, tool: calculator, args: {expression: '1+1'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), str(tmp_path)])
    store = ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]
    command = [sys.executable, "-m", "planweave.cli", "run", "--plan", str(plan), *store, "--json"]
    by_flag = subprocess.run(
        [*command, "--hook", "audit_hooks:Audit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = subprocess.run(
        command,
        cwd=tmp_path,
        env={**env, "PLANWEAVE_HOOKS": "audit_hooks:Audit"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_env.returncode == 0, by_env.stderr
    assert (tmp_path / "audit.txt").read_text() == "calculator True\ncalculator True\n"
    bad = subprocess.run(
        [*command, "--hook", "nosuch"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "not a built-in hook" in bad.stderr
