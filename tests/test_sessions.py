"""Reactive sessions end to end: the seed's party planner on the scripted model, through the
engine (SQLite store, real jobs), with the board and the session's log checked as a user would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine
from planweave.errors import (
    ConfigError,
    SessionConflict,
    SessionInputInvalid,
    SessionNotFound,
    SessionRateLimited,
)
from planweave.sessions import (
    AgentCompleted,
    AgentRunQueued,
    AgentRunStarted,
    AgentRunSuperseded,
    SessionEvent,
    SessionSpec,
)

PARTY = Path(__file__).resolve().parent.parent / "examples" / "party"


def party_spec(**changes: Any) -> SessionSpec:
    spec = SessionSpec.from_file(PARTY / "party.yaml")
    return SessionSpec.from_data({**spec.model_dump(mode="json"), **changes})


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}",
        model=f"scripted:{PARTY / 'scripted.yaml'}",
        data_dir=tmp_path,
        builtins=False,
    ) as engine:
        yield engine


def queued(events: list[SessionEvent], after_seq: int = 0) -> list[str]:
    return [e.agent for e in events if isinstance(e, AgentRunQueued) and e.seq > after_seq]


def position(events: list[SessionEvent], cls: type, agent: str, after_seq: int = 0) -> int:
    for event in events:
        if (
            isinstance(event, cls)
            and getattr(event, "agent", None) == agent
            and event.seq > after_seq
        ):
            return event.seq
    raise AssertionError(f"no {cls.__name__} for {agent}")


async def test_party_scenario_runs_in_order_reruns_only_downstream_and_retracts(
    engine: Engine,
) -> None:
    s = await engine.sessions.create(party_spec(), inputs=["jungle theme party"])
    board = await s.wait_settled()
    events = await s.events()
    assert sorted(queued(events)) == sorted(
        ["theme", "venue", "cake", "vendor", "catering", "budget", "planner"]
    )
    theme_done = position(events, AgentCompleted, "theme")
    for agent in ("cake", "venue", "vendor"):
        assert position(events, AgentRunQueued, agent) > theme_done
    budget_queued = position(events, AgentRunQueued, "budget")
    for agent in ("cake", "venue", "vendor", "catering"):
        assert position(events, AgentCompleted, agent) < budget_queued
    assert position(events, AgentRunQueued, "planner") > position(events, AgentCompleted, "budget")
    assert board["agents"]["theme"]["value"]["theme"] == "jungle"
    assert board["agents"]["cake"]["value"]["bakery"] == "Sweet Safari"
    assert board["aggregate"]["value"]["completion_percent"] == 100
    assert all(agent["job_id"] for agent in board["agents"].values())
    job = await engine.get(board["agents"]["cake"]["job_id"])
    assert job.status == "succeeded"

    settled_at = s.state.seq
    await s.add_input("budget is $1500", tags=["budget"])
    board = await s.wait_settled()
    events = await s.events()
    assert queued(events, settled_at) == ["budget", "planner"]
    assert board["agents"]["budget"]["value"]["total"] == 1500

    theme_input = next(i for i in board["inputs"] if "jungle" in i["text"])["input_id"]
    settled_at = s.state.seq
    await s.remove_input(theme_input)
    board = await s.wait_settled()
    events = await s.events()
    assert queued(events, settled_at) == ["budget", "planner"]
    for agent in ("theme", "venue", "cake", "catering", "vendor"):
        assert board["agents"][agent]["status"] == "dropped"
        assert board["agents"][agent]["value"] is None
    assert board["agents"]["budget"]["status"] == "fresh"
    aggregate = board["aggregate"]["value"]
    assert aggregate["active_agents"] == ["budget"]
    assert aggregate["completion_percent"] == 17
    assert [i["text"] for i in board["inputs"]] == ["budget is $1500"]


async def test_stored_state_equals_the_replayed_log(engine: Engine, tmp_path: Path) -> None:
    s = await engine.sessions.create(party_spec(), inputs=["jungle theme party"])
    await s.wait_settled()
    first = await s.add_input("budget is $1500", tags=["budget"])
    await s.remove_input(first)
    await s.wait_settled()
    replayed = await engine.sessions.replay(s.id)
    assert replayed == s.state
    seqs = [event.seq for event in await s.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    # A second engine on the same file reads the same session.
    async with Engine(store=f"sqlite:///{tmp_path / 'pw.db'}", data_dir=tmp_path) as other:
        rows = await other.sessions.list()
        assert [row.session_id for row in rows] == [s.id]
        assert rows[0].settled


async def test_an_unchanged_result_stops_the_cascade(engine: Engine) -> None:
    s = await engine.sessions.create(party_spec(), inputs=["jungle theme party"])
    await s.wait_settled()
    before = s.state.seq
    await s.add_input("more jungle decor please")
    board = await s.wait_settled()
    events = await s.events()
    # theme re-ran and answered the same: venue, cake and vendor were not woken.
    assert queued(events, before) == ["theme", "planner"]
    cutoff = [e for e in events if isinstance(e, AgentCompleted) and e.seq > before]
    assert cutoff[0].agent == "theme" and cutoff[0].unchanged
    assert board["counters"]["cutoffs"] == 1
    assert board["agents"]["theme"]["version"] == 1
    assert board["agents"]["cake"]["runs"] == 1


async def test_twenty_quick_changes_coalesce_into_one_rerun(engine: Engine) -> None:
    s = await engine.sessions.create(party_spec(debounce_s=2.0), inputs=["jungle theme party"])
    await s.wait_settled()
    before = s.state.seq
    for n in range(20):
        await s.add_input(f"jungle idea number {n}")
    board = await s.wait_settled()
    events = await s.events()
    assert queued(events, before) == ["theme", "planner"]
    assert board["agents"]["theme"]["runs"] == 2
    assert board["aggregate"]["runs"] == 2
    assert len(board["inputs"]) == 21


async def test_a_superseded_run_is_cancelled_and_the_new_inputs_win(tmp_path: Path) -> None:
    from planweave.llm.scripted import ScriptedModel

    model = ScriptedModel(
        [
            {"match": {"role": "s.a", "contains": "slow"}, "json": {"v": "slow"}, "delay_s": 30},
            {"match": {"role": "s.a"}, "json": {"v": "fast"}, "repeat": True},
        ]
    )
    spec = SessionSpec.from_data(
        {
            "name": "s",
            "debounce_s": 0,
            "agents": [{"name": "a", "instructions": "x", "consumes": {"keywords": ["go"]}}],
        }
    )
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}", model=model, data_dir=tmp_path, builtins=False
    ) as engine:
        s = await engine.sessions.create(spec, inputs=["go slow"])
        async for event in s.follow():
            if isinstance(event, AgentRunStarted):
                slow_job = event.job_id
                break
        first = s.state.inputs
        await s.remove_input(next(iter(first)))
        await s.add_input("go now")
        board = await s.wait_settled(timeout_s=20)
        assert board["agents"]["a"]["value"] == {"v": "fast"}
        assert board["counters"]["superseded"] == 1
        events = await s.events()
        superseded = [e for e in events if isinstance(e, AgentRunSuperseded)]
        assert [(e.agent, e.run) for e in superseded] == [("a", 1)]
        assert not [e for e in events if isinstance(e, AgentCompleted) and e.run == 1]
        assert (await engine.wait(slow_job)).status == "cancelled"


async def test_two_clients_racing_on_one_version_one_conflict(engine: Engine) -> None:
    s = await engine.sessions.create(party_spec(), inputs=["jungle theme party"])
    version = s.version
    results = await asyncio.gather(
        s.add_input("cake with chocolate", expected_version=version),
        s.add_input("venue in the park", expected_version=version),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, SessionConflict)]
    assert len(conflicts) == 1
    assert conflicts[0].current_version == version + 1
    assert s.version == version + 1
    assert len(s.board()["inputs"]) == 2


async def test_bad_inputs_change_nothing(engine: Engine) -> None:
    s = await engine.sessions.create(party_spec(max_input_chars=50), inputs=["jungle party"])
    seq = s.state.seq
    with pytest.raises(SessionInputInvalid, match="max_input_chars"):
        await s.add_input("x" * 51)
    with pytest.raises(SessionInputInvalid, match="unknown tag 'music'"):
        await s.add_input("a band", tags=["music"])
    with pytest.raises(SessionInputInvalid, match="no input 'nope'"):
        await s.remove_input("nope")
    with pytest.raises(SessionNotFound):
        await engine.sessions.open("nope")
    assert s.state.seq == seq
    with pytest.raises(SessionInputInvalid, match="max_input_chars"):
        await engine.sessions.create(party_spec(max_input_chars=5), inputs=["jungle party"])
    assert len(await engine.sessions.list()) == 1


def test_a_bad_spec_is_one_clear_error(tmp_path: Path) -> None:
    cases = {
        "cycle": (
            "agents:\n  - {name: a, instructions: x, depends_on: [b]}\n"
            "  - {name: b, instructions: x, depends_on: [a]}\n",
            "dependency cycle",
        ),
        "unknown": (
            "agents:\n  - {name: a, instructions: x, depends_on: [ghost]}\n",
            "agents[0].depends_on: unknown agent 'ghost'",
        ),
        "required": (
            "agents:\n  - {name: a, instructions: x}\n"
            "aggregator: {instructions: y, required: [ghost]}\n",
            "unknown agent 'ghost'",
        ),
        "both": ("agents:\n  - {name: a, instructions: x, agent: y}\n", "one of them"),
        "field": ("agents:\n  - {name: a, instructions: x, colour: red}\n", "agents[0].colour"),
        "yaml": ("agents: [\n", "not valid YAML"),
    }
    for name, (text, message) in cases.items():
        file = tmp_path / f"{name}.yaml"
        file.write_text(text)
        with pytest.raises(ConfigError) as info:
            SessionSpec.from_file(file)
        assert str(file) in str(info.value)
        assert message in str(info.value), (name, str(info.value))
    with pytest.raises(ConfigError, match="no such session file"):
        SessionSpec.from_file(tmp_path / "missing.yaml")


async def test_an_unregistered_agent_reference_is_refused(engine: Engine) -> None:
    spec = SessionSpec.from_data({"agents": [{"name": "a", "agent": "ghost"}]})
    with pytest.raises(ConfigError, match=r"agents\[0\]\.agent: no agent 'ghost'"):
        await engine.sessions.create(spec)


async def test_a_failing_agent_shows_failed_and_does_not_block_the_others(
    tmp_path: Path,
) -> None:
    from planweave.llm.scripted import ScriptedModel

    model = ScriptedModel(
        [
            {"match": {"role": "f.bad"}, "error": {"type": "response", "message": "broken"}},
            {"match": {"role": "f.good"}, "json": {"ok": True}, "repeat": True},
            {"match": {"role": "f.after"}, "json": {"after": True}, "repeat": True},
        ]
    )
    spec = SessionSpec.from_data(
        {
            "name": "f",
            "agents": [
                {"name": "bad", "instructions": "x", "consumes": {"keywords": ["go"]}},
                {"name": "good", "instructions": "x", "consumes": {"keywords": ["go"]}},
                {"name": "after", "instructions": "x", "depends_on": ["good", "bad"]},
            ],
        }
    )
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}", model=model, data_dir=tmp_path, builtins=False
    ) as engine:
        s = await engine.sessions.create(spec, inputs=["go"])
        board = await s.wait_settled()
    assert board["agents"]["bad"]["status"] == "failed"
    assert "broken" in board["agents"]["bad"]["error"]
    assert board["agents"]["good"]["value"] == {"ok": True}
    assert board["agents"]["after"]["value"] == {"after": True}


async def test_follow_streams_changes_live_and_resumes(engine: Engine) -> None:
    s = await engine.sessions.create(party_spec(), inputs=["jungle theme party"])
    seen = [event async for event in s.follow(until_settled=True)]
    assert seen[0].type == "session.created" and seen[-1].type == "session.settled"
    last = seen[-1].seq

    async def later() -> None:
        await asyncio.sleep(0.05)
        await s.add_input("budget is $1500", tags=["budget"])

    adding = asyncio.create_task(later())
    resumed = [event async for event in s.follow(after_seq=last, until_settled=True)]
    await adding
    assert resumed[0].seq == last + 1
    assert resumed[0].type == "input.added"
    assert [e.type for e in resumed].count("agent.completed") == 1


def route_by_first_word(text: str, tags: Any) -> list[str]:
    """A routing function for the tests: the input's first word names the agent."""
    return [text.split()[0]]


def two_agents(routing: dict[str, Any], **extra: Any) -> SessionSpec:
    return SessionSpec.from_data(
        {
            "name": "r",
            "routing": routing,
            "agents": [
                {"name": "cake", "instructions": "x", "consumes": {"keywords": ["cake"]}},
                {"name": "venue", "instructions": "x", "consumes": {"keywords": ["venue"]}},
            ],
            **extra,
        }
    )


async def test_routing_by_a_function_and_by_an_llm_verdict(tmp_path: Path) -> None:
    from planweave.llm.scripted import ScriptedModel

    model = ScriptedModel(
        [
            {
                "match": {"role": "r.routing", "contains": "sugar"},
                "json": {"agents": ["cake", "ghost"], "reason": "sweet things go to cake"},
            },
            {"match": {"role": "r.routing"}, "content": "no idea"},
            {"match": {"role": "r.cake"}, "json": {"cake": 1}, "repeat": True},
            {"match": {"role": "r.venue"}, "json": {"venue": 1}, "repeat": True},
        ]
    )
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}", model=model, data_dir=tmp_path, builtins=False
    ) as engine:
        by_function = two_agents(
            {"mode": "function", "function": "tests.test_sessions:route_by_first_word"}
        )
        s = await engine.sessions.create(by_function, inputs=["venue with a cake"])
        board = await s.wait_settled()
        assert board["inputs"][0]["routes"] == ["venue"]
        assert board["agents"]["cake"]["status"] == "idle"
        with pytest.raises(ConfigError, match="unknown agent 'nobody'"):
            await s.add_input("nobody here")

        by_llm = two_agents({"mode": "llm", "instructions": "Route each input."})
        s = await engine.sessions.create(by_llm, inputs=["lots of sugar"])
        await s.add_input("a venue, then")  # no verdict: routed by keywords
        board = await s.wait_settled()
    first, second = board["inputs"]
    assert first["routes"] == ["cake"]
    assert first["route_reason"] == "llm: sweet things go to cake"
    assert second["routes"] == ["venue"] and second["route_reason"] == "tags"
    assert board["agents"]["cake"]["value"] == {"cake": 1}


async def test_a_spent_budget_blocks_further_runs(engine: Engine) -> None:
    spec = party_spec(budget={"max_tokens": 1})
    s = await engine.sessions.create(spec, inputs=["jungle theme party"])
    events = []
    async with asyncio.timeout(30):
        async for event in s.follow():
            if event.type == "session.blocked":
                events.append(event)
                break
    board = s.board()
    assert "tokens" in board["budget"]["blocked"]
    assert board["agents"]["theme"]["status"] == "fresh"
    assert board["agents"]["cake"]["runs"] == 0
    assert not board["settled"]


async def test_input_changes_past_the_rate_limit_are_refused(engine: Engine) -> None:
    s = await engine.sessions.create(party_spec(max_changes_per_minute=3))
    first = await s.add_input("jungle theme party")
    await s.add_input("a cake")
    await s.remove_input(first)
    seq = s.state.seq
    with pytest.raises(SessionRateLimited) as info:
        await s.add_input("a venue")
    assert 0 < info.value.retry_after_s <= 60
    assert "at most 3 input changes a minute" in str(info.value)
    with pytest.raises(SessionRateLimited):
        await s.remove_input(next(iter(i["input_id"] for i in s.board()["inputs"])))
    later = await s.events(after_seq=seq)
    assert [e.type for e in later if e.type.startswith("input.")] == []


async def test_reactive_functions_are_session_agents(tmp_path: Path) -> None:
    from planweave.sessions import reactive

    @reactive
    def prices(inputs: list[dict[str, Any]], results: dict[str, Any]) -> dict[str, Any]:
        """Reads prices like "cake 120" from the inputs."""
        found = {}
        for item in inputs:
            word, _, amount = item["text"].partition(" ")
            found[word] = int(amount)
        return {"prices": found}

    @reactive(name="total")
    async def add_up(inputs: list[dict[str, Any]], results: dict[str, Any]) -> dict[str, Any]:
        return {"total": sum(results["prices"]["prices"].values())}

    spec = SessionSpec.from_data(
        {
            "name": "sum",
            "agents": [
                {"name": "prices", "agent": "prices", "consumes": {"tags": ["price"]}},
                {"name": "total", "agent": "total", "depends_on": ["prices"]},
            ],
        }
    )
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}", data_dir=tmp_path, agents=[prices, add_up]
    ) as engine:
        s = await engine.sessions.create(spec, inputs=[{"text": "cake 120", "tags": ["price"]}])
        await s.add_input("venue 600", tags=["price"])
        board = await s.wait_settled()
    assert board["agents"]["prices"]["value"] == {"prices": {"cake": 120, "venue": 600}}
    assert board["agents"]["total"]["value"] == {"total": 720}
    assert prices.description == 'Reads prices like "cake 120" from the inputs.'
