"""Declarative agents (``agents/*.yaml``): loaded by ``Engine(agents_dir=...)``, run end to end on
the scripted model, told to the planner; bad files are refused before anything runs, naming the
file, the field and its line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import planweave.agents
from planweave import Engine, Plan, TaskSpec, tool
from planweave.agents._declared import build_agents, check_definitions, load_definitions
from planweave.errors import ConfigError
from planweave.events import LlmCalled, TaskCompleted, TaskFailed
from planweave.llm import ModelProfile
from planweave.llm.scripted import ScriptedModel

RESEARCHER = """\
name: researcher
description: Finds facts and cites a source for each.
instructions: Cite a URL for every fact.
tools: [calculator]
max_steps: 3
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def engine_for(tmp_path: Path, model: ScriptedModel, agents_dir: Path) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        data_dir=tmp_path / "data",
        agents_dir=agents_dir,
    )


# --- the react kind, end to end ----------------------------------------------------------------


async def test_a_yaml_agent_runs_a_task_with_its_instructions_tools_and_schema(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "agents"
    write(folder, "researcher.yaml", RESEARCHER)
    write(
        folder,
        "reviewer.yaml",
        """\
        name: reviewer
        description: Approves or rejects a draft.
        tools: []
        output_schema:
          type: object
          properties: {approved: {type: boolean}}
          required: [approved]
        """,
    )
    model = ScriptedModel(
        [
            {"match": {"role": "researcher"}, "content": "Go has goroutines (https://go.dev)."},
            {"match": {"role": "reviewer"}, "content": '{"approved": true}'},
            {"match": {"role": "composer"}, "content": "# Report", "repeat": True},
        ]
    )
    plan = Plan(
        tasks=(
            TaskSpec(id="facts", goal="Find facts about Go", agent="researcher"),
            TaskSpec(id="review", goal="Review", agent="reviewer", depends_on=["facts"]),
        )
    )
    async with engine_for(tmp_path, model, folder) as engine:
        assert engine.agents.names() == ["executor", "researcher", "reviewer"]
        result = await engine.run("Go", plan=plan)
        assert result.ok, result.error
        events = await engine.events(result.job_id)

    researcher, reviewer = model.requests[0], model.requests[1]
    assert researcher.agent == "researcher"
    assert "Cite a URL for every fact." in researcher.messages[0].content
    assert [spec.name for spec in researcher.tools] == ["calculator"]
    assert reviewer.tools == ()
    assert '"approved"' in reviewer.messages[0].content  # the schema is in its prompt
    done = {e.task_id: e.result for e in events if isinstance(e, TaskCompleted)}
    assert done["facts"] == "Go has goroutines (https://go.dev)."
    assert done["review"] == '{"approved":true}'


async def test_a_yaml_agent_calls_the_model_its_file_names(tmp_path: Path) -> None:
    script = tmp_path / "writer-replies.yaml"
    script.write_text(
        yaml.safe_dump({"replies": [{"content": "written by the writer's model"}]}),
        encoding="utf-8",
    )
    folder = tmp_path / "agents"
    write(folder, "writer.yaml", f"name: writer\nmodel: 'scripted:{script}'\n")
    plan = Plan(tasks=(TaskSpec(id="w", goal="Write", agent="writer"),))
    default = ScriptedModel([], name="default-model")
    async with engine_for(tmp_path, default, folder) as engine:
        result = await engine.run("Write", plan=plan)
        assert result.ok, result.error
        events = await engine.events(result.job_id)
    assert result.result == "written by the writer's model"
    assert [e.model for e in events if isinstance(e, LlmCalled)] == ["scripted:writer-replies.yaml"]
    assert default.requests == []


# --- the planner and the registry ----------------------------------------------------------------


def planned(agent: str | None) -> dict[str, Any]:
    return {
        "match": {"role": "planner"},
        "json": {
            "tasks": [
                {"id": "t1", "goal": "Find facts about Go", "depends_on": [], "kind": "execute"}
                | ({"agent": agent} if agent else {})
            ]
        },
    }


async def test_the_planner_is_told_the_agents_and_its_task_runs_with_the_one_it_names(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "agents"
    write(folder, "researcher.yaml", RESEARCHER)
    model = ScriptedModel(
        [
            planned("researcher"),
            {"match": {"role": "researcher"}, "content": "Go has goroutines."},
            {"match": {"role": "composer"}, "content": "# Go", "repeat": True},
        ]
    )
    async with engine_for(tmp_path, model, folder) as engine:
        result = await engine.run("Tell me about Go")
        assert result.ok, result.error
    planner = model.requests[0]
    system = planner.messages[0].content
    assert "researcher: Finds facts and cites a source for each." in system
    assert "executor: The general agent" in system
    assert planner.response_schema is not None
    executed = [r for r in model.requests if r.role == "executor"]
    assert [r.agent for r in executed] == ["researcher"]


async def test_a_small_model_may_name_a_registered_agent_in_its_dag_schema(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    write(folder, "researcher.yaml", RESEARCHER)
    tasks = [
        {"id": "t1", "goal": "Find facts about Go", "depends_on": [], "kind": "execute"},
        {"id": "t2", "goal": "Sum up the facts", "depends_on": ["t1"], "kind": "execute"},
    ]
    tasks[0]["agent"] = "researcher"
    model = ScriptedModel(
        [
            {"match": {"role": "planner"}, "json": {"tasks": tasks}},
            {"match": {"role": "researcher"}, "content": "Go has goroutines."},
            {"match": {"role": "executor"}, "content": "Goroutines, in short."},
            {"match": {"role": "composer"}, "content": "# Go", "repeat": True},
        ],
        profile=ModelProfile(small=True),
    )
    async with engine_for(tmp_path, model, folder) as engine:
        result = await engine.run("Tell me about Go")
        assert result.ok, result.error
    schema = model.requests[0].response_schema
    assert schema is not None
    first = schema["properties"]["tasks"]["anyOf"][0]["prefixItems"][0]
    assert first["properties"]["agent"]["enum"] == ["executor", "researcher"]
    assert "agent" not in first["required"]
    executed = [(r.agent, r.messages[-1].content) for r in model.requests if r.role == "executor"]
    assert [agent for agent, _ in executed] == ["researcher", "executor"]


async def test_an_unknown_agent_in_a_planned_task_is_reported_before_any_task_runs(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "agents"
    write(folder, "researcher.yaml", RESEARCHER)
    model = ScriptedModel([planned("ghost"), planned("ghost")])
    async with engine_for(tmp_path, model, folder) as engine:
        result = await engine.run("Tell me about Go")
        events = await engine.events(result.job_id)
    assert not result.ok
    repair = model.requests[1].messages[-1].content
    assert "unknown agent 'ghost'" in repair and "researcher" in repair
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert [e.error_type for e in failed] == ["plan_invalid"]
    assert [r.role for r in model.requests] == ["planner", "planner"]  # no task ran


async def test_a_plan_naming_an_unknown_agent_is_refused_at_submit(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    write(folder, "researcher.yaml", RESEARCHER)
    plan = Plan(tasks=(TaskSpec(id="a", goal="Go", agent="ghost"),))
    async with engine_for(tmp_path, ScriptedModel([]), folder) as engine:
        with pytest.raises(ConfigError, match="unknown agent 'ghost'"):
            await engine.submit("Go", plan=plan)
        assert await engine.list_jobs() == []


# --- bad files -----------------------------------------------------------------------------------

BAD_FILES = [
    pytest.param(
        {"a.yaml": "name: a\ninstructions: hi\ntoolz: [calculator]\n"},
        ["a.yaml", "line 3", "field 'toolz'", "unknown field"],
        id="unknown-key",
    ),
    pytest.param(
        {"a.yaml": "name: a\ntools: [calculator, teleport]\n"},
        ["a.yaml", "line 2", "field 'tools'", "unknown tool 'teleport'"],
        id="unknown-tool",
    ),
    pytest.param(
        {"team.yaml": "name: team\nkind: sequential\nagents: [executor, ghost]\n"},
        ["team.yaml", "line 3", "field 'agents'", "unknown agent 'ghost'"],
        id="unknown-sub-agent",
    ),
    pytest.param(
        {
            "a.yaml": "name: a\nkind: sequential\nagents: [b]\n",
            "b.yaml": "name: b\nkind: loop\nbody: c\nmax_iterations: 2\n",
            "c.yaml": "name: c\nkind: parallel\nagents: [executor, a]\n",
        },
        ["c.yaml", "line 3", "field 'agents'", "cycle: a -> b -> c -> a"],
        id="cycle",
    ),
    pytest.param(
        {"a.yaml": "name: a\nkind: sequential\nagents: [a]\n"},
        ["a.yaml", "cycle: a -> a"],
        id="self-cycle",
    ),
    pytest.param(
        {
            "boss.yaml": "name: boss\nagents: [helper]\n",
            "helper.yaml": "name: helper\ntools: []\nagents: [boss]\n",
        },
        ["helper.yaml", "line 3", "field 'agents'", "cycle: boss -> helper -> boss"],
        id="react-sub-agent-cycle",
    ),
    pytest.param(
        {"again.yaml": "name: again\nkind: loop\nbody: executor\n"},
        ["again.yaml", "field 'max_iterations'", "a bound"],
        id="loop-without-bound",
    ),
    pytest.param(
        {"again.yaml": "name: again\nkind: loop\nbody: executor\nmax_iterations: 0\n"},
        ["again.yaml", "line 4", "field 'max_iterations'", "at least 1"],
        id="loop-bound-zero",
    ),
    pytest.param(
        {"a.yaml": "name: a\noutput_schema:\n  type: whatever\n"},
        ["a.yaml", "line 2", "field 'output_schema'", "not a valid JSON schema"],
        id="invalid-output-schema",
    ),
    pytest.param(
        {"a.yaml": "name: a\nkind: swarm\n"},
        ["a.yaml", "line 2", "field 'kind'", "unknown kind 'swarm'"],
        id="unknown-kind",
    ),
    pytest.param(
        {"a.yaml": "name: a\ntools: [calculator]\n", "b.yaml": "name: a\n"},
        ["b.yaml", "field 'name'", "another agent is named 'a'"],
        id="duplicate-name",
    ),
    pytest.param(
        {"a.yaml": "name: executor\n"},
        ["a.yaml", "field 'name'", "already registered"],
        id="name-taken",
    ),
    pytest.param(
        {"a.yaml": "name: a\ninstructions: &x hi\ndescription: *x\n"},
        ["a.yaml", "line 3", "aliases"],
        id="alias",
    ),
    pytest.param(
        {"a.yaml": "name: a\ninstructions: [unclosed\n"},
        ["a.yaml", "line 3"],
        id="not-yaml",
    ),
    pytest.param(
        {"a.yaml": "- name: a\n"},
        ["a.yaml", "mapping of fields"],
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("files", "expected"), BAD_FILES)
def test_a_bad_agents_folder_is_refused_when_the_engine_is_made(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    folder = tmp_path / "agents"
    for name, text in files.items():
        write(folder, name, text)
    with pytest.raises(ConfigError) as caught:
        engine_for(tmp_path, ScriptedModel([]), folder)
    message = str(caught.value)
    for part in expected:
        assert part in message, message
    assert not (tmp_path / "jobs.db").exists()  # nothing ran, nothing was stored


def test_a_missing_agents_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        engine_for(tmp_path, ScriptedModel([]), tmp_path / "nowhere")


# --- workflow kinds --------------------------------------------------------------------------------

WORKFLOWS = {
    "researcher.yaml": RESEARCHER,
    "writer.yaml": "name: writer\ndescription: Writes prose.\n",
    "research.yaml": "name: research\nkind: parallel\nagents: [researcher, executor]\n"
    "merge: dict\n",
    "route.yaml": "name: route\nkind: conditional\nbranches: [researcher, writer]\n"
    "default: writer\n",
    "editor.yaml": "name: editor\nkind: loop\nbody: writer\nmax_iterations: 3\n",
    "team.yaml": "name: team\nkind: sequential\ndescription: Research, then edit.\n"
    "agents: [research, route, editor]\n",
}


def test_workflow_files_are_checked_and_list_what_they_run(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    for name, text in WORKFLOWS.items():
        write(folder, name, text)
    definitions = {each.name: each for each in load_definitions(folder)}
    check_definitions(definitions.values(), known_agents={"executor"}, known_tools={"calculator"})
    team = definitions["team"]
    assert (team.kind, team.description) == ("sequential", "Research, then edit.")
    assert team.sub_agents == [("agents", "research"), ("agents", "route"), ("agents", "editor")]
    assert definitions["route"].fields["branches"] == {
        "researcher": "researcher",
        "writer": "writer",
    }
    assert definitions["route"].sub_agents[-1] == ("default", "writer")
    assert definitions["editor"].sub_agents == [("body", "writer")]


def test_workflow_agents_are_built_as_the_workflow_classes_sub_agents_first(
    tmp_path: Path,
) -> None:
    from planweave.agents import Conditional, Loop, Parallel, Sequential

    folder = tmp_path / "agents"
    for name, text in WORKFLOWS.items():
        write(folder, name, text)
    executor = planweave.agents.ReactAgent()
    built = build_agents(
        load_definitions(folder),
        known_agents={"executor": executor},
        known_tools={"calculator"},
    )
    agents = {definition.name: agent for definition, agent in built}
    order = [definition.name for definition, _ in built]
    assert order.index("writer") < order.index("editor") < order.index("team")
    research, route, editor, team = (agents[n] for n in ("research", "route", "editor", "team"))
    assert isinstance(research, Parallel)
    assert list(research.agents) == [agents["researcher"], executor]
    assert research.merge == "dict"
    assert isinstance(route, Conditional)
    assert route.branches == {"researcher": agents["researcher"], "writer": agents["writer"]}
    assert route.decide == "llm" and route.default == "writer"
    assert isinstance(editor, Loop)
    assert (editor.body, editor.max_iterations) == (agents["writer"], 3)
    assert isinstance(team, Sequential)
    assert list(team.agents) == [research, route, editor]


def test_a_react_agent_offers_its_sub_agents_as_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped: list[tuple[str, str]] = []

    def as_tool(agent: Any, *, description: str) -> Any:
        wrapped.append((agent.name, description))

        @tool(name=f"ask_{agent.name}")
        def ask(question: str) -> str:
            """Ask the agent.

            Args:
                question: The question.
            """
            return question

        return ask

    monkeypatch.setattr(planweave.agents, "as_tool", as_tool, raising=False)
    folder = tmp_path / "agents"
    write(folder, "writer.yaml", "name: writer\ndescription: Writes prose.\n")
    write(folder, "boss.yaml", "name: boss\ntools: [calculator]\nagents: [writer]\n")
    built = dict(
        (definition.name, agent)
        for definition, agent in build_agents(
            load_definitions(folder), known_agents={}, known_tools={"calculator"}
        )
    )
    boss = built["boss"]
    assert isinstance(boss, planweave.agents.ReactAgent)
    assert boss.tools == ("calculator", "ask_writer")
    assert wrapped == [("writer", "Writes prose.")]
