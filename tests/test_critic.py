"""The critic: each verdict on the scripted model, Python critics, per-task and per-agent
critics, the verdict events, and what the CLI shows."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from planweave import Engine, TaskSpec
from planweave.agents import ReactAgent
from planweave.cli import app
from planweave.critic import CriticTask, Verdict
from planweave.errors import UsageError
from planweave.llm import ScriptedModel
from planweave.state import replay


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )


def verdict(kind: str, feedback: str = "") -> dict[str, Any]:
    return {"match": {"role": "critic"}, "json": {"verdict": kind, "feedback": feedback}}


ONE_TASK = [TaskSpec(id="poem", goal="Write a haiku about rain")]


async def stored_equals_replayed(engine: Engine, job_id: str) -> list[Any]:
    events = await engine.events(job_id)
    stored = await engine.get(job_id)
    assert stored is not None
    assert replay(events).to_row() == stored.to_row()
    rebuilt = replay(events)
    for task_id, task in rebuilt.tasks.items():
        assert task.to_row(job_id) == stored.tasks[task_id].to_row(job_id)
    return events


async def test_pass_accepts_the_answer(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Rain on the roof"},
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert result.ok, result.error
        assert result.result == "Rain on the roof"
        events = await stored_equals_replayed(engine, result.job_id)
        verdicts = [e for e in events if e.type == "CriticVerdict"]
        assert [(v.verdict, v.revision, v.critic) for v in verdicts] == [("pass", 0, "llm")]
        assert verdicts[0].model is not None and verdicts[0].usage.llm_calls == 1
        types = [e.type for e in events if e.task_id == "poem"]
        assert types.index("TaskReviewing") < types.index("CriticVerdict")
        assert types.index("CriticVerdict") < types.index("TaskCompleted")
        assigned = [e.worker for e in events if e.type == "TaskAssigned"]
        assert assigned == ["executor", "critic"]


async def test_revise_runs_the_task_again_with_the_feedback(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor", "contains": "mention thunder"}, "content": "Thunder, rain"},
        {"match": {"role": "executor"}, "content": "Rain on the roof"},
        verdict("revise", "mention thunder"),
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert result.ok, result.error
        assert result.result == "Thunder, rain"
        events = await stored_equals_replayed(engine, result.job_id)
        prompts = [e.prompt for e in events if e.type == "LlmCalled" and e.role == "executor"]
        assert len(prompts) == 2
        assert "mention thunder" not in prompts[0] and "mention thunder" in prompts[1]
        verdicts = [(e.verdict, e.revision) for e in events if e.type == "CriticVerdict"]
        assert verdicts == [("revise", 0), ("pass", 1)]
        state = await engine.get(result.job_id)
        assert state is not None
        assert state.tasks["poem"].failures == 0  # a revision is not a failure


async def test_revise_past_max_revisions_fails_the_task(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Rain", "repeat": True},
        {**verdict("revise", "more rain"), "repeat": True},
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm", max_revisions=1)
        assert not result.ok
        assert result.error is not None and "max_revisions" in result.error
        events = await stored_equals_replayed(engine, result.job_id)
        verdicts = [(e.verdict, e.revision) for e in events if e.type == "CriticVerdict"]
        assert verdicts == [("revise", 0), ("revise", 1)]
        failed = [e for e in events if e.type == "TaskFailed"]
        assert failed[0].error_type == "critic_rejected"


async def test_reject_fails_the_task_with_the_reason(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Sunshine"},
        verdict("reject", "it is about the sun, not rain"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert not result.ok
        assert result.error is not None and "it is about the sun, not rain" in result.error
        events = await stored_equals_replayed(engine, result.job_id)
        assert [e.verdict for e in events if e.type == "CriticVerdict"] == ["reject"]
        state = await engine.get(result.job_id)
        assert state is not None and state.tasks["poem"].status == "failed"


async def test_replan_goes_through_the_replan_path(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor", "contains": "Write a haiku"}, "content": "Sunshine"},
        verdict("replan", "a haiku needs three lines: split the work"),
        {
            "match": {"role": "planner"},
            "json": {"tasks": [{"id": "t1", "goal": "Write three lines about rain"}]},
        },
        {"match": {"role": "executor", "contains": "three lines"}, "content": "Rain\nfalls\nsoft"},
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert result.ok, result.error
        events = await stored_equals_replayed(engine, result.job_id)
        replans = [e for e in events if e.type == "ReplanRequested"]
        assert len(replans) == 1 and replans[0].failed_task == "poem"
        assert "split the work" in replans[0].reason
        assert [e.verdict for e in events if e.type == "CriticVerdict"] == ["replan", "pass"]
        assert result.result == "Rain\nfalls\nsoft"


def no_lorem(task: CriticTask, answer: Any) -> Verdict:
    """A Python critic: sends back answers with placeholder text, once."""
    if "lorem" in str(answer):
        return Verdict(verdict="revise", feedback=f"no placeholder text in {task.task_id}")
    return Verdict(verdict="pass")


async def test_a_python_critic_registered_by_name(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor", "contains": "no placeholder"}, "content": "Rain falls"},
        {"match": {"role": "executor"}, "content": "lorem ipsum"},
    ]
    async with engine_for(tmp_path, replies, critics={"no_lorem": no_lorem}) as engine:
        result = await engine.run(plan=ONE_TASK, critic="no_lorem")
        assert result.ok, result.error
        assert result.result == "Rain falls"
        events = await stored_equals_replayed(engine, result.job_id)
        verdicts = [(e.verdict, e.critic, e.model) for e in events if e.type == "CriticVerdict"]
        assert verdicts == [("revise", "no_lorem", None), ("pass", "no_lorem", None)]
        assert not any(e.type == "LlmCalled" and e.role == "critic" for e in events)


async def test_a_python_critic_by_import_path(tmp_path: Path) -> None:
    module = tmp_path / "my_critics.py"
    module.write_text(
        "from planweave.critic import Verdict\n\n"
        "async def strict(task, answer):\n"
        "    return {'verdict': 'reject', 'feedback': 'too short: ' + str(len(answer))}\n"
    )
    replies = [{"match": {"role": "executor"}, "content": "Rain"}]
    critics = {"strict": f"{module}:strict"}
    async with engine_for(tmp_path, replies, critics=critics) as engine:
        result = await engine.run(plan=ONE_TASK, critic="strict")
        assert not result.ok
        assert result.error is not None and "too short: 4" in result.error


async def test_an_unknown_critic_is_refused_before_anything_runs(tmp_path: Path) -> None:
    async with engine_for(tmp_path, []) as engine:
        with pytest.raises(UsageError, match="unknown critic 'nope'; known critics: llm"):
            await engine.submit(plan=ONE_TASK, critic="nope")
        plan = [TaskSpec(id="a", goal="Write", critic="missing")]
        with pytest.raises(UsageError, match="task 'a' names unknown critic 'missing'"):
            await engine.submit(plan=plan)
        assert await engine.list_jobs() == []


async def test_critic_per_task_on_and_off(tmp_path: Path) -> None:
    plan = [
        TaskSpec(id="checked", goal="Write a checked line", critic=True),
        TaskSpec(id="free", goal="Write a free line"),
        TaskSpec(id="skipped", goal="Write a skipped line", critic=False),
    ]
    replies = [
        {"match": {"role": "executor", "contains": "checked"}, "content": "checked line"},
        {"match": {"role": "executor", "contains": "free"}, "content": "free line"},
        {"match": {"role": "executor", "contains": "skipped"}, "content": "skipped line"},
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=plan)  # no job critic: only "checked" is reviewed
        assert result.ok, result.error
        events = await engine.events(result.job_id)
        assert [e.task_id for e in events if e.type == "CriticVerdict"] == ["checked"]
    replies = [
        {"match": {"role": "executor", "contains": "checked"}, "content": "checked line"},
        {"match": {"role": "executor", "contains": "free"}, "content": "free line"},
        {"match": {"role": "executor", "contains": "skipped"}, "content": "skipped line"},
        {**verdict("pass"), "repeat": True},
    ]
    async with engine_for(tmp_path / "2", replies) as engine:
        result = await engine.run(plan=plan, critic="llm")  # the job's critic: all but "skipped"
        assert result.ok, result.error
        events = await engine.events(result.job_id)
        reviewed = sorted(e.task_id or "" for e in events if e.type == "CriticVerdict")
        assert reviewed == ["checked", "free"]


async def test_critic_per_agent(tmp_path: Path) -> None:
    careful = ReactAgent("careful", critic="no_lorem", tools=[])
    plan = [
        TaskSpec(id="a", goal="Write line a", agent="careful"),
        TaskSpec(id="b", goal="Write line b"),
    ]
    replies = [
        {"match": {"role": "careful", "contains": "no placeholder"}, "content": "line a"},
        {"match": {"role": "careful"}, "content": "lorem a"},
        {"match": {"role": "executor"}, "content": "lorem b"},
    ]
    engine = engine_for(tmp_path, replies, agents=[careful], critics={"no_lorem": no_lorem})
    async with engine:
        result = await engine.run(plan=plan)
        assert result.ok, result.error
        state = await engine.get(result.job_id)
        assert state is not None
        assert state.tasks["a"].result == "line a"
        assert state.tasks["b"].result == "lorem b"  # the default agent has no critic
        events = await engine.events(result.job_id)
        assert [(e.task_id, e.verdict) for e in events if e.type == "CriticVerdict"] == [
            ("a", "revise"),
            ("a", "pass"),
        ]


def test_yaml_agent_critic_field(tmp_path: Path) -> None:
    from planweave.agents import AgentRegistry
    from planweave.agents._declared import register_folder
    from planweave.errors import ConfigError

    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "writer.yaml").write_text("name: writer\nkind: react\ncritic: true\n")
    registry = AgentRegistry()
    register_folder(registry, folder, known_tools=[])
    assert getattr(registry.get("writer"), "critic", None) == "llm"
    (folder / "writer.yaml").write_text("name: writer\nkind: react\ncritic: 3\n")
    with pytest.raises(ConfigError, match="critic"):
        register_folder(AgentRegistry(), folder, known_tools=[])


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PLANWEAVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def cli_args(work: Path) -> list[str]:
    return ["--store", f"sqlite:///{work / 'jobs.db'}", "--data-dir", str(work / "data")]


def test_run_with_critic_shows_the_verdicts(work: Path) -> None:
    (work / "plan.yaml").write_text(
        yaml.safe_dump({"tasks": [{"id": "poem", "goal": "Write a haiku about rain"}]})
    )
    replies = [
        {"match": {"role": "executor", "contains": "mention thunder"}, "content": "Thunder"},
        {"match": {"role": "executor"}, "content": "Rain on the roof"},
        verdict("revise", "mention thunder"),
        verdict("pass"),
    ]
    (work / "replies.yaml").write_text(yaml.safe_dump({"replies": replies}))
    args = ["run", "--plan", "plan.yaml", "--model", "scripted:replies.yaml", *cli_args(work)]
    result = CliRunner().invoke(app, [*args, "--critic", "--max-revisions", "1"])
    assert result.exit_code == 0, result.output
    assert "critic: pass after 1 revision" in result.stdout
    job_id = only_line_with(result.stdout, "job ")
    events = CliRunner().invoke(app, ["events", job_id, *cli_args(work)])
    assert events.exit_code == 0, events.output
    shown = CliRunner().invoke(app, ["show", job_id, *cli_args(work)])
    assert shown.exit_code == 0, shown.output
    assert "revised 1x by the critic" in shown.stdout
    as_json = CliRunner().invoke(app, ["show", job_id, *cli_args(work), "--json"])
    task = json.loads(as_json.stdout)["tasks"][0]
    assert (task["critic"], task["revisions"]) == ("llm", 1)
    assert "CriticVerdict" in events.stdout and "revise (revision 0, llm): mention thunder" in (
        events.stdout
    )


def only_line_with(text: str, prefix: str) -> str:
    for line in text.splitlines():
        if line.startswith(prefix):
            return line.split()[1]
    raise AssertionError(f"no line starts with {prefix!r}:\n{text}")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--critic", "--max-revisions", "21"], "--max-revisions"),
        (["--critic-name", "nope"], "unknown critic 'nope'"),
    ],
)
def test_run_refuses_bad_critic_flags_with_one_line(
    work: Path, flags: list[str], message: str
) -> None:
    (work / "plan.yaml").write_text(yaml.safe_dump({"tasks": [{"id": "a", "goal": "Write"}]}))
    (work / "replies.yaml").write_text(yaml.safe_dump({"replies": [{"content": "x"}]}))
    args = ["run", "--plan", "plan.yaml", "--model", "scripted:replies.yaml", *cli_args(work)]
    result = CliRunner().invoke(app, [*args, *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- the decider, without I/O -------------------------------------------------------------


def test_a_review_survives_a_restart_and_the_critic_runs_again_on_the_candidate() -> None:
    from planweave.control import decider
    from planweave.events import JobOptions
    from planweave.messages import Outcome
    from planweave.state import JobState

    state, decision = decider.submit(
        "job1",
        goal="g",
        plan=(TaskSpec(id="a", goal="Write"),),
        options=JobOptions(critic="llm"),
        now=100.0,
    )
    log = list(decision.events)
    log += decider.assign(state, "a", worker="executor", now=100.0).events
    done = Outcome(job_id="job1", task_id="a", attempt=1, status="succeeded", result="draft")
    log += decider.on_outcome(state, done, now=101.0).events
    assert decider.worker_of(state.tasks["a"]) == "critic"
    log += decider.assign(state, "a", worker="critic", now=101.0).events
    assert replay(log).to_row() == state.to_row()

    # The process dies while the critic runs: the rows hold the candidate and the critic.
    rows = [task.to_row("job1") for task in state.tasks.values()]
    loaded = JobState.from_rows(state.to_row(), rows)
    assert loaded.tasks["a"].reviewing and loaded.tasks["a"].spec.critic == "llm"
    again = decider.resume(loaded, now=200.0)
    assert again.dispatch == ["a"]
    assert decider.worker_of(loaded.tasks["a"]) == "critic"
    log += decider.assign(loaded, "a", worker="critic", now=200.0).events
    attempt = loaded.tasks["a"].attempt
    verdict_outcome = Outcome(
        job_id="job1",
        task_id="a",
        attempt=attempt,
        status="succeeded",
        result={"verdict": "pass", "feedback": "", "model": "m"},
    )
    ended = decider.on_outcome(loaded, verdict_outcome, now=201.0)
    kinds = [e.type for e in ended.events]
    assert kinds[kinds.index("CriticVerdict") + 1] == "TaskCompleted"
    assert loaded.tasks["a"].result == "draft" and loaded.status == "succeeded"


def test_the_critics_setting_loads_critics_by_import_path() -> None:
    from planweave.config import Settings

    settings = Settings(critics="tidy=tests.test_critic:no_lorem,tests.test_critic:no_lorem")
    kwargs = settings.engine_kwargs()
    assert kwargs["critics"] == {
        "tidy": "tests.test_critic:no_lorem",
        "no_lorem": "tests.test_critic:no_lorem",
    }
    engine = Engine(critics=kwargs["critics"], store="memory://")
    assert engine.critics.names() == ["llm", "no_lorem", "tidy"]
    tidy = engine.critics.get("tidy")
    assert tidy is not None and tidy.__name__ == "no_lorem"


# --- the API --------------------------------------------------------------------------------


async def test_the_api_takes_the_critic_options_and_shows_the_verdicts(tmp_path: Path) -> None:
    import httpx

    from planweave.config import Settings
    from planweave.server.testing import running_server

    token = "pw_critic_api_token_0123456789abcdef"
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"alice:{token}", "rate_limit_per_s": 0}
    )
    replies = [
        {"match": {"role": "executor", "contains": "shorter"}, "content": "Rain"},
        {"match": {"role": "executor"}, "content": "Rain falls on the roof all night"},
        verdict("revise", "shorter"),
        verdict("pass"),
    ]
    engine = engine_for(tmp_path, replies)
    try:
        async with running_server(engine, settings) as server:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
                plan = {"tasks": [{"id": "poem", "goal": "Write about rain"}]}
                bad = await http.post(
                    "/v1/jobs", json={"plan": plan, "options": {"critic": "nope"}}
                )
                assert bad.status_code == 422, bad.text
                assert "unknown critic 'nope'" in bad.text
                options = {"critic": "llm", "critic_model": "openai:gpt-4o"}
                bad = await http.post("/v1/jobs", json={"plan": plan, "options": options})
                assert bad.status_code == 422, bad.text
                assert "options.critic_model" in bad.text
                created = await http.post(
                    "/v1/jobs", json={"plan": plan, "options": {"critic": "llm"}}
                )
                assert created.status_code == 201, created.text
                job_id = created.json()["job_id"]
                for _ in range(500):
                    job = (await http.get(f"/v1/jobs/{job_id}")).json()
                    if job["status"] != "running":
                        break
                    await asyncio.sleep(0.02)
                assert job["status"] == "succeeded", job
                task = (await http.get(f"/v1/jobs/{job_id}/tasks/poem")).json()
                assert [(v["verdict"], v["feedback"], v["revision"]) for v in task["verdicts"]] == [
                    ("revise", "shorter", 0),
                    ("pass", "", 1),
                ]
                assert task["result"] == "Rain"
    finally:
        await engine.close()


async def test_a_reply_that_is_no_verdict_is_retried_never_taken_as_a_pass(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Rain"},
        {"match": {"role": "critic"}, "json": {"verdict": "looks fine", "feedback": ""}},
        verdict("reject", "too short"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm", retry_base_s=0)
        assert not result.ok
        assert result.error is not None and "too short" in result.error
        events = await stored_equals_replayed(engine, result.job_id)
        retrying = [e for e in events if e.type == "TaskRetrying"]
        assert len(retrying) == 1 and "not a valid verdict" in retrying[0].error
        # The critic ran again on the same answer: the executor was asked once.
        assert sum(1 for e in events if e.type == "LlmCalled" and e.role == "executor") == 1


@given(
    verdicts=st.lists(st.sampled_from(["pass", "revise", "replan", "reject"]), max_size=6),
    max_revisions=st.integers(min_value=0, max_value=3),
)
@settings(max_examples=60, deadline=None)
def test_any_run_of_verdicts_ends_within_max_revisions_and_replays(
    verdicts: list[str], max_revisions: int
) -> None:
    from planweave.control import decider
    from planweave.events import JobOptions
    from planweave.messages import Outcome

    state, decision = decider.submit(
        "job1",
        goal="g",
        plan=(TaskSpec(id="a", goal="Write"),),
        options=JobOptions(critic="llm", max_revisions=max_revisions),
        now=100.0,
    )
    log = list(decision.events)
    now = 100.0
    answers = 0
    for kind in [*verdicts, "pass"]:
        task = state.tasks["a"]
        if task.terminal or state.terminal:
            break
        now += 1
        log += decider.assign(state, "a", worker="executor", now=now).events
        answers += 1
        answer = Outcome(
            job_id="job1", task_id="a", attempt=task.attempt, status="succeeded", result=answers
        )
        log += decider.on_outcome(state, answer, now=now).events
        assert decider.worker_of(task) == "critic"
        log += decider.assign(state, "a", worker="critic", now=now).events
        checked = Outcome(
            job_id="job1",
            task_id="a",
            attempt=task.attempt,
            status="succeeded",
            result={"verdict": kind, "feedback": f"fix {answers}"},
        )
        log += decider.on_outcome(state, checked, now=now).events
        assert replay(log).to_row() == state.to_row()
    task = state.tasks["a"]
    assert task.terminal
    revisions = [v for v, _ in task.verdicts if v == "revise"]
    assert len(revisions) <= max_revisions + 1
    assert len(task.spec.feedback) == len(revisions)
    if task.status == "succeeded":
        assert task.verdicts[-1][0] == "pass" and task.result == answers
    else:
        assert task.result is None and task.verdicts[-1][0] != "pass"
    assert [t.to_row("job1") for t in replay(log).tasks.values()] == [
        t.to_row("job1") for t in state.tasks.values()
    ]


async def test_critic_work_runs_on_a_separate_worker_engine(tmp_path: Path) -> None:
    from planweave.bus import MemoryBus

    bus = MemoryBus()
    critics = {"no_lorem": "tests.test_critic:no_lorem"}  # by import path, as a worker loads it
    replies = [
        {"match": {"role": "executor", "contains": "no placeholder"}, "content": "Rain falls"},
        {"match": {"role": "executor"}, "content": "lorem"},
    ]
    plane = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        worker_kinds=["executor"],
        critics=critics,
    )
    workers = Engine(
        store="memory://",
        bus=bus,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        run_plane=False,
        worker_kinds=["critic"],
        critics=critics,
    )
    async with plane, workers:
        assert [pool.kind for pool in workers._pools] == ["critic"]
        result = await asyncio.wait_for(plane.run(plan=ONE_TASK, critic="no_lorem"), 30)
        assert result.ok, result.error
        assert result.result == "Rain falls"
        events = await plane.events(result.job_id)
        critic_runs = [
            e.worker_id for e in events if e.type == "TaskStarted" and e.attempt in (2, 4)
        ]
        assert len(critic_runs) == 2 and all(w.startswith("critic-") for w in critic_runs)
