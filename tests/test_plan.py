"""Plan validation and plan files: every problem is found before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from planweave import PlanInvalid, TaskSpec, load_plan_file, validate_plan
from planweave.plan import plan_problems


def t(task_id: str, *deps: str, **fields: object) -> TaskSpec:
    return TaskSpec(id=task_id, goal=f"do {task_id}", depends_on=deps, **fields)  # type: ignore[arg-type]


def test_a_valid_diamond_has_no_problems() -> None:
    assert plan_problems([t("a"), t("b", "a"), t("c", "a"), t("d", "b", "c")]) == []


def test_every_problem_is_reported_at_once() -> None:
    problems = plan_problems(
        [
            t("a", "a"),
            t("a"),
            t("b", "ghost"),
            t("bad id!"),
            TaskSpec(id="tool1", kind="tool"),
            TaskSpec(id="empty", goal="  "),
            t("dup", "b", "b"),
        ]
    )
    text = "\n".join(problems)
    assert "task 'a' depends on itself" in text
    assert "task id 'a' is used more than once" in text
    assert "task 'b' depends on unknown task 'ghost'" in text
    assert "task id 'bad id!' is not valid" in text
    assert "task 'tool1' has kind 'tool' but names no tool" in text
    assert "task 'empty' has an empty goal" in text
    assert "task 'dup' lists a dependency more than once" in text


def test_cycles_are_found_and_shown() -> None:
    problems = plan_problems([t("a", "c"), t("b", "a"), t("c", "b"), t("d")])
    cycle = [p for p in problems if "cycle" in p]
    assert len(cycle) == 1
    assert all(name in cycle[0] for name in ("a", "b", "c"))


def test_size_limits_and_unknown_tools() -> None:
    many = [t(f"t{i}") for i in range(11)]
    assert any("at most 10" in p for p in plan_problems(many, max_tasks=10))
    tools = [TaskSpec(id="x", kind="tool", tool="nope")]
    assert plan_problems(tools, known_tools=["calculator"]) == [
        "task 'x' names unknown tool 'nope' (known: calculator)"
    ]
    assert plan_problems([t("a", "outer")], external_ids=["outer"]) == []


def test_validate_plan_raises_with_the_list() -> None:
    with pytest.raises(PlanInvalid) as info:
        validate_plan([])
    assert info.value.errors == ["the plan has no tasks"]


def test_a_long_chain_validates_without_recursion_limits() -> None:
    chain = [t("t0")] + [t(f"t{i}", f"t{i - 1}") for i in range(1, 5000)]
    assert plan_problems(chain, max_tasks=10_000) == []


def test_plan_files_load_and_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    good = tmp_path / "plan.yaml"
    good.write_text(
        "goal: sum\non_failure: replan\ntasks:\n"
        "  - {id: a, kind: tool, tool: calculator, args: {expression: '1+1'}}\n"
        "  - {id: b, goal: explain, depends_on: [a]}\n"
    )
    plan = load_plan_file(good)
    assert plan.on_failure == "replan" and [s.id for s in plan.tasks] == ["a", "b"]
    with pytest.raises(PlanInvalid, match="does not exist"):
        load_plan_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tasks: [\n")
    with pytest.raises(PlanInvalid, match=r"broken\.yaml', line 2, column 1: not valid YAML"):
        load_plan_file(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("tasks:\n  - {id: a, goal: x, depends: [b]}\n")
    with pytest.raises(PlanInvalid, match="depends"):
        load_plan_file(typo)
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text("tasks:\n  - {id: a, goal: x, depends_on: [a]}\n")
    with pytest.raises(PlanInvalid, match="depends on itself"):
        load_plan_file(cyclic)


def _tool_parameters() -> dict[str, dict[str, object]]:
    from planweave.tools import builtin_tools

    return {each.name: each.parameters for each in builtin_tools()}


def test_a_plan_file_reports_structure_tools_and_arguments_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "tasks:\n"
        "  - {id: a, kind: tool, tool: calculator, args: {expr: '2+3'}}\n"
        "  - {id: b, kind: tool, tool: nosuch, depends_on: [a, b]}\n"
        "  - {id: c, kind: tool, tool: calculator, args: {expression: 5}}\n"
        "  - {id: d, goal: x, bogus: 1}\n"
        "  - {id: e, kind: tool, tool: http_fetch, args: {url: 'http://x', max_bytes: 'lots'}}\n"
    )
    with pytest.raises(PlanInvalid) as info:
        load_plan_file(path, tool_parameters=_tool_parameters())
    errors = info.value.errors
    assert "tasks.3.bogus: Extra inputs are not permitted" in errors
    assert "task 'b' depends on itself" in errors
    assert any(e.startswith("task 'b' names unknown tool 'nosuch'") for e in errors)
    assert any("tool 'calculator' needs argument 'expression'" in e for e in errors)
    assert any("tool 'calculator' has no parameter 'expr'" in e for e in errors)
    assert any("'expression' of tool 'calculator' must be string, not integer" in e for e in errors)
    assert any("'max_bytes' of tool 'http_fetch' must be integer or null" in e for e in errors)


def test_good_arguments_and_engine_filled_inputs_pass() -> None:
    from planweave.plan import args_problems

    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "inputs": {"type": "object"},
            "n": {"type": "integer"},
            "xs": {"type": "array", "items": {"type": "number"}},
            "mode": {"enum": ["a", "b"]},
        },
        "required": ["inputs", "n"],
    }
    assert args_problems("t", {"n": 3, "xs": [1, 2.5], "mode": "a"}, schema) == []
    assert args_problems("t", {"n": True}, schema) == [
        "argument 'n' of tool 't' must be integer, not boolean"
    ]
    assert args_problems("t", {"n": 1, "xs": [1, "x"]}, schema) == [
        "argument 'xs' of tool 't' item 1 must be number, not string"
    ]
    assert args_problems("t", {"n": 1, "mode": "c"}, schema) == [
        "argument 'mode' of tool 't' must be one of 'a', 'b', not 'c'"
    ]


def test_user_plans_are_limited_by_one_settable_number(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(
        "tasks:\n"
        + "".join(
            f"  - {{id: t{i}, kind: tool, tool: calculator, args: {{expression: '1'}}}}\n"
            for i in range(60)
        )
    )
    assert len(load_plan_file(path).tasks) == 60  # above a planner's 50
    with pytest.raises(PlanInvalid, match="the plan has 60 tasks; at most 59 are allowed"):
        load_plan_file(path, max_tasks=59)


def test_problems_are_capped_and_counted() -> None:
    tasks = [t("a", *(f"ghost{i}" for i in range(500)))]
    problems = plan_problems(tasks)
    assert len(problems) == 11
    assert problems[-1] == "... and 490 more problems"
    assert "task 'a' depends on unknown task 'ghost0'" in problems


def test_oversized_plans_are_refused_before_any_other_check() -> None:
    many = [t("x") for _ in range(51)]  # 51 duplicate ids: only the size is reported
    assert plan_problems(many) == ["the plan has 51 tasks; at most 50 are allowed"]
    fan_in = [t(f"t{i}") for i in range(1001)] + [t("last", *(f"t{i}" for i in range(1001)))]
    problems = plan_problems(fan_in, max_tasks=10_000)
    assert problems == ["task 'last' lists 1001 dependencies; at most 1000 are allowed"]
    long_goal = TaskSpec(id="a", goal="x" * 20_001)
    assert plan_problems([long_goal]) == [
        "task 'a' has a goal of 20001 characters; at most 20000 are allowed"
    ]
