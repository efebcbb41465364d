"""Human approval: a tool call that needs a person pauses only its branch; approve runs the call
once, reject comes back to the agent, a timeout rejects, and decisions reach the job from any
process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec, tool
from planweave.errors import UsageError
from planweave.llm import ScriptedModel
from planweave.state import JobState, replay


def _ledger_tool() -> tuple[Any, list[str]]:
    ledger: list[str] = []

    @tool(high_impact=True, sandbox="Removes a report from the ledger.")
    def remove_report(name: str) -> str:
        """Remove a report for good."""
        ledger.append(name)
        return f"removed {name}"

    return remove_report, ledger


def _model() -> ScriptedModel:
    return ScriptedModel(
        replies=[
            {
                "match": {"contains": "Remove the old report"},
                "tool_calls": [{"name": "remove_report", "arguments": {"name": "old"}}],
            },
            {"match": {"contains": "Remove the old report"}, "content": "the agent is done"},
            {"match": {"contains": "Write a summary"}, "content": "summary written"},
        ]
    )


_PLAN = Plan(
    tasks=(
        TaskSpec(id="risky", kind="execute", goal="Remove the old report"),
        TaskSpec(id="safe", kind="execute", goal="Write a summary"),
    )
)


def _engine(tmp_path: Path, model: ScriptedModel, tools: list[Any], **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        tools=tools,
        data_dir=tmp_path / "data",
        **kwargs,
    )


async def _until(engine: Engine, job_id: str, check: Any) -> JobState:
    for _ in range(1000):
        state = await engine.get(job_id)
        if check(state):
            return state
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never got there: {state.status}")


def _rendered(state: JobState) -> str:
    """The task tree ``planweave run`` draws, as text."""
    import io

    from rich.console import Console

    from planweave.cli._live import render

    buffer = io.StringIO()
    Console(file=buffer, width=300, color_system=None).print(
        render(state, now=state.updated_at, spinners=False)
    )
    return buffer.getvalue()


def _waiting_and_safe_done(state: JobState) -> bool:
    tasks = state.tasks
    return tasks["risky"].status == "awaiting_approval" and tasks["safe"].status == "succeeded"


async def test_only_the_branch_pauses_and_an_approved_call_runs_once(tmp_path: Path) -> None:
    remove_report, ledger = _ledger_tool()
    model = _model()
    async with _engine(tmp_path, model, [remove_report]) as engine:
        job_id = await engine.submit(plan=_PLAN)
        state = await _until(engine, job_id, _waiting_and_safe_done)
        assert state.status == "running"  # the job waits for the person, not done
        assert ledger == []
        tree = _rendered(state)
        assert "awaiting_approval" in tree and "remove_report" in tree
        assert f"planweave approve {job_id} risky" in tree
        # The log rebuilds the same waiting state the store holds (replay).
        replayed = replay(await engine.events(job_id)).tasks["risky"]
        stored = await engine.store.load_job(job_id)
        assert stored is not None
        assert replayed.status == stored.tasks["risky"].status == "awaiting_approval"
        assert replayed.pending_approval == stored.tasks["risky"].pending_approval
        (waiting,) = await engine.approvals()
        assert (waiting.job_id, waiting.task_id, waiting.tool) == (job_id, "risky", "remove_report")
        assert waiting.args == {"name": "old"}
        assert "high impact" in waiting.reason
        await engine.approve(job_id, "risky", reason="go ahead", by="alice")
        result = await engine.wait(job_id)
        events = await engine.events(job_id)
    assert result.ok, result.error
    assert ledger == ["old"]  # the approved call ran, once
    assert result.result["risky"] == "the agent is done"
    # The model call that asked for the tool was replayed from the journal, not made again.
    assert len(model.requests) == 3
    decided = [e for e in events if e.type == "ApprovalDecided"]
    assert [(e.approved, e.by, e.reason) for e in decided] == [(True, "alice", "go ahead")]
    assert [e.type for e in events].count("ApprovalRequested") == 1


async def test_a_rejected_call_comes_back_to_the_agent_which_carries_on(tmp_path: Path) -> None:
    remove_report, ledger = _ledger_tool()
    model = _model()
    async with _engine(tmp_path, model, [remove_report]) as engine:
        job_id = await engine.submit(plan=_PLAN)
        await _until(engine, job_id, _waiting_and_safe_done)
        with pytest.raises(UsageError, match="needs a reason"):
            await engine.reject(job_id, "risky", reason="")
        with pytest.raises(UsageError, match=r"'safe' of job .* is succeeded, not awaiting"):
            await engine.approve(job_id, "safe")
        with pytest.raises(UsageError, match="has no task 'nope'"):
            await engine.approve(job_id, "nope")
        await engine.reject(job_id, "risky", reason="keep it for the audit", by="bob")
        result = await engine.wait(job_id)
    assert result.ok, result.error
    assert ledger == []  # never ran
    last = model.requests[-1].messages[-1]
    assert last.role == "tool"
    assert "rejected by bob: keep it for the audit" in (last.content or "")


async def test_a_tool_task_fails_with_the_rejection(tmp_path: Path) -> None:
    ledger: list[str] = []

    @tool
    def write_note(text: str) -> str:
        """Write a note."""
        ledger.append(text)
        return "written"

    plan = Plan(tasks=(TaskSpec(id="note", kind="tool", tool="write_note", args={"text": "hi"}),))
    async with _engine(tmp_path, ScriptedModel(), [write_note]) as engine:
        job_id = await engine.submit(plan=plan, approve_tools=("write_*",))
        state = await _until(
            engine, job_id, lambda s: s.tasks["note"].status == "awaiting_approval"
        )
        assert "matches 'write_*'" in str(state.tasks["note"].pending_approval)
        await engine.reject(job_id, "note", reason="no notes today", by="carol")
        result = await engine.wait(job_id)
    assert not result.ok
    assert "rejected by carol: no notes today" in (result.error or "")
    assert ledger == []


async def test_an_approval_that_times_out_is_rejected(tmp_path: Path) -> None:
    remove_report, ledger = _ledger_tool()
    model = _model()
    async with _engine(tmp_path, model, [remove_report], approval_timeout_s=0.2) as engine:
        result = await engine.run(plan=_PLAN)
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert ledger == []
    (decided,) = [e for e in events if e.type == "ApprovalDecided"]
    assert decided.by == "timeout" and not decided.approved
    assert "approval_timeout_s" in decided.reason


ALICE = "pw_alice_approvals_token_0000000000"
BOB = "pw_bob_approvals_token_11111111111111"


async def test_approve_and_reject_through_the_api_within_the_tenant(tmp_path: Path) -> None:
    import httpx

    from planweave.config import Settings
    from planweave.server.testing import running_server

    remove_report, ledger = _ledger_tool()
    model = ScriptedModel(
        replies=[
            *_model()._pending,
            {
                "match": {"contains": "Remove the new report"},
                "tool_calls": [{"name": "remove_report", "arguments": {"name": "new"}}],
            },
            {"match": {"contains": "Remove the new report"}, "content": "kept it"},
        ]
    )
    engine = _engine(tmp_path, model, [remove_report])
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"alice:{ALICE},bob:{BOB}"}
    )
    plan = _PLAN.model_dump(mode="json")
    second = {"tasks": [{"id": "again", "kind": "execute", "goal": "Remove the new report"}]}
    try:
        async with running_server(engine, settings) as server:
            auth = {"Authorization": f"Bearer {ALICE}"}
            other = {"Authorization": f"Bearer {BOB}"}
            async with (
                httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10) as alice,
                httpx.AsyncClient(base_url=server.url, headers=other, timeout=10) as bob,
            ):
                job_id = (await alice.post("/v1/jobs", json={"plan": plan})).json()["job_id"]
                waiting = await _listed(alice, 1)
                assert [(w["job_id"], w["task_id"], w["tool"]) for w in waiting] == [
                    (job_id, "risky", "remove_report")
                ]
                assert (await bob.get("/v1/approvals")).json()["approvals"] == []
                url = f"/v1/jobs/{job_id}/tasks/risky"
                refused = await bob.post(url + "/approve", json={"reason": "mine now"})
                assert refused.status_code == 404
                detail = (await alice.get(url)).json()
                assert detail["status"] == "awaiting_approval"
                assert detail["waiting_call"]["args"] == {"name": "old"}
                assert (await alice.post(url + "/reject", json={})).status_code == 422
                safe = await alice.post(f"/v1/jobs/{job_id}/tasks/safe/approve", json={})
                assert safe.status_code == 409
                approved = await alice.post(url + "/approve", json={"reason": "fine"})
                assert approved.status_code == 202, approved.text
                done = await _finished(alice, job_id)
                assert done["status"] == "succeeded"
                (decision,) = (await alice.get(url)).json()["approvals"]
                assert decision["approved"] and decision["by"].startswith("alice/")
                assert ledger == ["old"]

                job2 = (await alice.post("/v1/jobs", json={"plan": second})).json()["job_id"]
                await _listed(alice, 1)
                rejected = await alice.post(
                    f"/v1/jobs/{job2}/tasks/again/reject", json={"reason": "not that one"}
                )
                assert rejected.status_code == 202, rejected.text
                assert (await _finished(alice, job2))["status"] == "succeeded"
    finally:
        await engine.close()
    assert ledger == ["old"]
    assert "rejected by alice/" in (model.requests[-1].messages[-1].content or "")
    assert "not that one" in (model.requests[-1].messages[-1].content or "")


async def _listed(client: Any, count: int) -> list[dict[str, Any]]:
    for _ in range(1000):
        found: list[dict[str, Any]] = (await client.get("/v1/approvals")).json()["approvals"]
        if len(found) == count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("the calls never waited")


async def _finished(client: Any, job_id: str) -> dict[str, Any]:
    for _ in range(1000):
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.01)
    raise AssertionError("the job never finished")


def test_the_approval_settings_are_read_and_checked(tmp_path: Path) -> None:
    from planweave.config import load_settings
    from planweave.errors import ConfigError

    env = {"PLANWEAVE_APPROVE_TOOLS": "write_*, mcp_*", "PLANWEAVE_APPROVAL_TIMEOUT_S": "30"}
    settings = load_settings({}, env=env, config_file=None)
    assert settings.approve_tools == ("write_*", "mcp_*")
    kwargs = settings.engine_kwargs(with_tools=False)
    assert kwargs["approve_tools"] == ("write_*", "mcp_*")
    assert kwargs["approval_timeout_s"] == 30
    with pytest.raises(ConfigError, match="PLANWEAVE_APPROVAL_TIMEOUT_S: expected a number"):
        load_settings({}, env={"PLANWEAVE_APPROVAL_TIMEOUT_S": "-1"}, config_file=None)


async def test_the_engines_patterns_are_added_to_every_jobs_own(tmp_path: Path) -> None:
    engine = _engine(tmp_path, ScriptedModel(), [], approve_tools=("mcp_*",), approval_timeout_s=60)
    plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="current_time"),))
    async with engine:
        mine = await engine.get(await engine.submit(plan=plan, approve_tools=("write_file",)))
        own_timeout = await engine.get(await engine.submit(plan=plan, approval_timeout_s=5))
    assert mine.options.approve_tools == ("mcp_*", "write_file")
    assert mine.options.approval_timeout_s == 60
    assert own_timeout.options.approval_timeout_s == 5


async def test_a_second_decision_on_the_same_wait_is_refused(tmp_path: Path) -> None:
    remove_report, ledger = _ledger_tool()
    async with _engine(tmp_path, _model(), [remove_report]) as engine:
        job_id = await engine.submit(plan=_PLAN)
        await _until(engine, job_id, _waiting_and_safe_done)
        await engine.approve(job_id, "risky")
        with pytest.raises(UsageError, match="not awaiting approval"):
            await engine.reject(job_id, "risky", reason="too late")
        result = await engine.wait(job_id)
    assert result.ok and ledger == ["old"]
