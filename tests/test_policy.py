"""The policy gate on whole jobs (SQLite file, scripted model, real HTTP servers on loopback):
tool allow/deny per job and per agent, argument constraints, the egress allowlist (redirects
too), content rules on results, and policies refused when they are loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tests.policy_servers import Site, isolated_ping, serve

from planweave import Engine, JobOptions, Plan, TaskSpec, tool
from planweave.agents import ReactAgent
from planweave.config import load_settings
from planweave.errors import ConfigError
from planweave.events import PolicyDenied, TaskFailed, ToolCalled
from planweave.llm import ScriptedModel
from planweave.policy import OutputRule, Policy
from planweave.tools import ToolContext
from planweave.tools._net import check_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve("127.0.0.1")


@pytest.fixture
def elsewhere() -> Iterator[Site]:
    yield from serve("127.0.0.2")


@tool
def echo(text: str) -> str:
    """Give the text back."""
    return f"echo:{text}"


@tool
def shout(text: str) -> str:
    """Give the text back in capitals."""
    return text.upper()


@tool
def repeat(text: str, times: int, mode: str = "plain") -> str:
    """Repeat the text."""
    return text * times


@tool
async def ping(url: str, ctx: ToolContext) -> str:
    """Check that a URL may be fetched (a network tool of a user's own, passing no allowlist)."""
    await check_url(url, ctx.allow_private_network)
    return "reachable"


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    kwargs.setdefault("tools", [echo, shout, repeat])
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )


def calls(*pairs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Replies of an executor that makes these tool calls one by one, then answers."""
    replies: list[dict[str, Any]] = [
        {"match": {"role": "executor"}, "tool_calls": [{"name": name, "arguments": args}]}
        for name, args in pairs
    ]
    return [*replies, {"match": {"role": "executor"}, "content": "done", "repeat": True}]


def one_task(goal: str = "Do it", agent: str | None = None) -> Plan:
    return Plan(tasks=(TaskSpec(id="t", kind="execute", goal=goal, agent=agent),))


async def of_type(engine: Engine, job_id: str, kind: type[Any]) -> list[Any]:
    return [e for e in await engine.events(job_id) if isinstance(e, kind)]


def observations(model: Any) -> list[str]:
    last = model.requests[-1].messages
    return [m.content for m in last if m.role == "tool"]


# --- tool allow/deny --------------------------------------------------------------------------


async def test_a_tool_the_job_denies_is_not_offered_and_a_call_to_it_is_refused(
    tmp_path: Path,
) -> None:
    engine = engine_for(tmp_path, calls(("shout", {"text": "hi"}), ("echo", {"text": "hi"})))
    async with engine:
        model = engine._model
        assert isinstance(model, ScriptedModel)
        options = JobOptions(policy=Policy(deny=("shout",)))
        result = await engine.run(plan=one_task(), options=options)
        assert result.ok, result.error
        offered = {spec.name for spec in model.requests[0].tools}
        assert "echo" in offered and "shout" not in offered
        denied, ran = await of_type(engine, result.job_id, ToolCalled)
        assert denied.name == "shout" and denied.outcome == "error"
        assert denied.error is not None and "job.policy.deny" in denied.error
        assert ran.name == "echo" and ran.outcome == "ok"
        (event,) = await of_type(engine, result.job_id, PolicyDenied)
        assert (event.tool, event.rule, event.agent) == ("shout", "job.policy.deny", "executor")
        assert event.args == {"text": "hi"}
        seen = observations(model)
        assert "job.policy.deny" in seen[0] and seen[1] == "echo:hi"


async def test_a_denied_calls_events_carry_the_redacted_arguments(tmp_path: Path) -> None:
    from planweave.cli._format import event_detail
    from planweave.hooks import RedactionHook

    secret = "hunter2-very-secret-value"
    policy = Policy.model_validate({"tools": {"repeat": {"args": {"text": {"enum": ["ok"]}}}}})
    hooks = [RedactionHook(secrets=[secret], redact_logs=False)]
    engine = engine_for(tmp_path, [], policy=policy, hooks=hooks)
    args = {"text": f"say {secret}", "times": 1}
    async with engine:
        spec = TaskSpec(id="t", kind="tool", tool="repeat", args=args)
        result = await engine.run(plan=Plan(tasks=(spec,)))
        events = await engine.events(result.job_id)
        (denied,) = [e for e in events if isinstance(e, PolicyDenied)]
        assert denied.rule == "policy.tools.repeat.args.text.enum"
        assert secret not in denied.model_dump_json()
        assert "[REDACTED]" in denied.args["text"]
        (called,) = [e for e in events if isinstance(e, ToolCalled)]
        assert secret not in called.model_dump_json()
        shown = event_detail(denied, width=200)
        assert shown.startswith("repeat denied by policy.tools.repeat.args.text.enum")


async def test_an_allow_list_refuses_every_other_tool_with_globs(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        calls(("echo", {"text": "a"}), ("repeat", {"text": "a", "times": 2})),
        policy=Policy(allow=("ec*",)),
    )
    async with engine:
        result = await engine.run(plan=one_task())
        ok, refused = await of_type(engine, result.job_id, ToolCalled)
        assert ok.outcome == "ok"
        assert refused.outcome == "error" and "policy.allow" in (refused.error or "")


async def test_agent_rules_apply_to_that_agent_only(tmp_path: Path) -> None:
    writer = ReactAgent("writer")
    replies = [
        {"match": {"role": "writer"}, "tool_calls": [{"name": "echo", "arguments": {"text": "w"}}]},
        {"match": {"role": "writer"}, "content": "written"},
        {
            "match": {"role": "executor"},
            "tool_calls": [{"name": "echo", "arguments": {"text": "e"}}],
        },
        {"match": {"role": "executor"}, "content": "executed"},
    ]
    policy = Policy.model_validate({"agents": {"writer": {"deny": ["echo"]}}})
    engine = engine_for(tmp_path, replies, agents=[writer], policy=policy)
    async with engine:
        model = engine._model
        assert isinstance(model, ScriptedModel)
        plan = Plan(
            tasks=(
                TaskSpec(id="w", goal="Write", agent="writer"),
                TaskSpec(id="e", goal="Execute", depends_on=("w",)),
            )
        )
        result = await engine.run(plan=plan)
        assert result.ok, result.error
        by_agent = {e.agent: e for e in await of_type(engine, result.job_id, ToolCalled)}
        assert by_agent["writer"].outcome == "error"
        assert "policy.agents.writer.deny" in (by_agent["writer"].error or "")
        assert by_agent["executor"].outcome == "ok"
        writer_offer = next(r for r in model.requests if r.agent == "writer")
        executor_offer = next(r for r in model.requests if r.agent == "executor")
        assert "echo" not in {s.name for s in writer_offer.tools}
        assert "echo" in {s.name for s in executor_offer.tools}


async def test_a_tool_task_the_policy_denies_fails_naming_the_rule(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, [], policy=Policy(deny=("shout",)))
    async with engine:
        plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="shout", args={"text": "x"}),))
        result = await engine.run(plan=plan)
        assert not result.ok
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert "policy.deny" in failed.error
        (event,) = await of_type(engine, result.job_id, PolicyDenied)
        assert event.tool == "shout" and event.agent is None


# --- arguments --------------------------------------------------------------------------------


async def test_path_globs_refuse_paths_outside_them_however_they_are_spelled(
    tmp_path: Path,
) -> None:
    policy = Policy.model_validate({"tools": {"*": {"args": {"path": {"paths": ["docs/**"]}}}}})
    engine = engine_for(
        tmp_path,
        calls(
            ("read_file", {"path": "docs/guide/intro.md"}),
            ("read_file", {"path": "token.txt"}),
            ("read_file", {"path": "docs/../token.txt"}),
            ("read_file", {"path": "docs/link.md"}),
            ("read_file", {"path": "/etc/passwd"}),
        ),
        policy=policy,
    )
    async with engine:
        workspace = tmp_path / "ws"
        (workspace / "docs" / "guide").mkdir(parents=True)
        (workspace / "docs" / "guide" / "intro.md").write_text("welcome")
        (workspace / "token.txt").write_text("s3cret-token")
        os.symlink(workspace / "token.txt", workspace / "docs" / "link.md")
        result = await engine.run(plan=one_task(), workspace=str(workspace))
        assert result.ok, result.error
        made = await of_type(engine, result.job_id, ToolCalled)
        assert [c.outcome for c in made] == ["ok", "error", "error", "error", "error"]
        assert made[0].result == "welcome"
        rule = "policy.tools.*.args.path.paths"
        assert all(rule in (c.error or "") for c in made[1:])
        assert "through a link" in (made[3].error or "")
        assert not any("s3cret" in c.result for c in made)
        assert len(await of_type(engine, result.job_id, PolicyDenied)) == 4


async def test_numeric_ranges_patterns_and_enums(tmp_path: Path) -> None:
    rules = {
        "times": {"min": 1, "max": 3},
        "text": {"pattern": "[a-z]+"},
        "mode": {"enum": ["plain"]},
    }
    policy = Policy.model_validate({"tools": {"repeat": {"args": rules}}})
    engine = engine_for(
        tmp_path,
        calls(
            ("repeat", {"text": "ab", "times": 3}),
            ("repeat", {"text": "ab", "times": 4}),
            ("repeat", {"text": "ab", "times": 0}),
            ("repeat", {"text": "AB!", "times": 1}),
            ("repeat", {"text": "ab", "times": 1, "mode": "loud"}),
        ),
        policy=policy,
    )
    async with engine:
        result = await engine.run(plan=one_task())
        made = await of_type(engine, result.job_id, ToolCalled)
        assert made[0].outcome == "ok" and made[0].result == "ababab"
        errors = [c.error or "" for c in made[1:]]
        assert "policy.tools.repeat.args.times.max" in errors[0]
        assert "policy.tools.repeat.args.times.min" in errors[1]
        assert "policy.tools.repeat.args.text.pattern" in errors[2]
        assert "policy.tools.repeat.args.mode.enum" in errors[3]


async def test_a_url_argument_must_name_an_allowed_host(tmp_path: Path, site: Site) -> None:
    policy = Policy.model_validate(
        {"tools": {"http_fetch": {"args": {"url": {"hosts": ["127.0.0.1"]}}}}}
    )
    engine = engine_for(
        tmp_path,
        calls(
            ("http_fetch", {"url": f"{site.url}/ok"}),
            ("http_fetch", {"url": "http://evil.example/x"}),
        ),
        policy=policy,
        allow_private_network=True,
    )
    async with engine:
        result = await engine.run(plan=one_task())
        ok, refused = await of_type(engine, result.job_id, ToolCalled)
        assert ok.outcome == "ok"
        assert "policy.tools.http_fetch.args.url.hosts" in (refused.error or "")
        assert site.hits == ["GET /ok"]


# --- egress -----------------------------------------------------------------------------------


async def test_egress_refuses_hosts_off_the_allowlist_before_connecting(
    tmp_path: Path, site: Site, elsewhere: Site
) -> None:
    site.redirect_to = f"{elsewhere.url}/secret"
    engine = engine_for(
        tmp_path,
        calls(
            ("http_fetch", {"url": f"{site.url}/page"}),
            ("http_fetch", {"url": f"{elsewhere.url}/direct"}),
            ("http_fetch", {"url": f"{site.url}/redirect"}),
        ),
        allow_private_network=True,
    )
    async with engine:
        options = JobOptions(policy=Policy(egress=("127.0.0.1",)))
        result = await engine.run(plan=one_task(), options=options)
        assert result.ok, result.error
        made = await of_type(engine, result.job_id, ToolCalled)
        assert [c.outcome for c in made] == ["ok", "error", "error"]
        assert all("job.policy.egress" in (c.error or "") for c in made[1:])
        assert site.hits == ["GET /page", "GET /redirect"]
        assert elsewhere.hits == []  # no connection off the allowlist, redirect or not
        denied = await of_type(engine, result.job_id, PolicyDenied)
        assert [d.rule for d in denied] == ["job.policy.egress"] * 2


async def test_egress_covers_a_tool_task_and_a_tool_written_without_knowing_it(
    tmp_path: Path, elsewhere: Site
) -> None:
    engine = engine_for(
        tmp_path,
        [],
        tools=[ping],
        allow_private_network=True,
        policy=Policy(egress=("*.example.org",)),
    )
    async with engine:
        plan = Plan(
            tasks=(TaskSpec(id="t", kind="tool", tool="ping", args={"url": elsewhere.url}),)
        )
        result = await engine.run(plan=plan)
        assert not result.ok
        assert "policy.egress" in (result.error or "")
        (event,) = await of_type(engine, result.job_id, PolicyDenied)
        assert event.rule == "policy.egress" and event.tool == "ping"
        assert elsewhere.hits == []


async def test_egress_holds_in_the_process_an_isolated_tool_runs_in(
    tmp_path: Path, site: Site
) -> None:
    engine = engine_for(
        tmp_path,
        [],
        tools=[isolated_ping],
        allow_private_network=True,
        policy=Policy(egress=("127.0.0.2",)),
    )
    async with engine:
        args = {"url": site.url}
        spec = TaskSpec(id="t", kind="tool", tool="isolated_ping", args=args)
        result = await engine.run(plan=Plan(tasks=(spec,)))
        assert not result.ok
        assert "policy.egress" in (result.error or "")
        allowed = Policy(egress=("127.0.0.1",))
        again = await engine.run(plan=Plan(tasks=(spec,)), options=JobOptions(policy=allowed))
        assert "policy.egress" in (again.error or "")  # the engine's policy holds too
    async with engine_for(tmp_path, [], tools=[isolated_ping], allow_private_network=True) as free:
        ok = await free.run(plan=Plan(tasks=(spec,)), options=JobOptions(policy=allowed))
        assert ok.ok and ok.result == "reachable", ok.error


# --- outputs ----------------------------------------------------------------------------------


async def test_a_result_matching_a_content_rule_fails_its_task(tmp_path: Path) -> None:
    replies = [{"match": {"role": "executor"}, "content": "the key is sk-abcdefghijklmnopqrstuv"}]
    engine = engine_for(tmp_path, replies)
    async with engine:
        policy = Policy.model_validate(
            {"outputs": [{"name": "no-keys", "pattern": "sk-[A-Za-z0-9]{20,}"}]}
        )
        result = await engine.run(plan=one_task(), options=JobOptions(policy=policy))
        assert not result.ok
        (failed,) = await of_type(engine, result.job_id, TaskFailed)
        assert failed.error_type == "policy"
        assert "job.policy.outputs.no-keys" in failed.error
        (event,) = await of_type(engine, result.job_id, PolicyDenied)
        assert event.point == "output" and event.rule == "job.policy.outputs.no-keys"
        assert "sk-abc" not in event.reason


async def test_a_python_predicate_refuses_a_result(tmp_path: Path) -> None:
    rule = OutputRule(name="short", predicate=lambda text: len(text) < 10, reason="too long")
    replies = [
        {"match": {"role": "executor", "contains": "One"}, "content": "fine"},
        {"match": {"role": "executor", "contains": "Two"}, "content": "far too long an answer"},
    ]
    engine = engine_for(tmp_path, replies, policy=Policy(outputs=(rule,)))
    async with engine:
        first = await engine.run(plan=one_task("One"))
        assert first.ok and first.result == "fine"
        second = await engine.run(plan=one_task("Two"))
        assert not second.ok
        assert "policy.outputs.short: too long" in (second.error or "")


async def test_a_pattern_that_backtracks_without_end_refuses_instead_of_stalling(
    tmp_path: Path,
) -> None:
    replies = [{"match": {"role": "executor"}, "content": "a" * 40 + "!"}]
    engine = engine_for(tmp_path, replies)
    async with engine:
        policy = Policy.model_validate({"outputs": [{"name": "slow", "pattern": "^(a|aa)+$"}]})
        result = await engine.run(plan=one_task(), options=JobOptions(policy=policy))
        assert not result.ok
        assert "job.policy.outputs.slow: its pattern took too long" in (result.error or "")


def test_a_job_policy_with_a_predicate_is_refused() -> None:
    rule = OutputRule(name="p", predicate=lambda text: True)
    with pytest.raises(ValidationError, match="travels as data"):
        JobOptions(policy=Policy(outputs=(rule,)))


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[policy]\ndenny = ['shell']\n", "key 'policy.denny': unknown key"),
        (
            "[policy.tools.read_file.args.path]\npaths = ['docs/[a']\n",
            "tools.read_file.args.path.paths",
        ),
        ("[policy.tools.read_file.args.path]\npaths = ['../up/*']\n", "'..' is not allowed"),
        ("[policy.tools.n.args.x]\nmin = 5\nmax = 1\n", "min (5) is greater than max (1)"),
        ("[[policy.outputs]]\nname = 'r'\npattern = '(unclosed'\n", "bad regular expression"),
        ("[policy]\negress = ['http://x/']\n", "bad host"),
        ("[policy.tools.x]\nargz = {}\n", "tools.x.argz"),
    ],
)
def test_a_malformed_policy_is_refused_naming_the_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = tmp_path / "planweave.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings({}, env={}, config_file=path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and expected in message


def test_a_policy_loads_from_the_config_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "planweave.toml"
    path.write_text(
        "[policy]\ndeny = ['shell', 'mcp_*']\negress = ['*.example.org']\n"
        "[policy.agents.writer]\nallow = ['read_file']\n"
        "[policy.tools.read_file.args.path]\npaths = ['docs/**']\n"
    )
    settings = load_settings({}, env={}, config_file=path)
    assert settings.policy is not None
    assert settings.policy.deny == ("shell", "mcp_*")
    assert settings.engine_kwargs(with_tools=False)["policy"] == settings.policy
    from_env = load_settings({}, env={"PLANWEAVE_POLICY": '{"deny": ["shell"]}'}, config_file=path)
    assert from_env.policy is not None and from_env.policy.egress is None


def test_planweave_run_with_a_bad_policy_prints_one_line_and_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text("[policy]\ndeny = 'shell'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, "-m", "planweave.cli", "run", "hello", "--model", "scripted:none.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "policy" in lines[0] and "deny" in lines[0]
    assert not any(tmp_path.glob("**/*.db"))


# --- API --------------------------------------------------------------------------------------


async def test_an_api_job_brings_its_own_policy_and_sees_the_denial(tmp_path: Path) -> None:
    import httpx

    from planweave.config import Settings
    from planweave.server.testing import running_server

    engine = engine_for(tmp_path, [])
    token = "pw_alice_token_for_tests_0000000000"
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "tokens": f"alice:{token}"})
    plan = {"tasks": [{"id": "t", "kind": "tool", "tool": "shout", "args": {"text": "x"}}]}
    try:
        async with running_server(engine, settings) as server:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
                bad = await http.post(
                    "/v1/jobs", json={"plan": plan, "options": {"policy": {"denny": ["x"]}}}
                )
                assert bad.status_code == 422 and "denny" in bad.text
                body = {"plan": plan, "options": {"policy": {"deny": ["shout"]}}}
                created = await http.post("/v1/jobs", json=body)
                assert created.status_code == 201, created.text
                job_id = created.json()["job_id"]
                result = await engine.wait(job_id)
                assert result.status == "failed"
                events = (await http.get(f"/v1/jobs/{job_id}/events")).text
                assert "PolicyDenied" in events and "job.policy.deny" in events
    finally:
        await engine.close()


def test_planweave_run_holds_a_job_to_the_policy_of_planweave_toml(tmp_path: Path) -> None:
    import json

    (tmp_path / "planweave.toml").write_text("[policy]\ndeny = ['calc*']\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "tasks:\n  - {id: t, kind: tool, tool: calculator, args: {expression: '1+1'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    store = ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "planweave.cli", *args, *store]
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    done = cli("run", "--plan", str(plan), "--json")
    assert done.returncode == 1, done.stderr
    job = json.loads(done.stdout)
    assert "denied by policy rule policy.deny" in job["error"]
    events = cli("events", job["job_id"])
    assert events.returncode == 0, events.stderr
    assert "PolicyDenied" in events.stdout
    assert "calculator denied by policy.deny" in events.stdout
