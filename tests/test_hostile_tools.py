"""Hostile input against tools, files and parsers: every case must end quickly, with a clear
error, within bounded memory, without stalling the event loop.

Sizes are small (they only need to trip the limits) so the module runs in seconds. Time bounds
are generous: they catch a stall or a hang, not a slow machine.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest
from tests.hostile_helpers import Crunch, hoard, misbehave, spin
from tests.test_agents_planner import run_plan
from tests.test_agents_react import TASK, FakeModel
from tests.test_agents_react import make_ctx as make_react_ctx
from tests.test_api_jobs import client as api_client
from tests.test_api_jobs import serving, wait_for_status
from tests.test_api_jobs import tool_plan as api_tool_plan
from tests.test_cli import clean_env, store_args

from planweave import Engine
from planweave.agents import ReactAgent
from planweave.config import load_settings
from planweave.errors import (
    ConfigError,
    ModelResponseError,
    PlanInvalid,
    RetryTask,
    UsageError,
)
from planweave.events import LlmCalled, ToolCalled
from planweave.llm._common import parse_json_reply, with_retries
from planweave.llm.base import LlmResponse, ToolCall
from planweave.llm.openai import parse_tool_call
from planweave.llm.scripted import ScriptedModel
from planweave.plan import Plan, TaskSpec, load_plan_file
from planweave.tools import (
    ToolContext,
    ToolProcesses,
    ToolRegistry,
    ToolResult,
    builtin_tools,
    invoke,
    run_tool_call,
    tool,
)
from planweave.tools._remove import remove_tree

T = TypeVar("T")


# --- measuring ------------------------------------------------------------------------------


def _rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _RssWatch:
    """The most this process's resident memory grew while the block ran, sampled by a thread."""

    def __init__(self) -> None:
        self.growth_mb = 0.0
        self._running = False
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        base = _rss_mb()
        while self._running:
            self.growth_mb = max(self.growth_mb, _rss_mb() - base)
            time.sleep(0.002)

    def __enter__(self) -> _RssWatch:
        self._running = True
        self._thread.start()
        time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._thread.join()


async def _longest_stall_s(work: Awaitable[T], tick_s: float = 0.01) -> tuple[T, float]:
    """Run ``work`` next to a ticker and return its result and the ticker's longest gap."""
    longest = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(tick_s)
            now = time.perf_counter()
            longest = max(longest, now - last - tick_s)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        result = await work
    finally:
        running = False
        await task
    return result, longest


CHILD_MEMORY_BYTES = 3 * 1024**3
"""Address space of a measured child process: what a bomb that got through would hit first."""
_MEASURED = (
    "import atexit, resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({CHILD_MEMORY_BYTES}, {CHILD_MEMORY_BYTES}))\n"
    "def report():\n"
    "    with open('/proc/self/status') as status:\n"
    "        peak = [line for line in status if line.startswith('VmHWM')]\n"
    "    print('\\npeak', peak[0].split()[1], file=sys.stderr)\n"
    "atexit.register(report)\n"
)
_CLI = (
    "import runpy\n"
    "sys.argv = ['planweave', *sys.argv[1:]]\n"
    "runpy.run_module('planweave.cli', run_name='__main__', alter_sys=True)\n"
)


def _run_measured(code: str, args: list[str], cwd: Path, timeout_s: float = 60) -> _Measured:
    """Run ``code`` in a Python process of its own (``sys.argv[1:]`` = ``args``), under an
    address-space limit, and return its exit code, stderr, peak resident memory and duration.

    The peak is the process's own (``VmHWM``, read at exit): ``ru_maxrss`` of a child also
    counts the parent's memory at the fork. A child still running at ``timeout_s`` is killed
    and reported as having taken forever.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURED + code, *args],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return _Measured(-9, f"still running after {timeout_s:g} s", math.inf, math.inf)
    elapsed_s = time.perf_counter() - start
    stderr, found, peak_kb = proc.stderr.rpartition("\npeak ")
    peak_mb = int(peak_kb) / 1e3 if found else math.inf  # no report: it died of its memory
    return _Measured(proc.returncode, stderr if found else proc.stderr, peak_mb, elapsed_s)


@dataclass(frozen=True)
class _Measured:
    code: int
    stderr: str
    peak_mb: float
    elapsed_s: float


# --- YAML alias bomb ------------------------------------------------------------------------


def _alias_bomb(levels: int, kind: str = "tool") -> str:
    """A plan whose one task's arguments hold a "billion laughs": 9**levels strings.

    Loaded without an alias limit it is small (each alias is one shared list), but anything
    that walks it (storing the plan, sending it to a worker) writes out every string.
    """
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    body = "\n".join(f"        {line}" for line in lines)
    head = (
        "    kind: tool\n    tool: calculator\n    args:\n      expression: '1'\n"
        if kind == "tool"
        else "    goal: Say hello\n    args:\n"
    )
    return f"tasks:\n  - id: t\n{head}      extra:\n{body}\n"


_LOAD_AND_STORE = (
    "from planweave.errors import PlanInvalid\n"
    "from planweave.plan import load_plan_file\n"
    "try:\n"
    "    plan = load_plan_file(sys.argv[1])\n"
    "except PlanInvalid as exc:\n"
    "    print(exc, file=sys.stderr)\n"
    "    sys.exit(2)\n"
    "plan.model_dump_json()  # what submitting the plan stores\n"
)


def test_a_yaml_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    file = tmp_path / "bomb.yaml"
    file.write_text(_alias_bomb(9))
    assert len(file.read_bytes()) < 1000
    # Measured in a child: were the bomb loaded, storing the plan would write 9**9 strings.
    run = _run_measured(_LOAD_AND_STORE, [str(file)], tmp_path, timeout_s=30)
    assert run.elapsed_s < 15, run.stderr
    assert run.peak_mb < 150, run.stderr
    assert run.code == 2, run.stderr
    assert f"plan file {str(file)!r}, line 9, column 18: aliases (*name) are not allowed" in (
        run.stderr
    )


def test_the_cli_refuses_a_yaml_alias_bomb_with_exit_2(tmp_path: Path) -> None:
    # An execute task's arguments are not checked against a tool: a loaded bomb would run.
    (tmp_path / "bomb.yaml").write_text(_alias_bomb(8, kind="execute"))
    run = _run_measured(
        _CLI, ["run", "--plan", "bomb.yaml", *store_args(tmp_path)], tmp_path, timeout_s=40
    )
    assert run.elapsed_s < 30, run.stderr
    assert run.peak_mb < 300, run.stderr
    assert run.code == 2, run.stderr
    assert "plan file 'bomb.yaml', line 7" in run.stderr
    assert "aliases (*name) are not allowed" in run.stderr


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tasks: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64 levels"),
        ("base: &b {goal: x}\ntasks:\n  - {<<: *b, id: a}\n", "aliases (*name) are not allowed"),
        ("tasks: []\n" + "# pad\n" * 2_000_000, "larger than the limit of 10000000 bytes"),
        ("tasks: [\xff]\n", None),
    ],
)
def test_plan_files_over_the_limits_are_refused_by_name(
    tmp_path: Path, text: str, fragment: str | None
) -> None:
    file = tmp_path / "plan.yaml"
    file.write_bytes(text.encode("latin-1") if fragment is None else text.encode())
    with pytest.raises(PlanInvalid) as info:
        load_plan_file(file)
    message = str(info.value)
    assert str(file) in message
    assert (fragment or "is not UTF-8 text") in message


def test_a_scripted_model_file_with_aliases_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "replies.yaml"
    file.write_text("hello: &h {content: hi}\nreplies:\n  - *h\n")
    with pytest.raises(ConfigError) as info:
        ScriptedModel.from_file(file)
    assert f"scripted model file {str(file)!r}, line 3, column 5: aliases" in str(info.value)


def test_a_deeply_nested_config_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "planweave.toml"
    file.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, env={}, config_file=file)
    assert "is nested too deeply" in str(info.value)


# --- deeply nested JSON from a model --------------------------------------------------------

DEEP_TEXT = "[" * 5000 + "]" * 5000
"""Deep enough to overflow Python's recursive JSON parser and encoder."""


def _deep_value(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def echo(value: object) -> object:
    """Return the value.

    Args:
        value: Anything.
    """
    return value


async def test_deep_tool_arguments_are_a_tool_error_and_a_short_event(tmp_path: Path) -> None:
    registry = ToolRegistry([echo])
    ctx = ToolContext(workspace=tmp_path, job_id="j", task_id="t")
    calls: list[ToolCalled] = []
    result = await run_tool_call(
        registry, "echo", {"value": _deep_value(5000)}, ctx, record=calls.append
    )
    assert (result.ok, result.error_type) == (False, "arguments_invalid")
    assert result.error == "the arguments for 'echo' are nested deeper than 64 levels"
    assert calls[0].args == {"value": "[nested deeper than 64 levels]"}
    # Written by a model as text (OpenAI-style arguments), the same error, not "not JSON".
    call = parse_tool_call(0, "c1", "echo", '{"value": ' + DEEP_TEXT + "}")
    assert call.raw_arguments is not None
    result = await run_tool_call(
        registry, "echo", call.arguments, ctx, raw_arguments=call.raw_arguments
    )
    assert result.error == "the arguments for 'echo' are nested deeper than 64 levels"
    shallow = await run_tool_call(registry, "echo", {"value": _deep_value(10)}, ctx)
    assert shallow.ok


async def test_a_deep_tool_call_from_a_model_becomes_an_observation(tmp_path: Path) -> None:
    deep = ToolCall(id="c1", name="calculator", arguments={"expression": _deep_value(3000)})
    model = FakeModel([LlmResponse(tool_calls=(deep,)), LlmResponse(content="gave up")])
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_react_ctx(model, tmp_path, events))
    assert result.output == "gave up"
    observation = model.requests[1].messages[-1].content
    assert "nested deeper than 64 levels" in observation


async def test_a_deep_json_reply_is_a_failed_attempt_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelResponseError) as info:
        parse_json_reply(DEEP_TEXT, model="m", finish_reason="stop", max_tokens=100)
    assert "replied with JSON nested deeper than 64 levels" in str(info.value)

    async def recursing() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    with pytest.raises(ModelResponseError) as info:
        await with_retries(recursing, translate=lambda exc: None, catch=(), max_retries=0)
    assert "nested too deeply" in str(info.value)


async def test_a_deep_plan_reply_gets_a_repair_round_that_says_why(tmp_path: Path) -> None:
    good = {"tasks": [{"id": "t1", "goal": "Do it", "depends_on": [], "kind": "execute"}]}
    model = FakeModel(
        [
            LlmResponse(content='{"tasks": ' + DEEP_TEXT + "}"),
            LlmResponse(content=json.dumps(good)),
        ]
    )
    tasks = await run_plan(model, tmp_path)
    assert [task.id for task in tasks] == ["t1"]
    assert "nested deeper than 64 levels" in model.requests[1].messages[-1].content


# --- tools that hold the GIL run in a worker process killed at the deadline -----------------


async def test_a_tool_that_holds_the_gil_is_stopped_at_its_deadline_without_stalling_the_loop(
    tmp_path: Path,
) -> None:
    registry = ToolRegistry([spin])
    processes = ToolProcesses(1)
    ctx = ToolContext(workspace=tmp_path, processes=processes)
    try:
        warm = await invoke(registry, "spin", {"n": 10}, ctx)  # boots the worker
        assert (warm.ok, warm.value) == (True, 45)
        start = time.perf_counter()
        # In this process, summing 10**8 numbers holds the GIL for seconds.
        result, stall_s = await _longest_stall_s(invoke(registry, "spin", {"n": 10**8}, ctx))
        assert time.perf_counter() - start < 3
        assert stall_s < 0.4
        assert (result.ok, result.error_type, result.retryable) == (False, "timeout", False)
        assert result.error == (
            "tool 'spin' did not finish within 0.5 s; its worker process was stopped"
        )
        again = await invoke(registry, "spin", {"n": 100}, ctx)  # on the replacement worker
        assert (again.ok, again.value) == (True, 4950)
        assert processes.workers == 1
    finally:
        await processes.close()
    assert processes.workers == 0


async def test_isolated_tools_keep_errors_signals_and_context_across_the_process(
    tmp_path: Path,
) -> None:
    registry = ToolRegistry([misbehave])
    processes = ToolProcesses(2)
    ctx = ToolContext(workspace=tmp_path, job_id="j1", task_id="t1", processes=processes)
    try:
        printed = await invoke(registry, "misbehave", {"how": "print"}, ctx)
        assert (printed.ok, printed.value) == (True, "printed")
        context = await invoke(registry, "misbehave", {"how": "context"}, ctx)
        assert context.value == f"j1:t1:{tmp_path.name}:True"
        policy = await invoke(registry, "misbehave", {"how": "policy"}, ctx)
        assert (policy.error_type, policy.error) == ("policy", "not allowed here")
        with pytest.raises(RetryTask) as info:
            await invoke(registry, "misbehave", {"how": "retry"}, ctx)
        assert (info.value.reason, info.value.delay_s) == ("later", 2.5)
        died = await invoke(registry, "misbehave", {"how": "exit"}, ctx)
        assert (died.ok, died.error_type, died.retryable) == (False, "error", False)
        assert died.error == "the tool's worker process died (exit code 3)"
        bad = await invoke(registry, "misbehave", {"how": 3}, ctx)  # checked before it is sent
        assert bad.error_type == "arguments_invalid"
        assert (await invoke(registry, "misbehave", {"how": "print"}, ctx)).ok
    finally:
        await processes.close()


def test_an_isolated_tool_must_be_importable_by_name() -> None:
    def local(x: int) -> int:
        return x

    with pytest.raises(ConfigError) as info:
        tool(isolated=True)(local)
    assert "must be a function defined at the top level of a module" in str(info.value)


async def test_a_calculator_bomb_in_a_tool_task_fails_fast_and_the_engine_stops_its_workers(
    tmp_path: Path,
) -> None:
    plan = Plan(
        tasks=[
            TaskSpec(
                id="bomb", kind="tool", tool="calculator", args={"expression": "round(1, -9999999)"}
            ),
            TaskSpec(id="ok", kind="tool", tool="calculator", args={"expression": "6*7"}),
        ]
    )
    engine = Engine(store="memory://", data_dir=tmp_path, model=ScriptedModel([]))
    async with engine:
        outcome, stall_s = await _longest_stall_s(engine.run(plan=plan))
        processes = engine._tool_processes
        assert processes is not None and processes.workers >= 1
    assert stall_s < 1.0
    assert outcome.status == "failed"
    assert "round() digits -9999999 are out of range" in (outcome.error or "")
    assert processes.workers == 0


async def test_a_tool_class_that_says_isolated_runs_in_a_worker_process_killed_at_its_deadline(
    tmp_path: Path,
) -> None:
    registry = ToolRegistry([Crunch()])
    processes = ToolProcesses(1, max_memory_bytes=256 * 1024 * 1024)
    ctx = ToolContext(workspace=tmp_path, job_id="j1", task_id="t1", processes=processes)
    try:
        warm = await invoke(registry, "crunch", {"n": 10}, ctx)
        assert warm.ok, warm.error
        assert (warm.value["sum"], warm.value["job"]) == (45, "j1")
        assert warm.value["pid"] != os.getpid()
        result, stall_s = await _longest_stall_s(invoke(registry, "crunch", {"n": 10**8}, ctx))
        assert stall_s < 0.4
        assert (result.ok, result.error_type, result.retryable) == (False, "timeout", False)
        assert "its worker process was stopped" in result.error
        hog = await invoke(registry, "crunch", {"mb": 400}, ctx)
        assert "the tool ran out of memory: its worker process may use 256 MiB" in hog.error
        again = await invoke(registry, "crunch", {"n": 100}, ctx)  # on a fresh worker
        assert again.value["sum"] == 4950 and again.value["pid"] != warm.value["pid"]
        assert (await invoke(registry, "crunch", {"n": "x"}, ctx)).error_type == (
            "arguments_invalid"
        )
    finally:
        await processes.close()


def test_an_isolated_tool_class_must_be_one_a_worker_can_make() -> None:
    class Nested(Crunch):
        pass

    class NeedsArguments(Crunch):
        def __init__(self, secret: str) -> None:
            self.secret = secret

    with pytest.raises(ConfigError) as nested:
        ToolRegistry([Nested()])
    assert "must be defined at the top level of a module" in str(nested.value)
    NeedsArguments.__qualname__ = "NeedsArguments"  # as if at the top level
    with pytest.raises(ConfigError) as arguments:
        ToolRegistry([NeedsArguments("s")])
    assert "constructible with no arguments" in str(arguments.value)


async def test_an_isolated_tool_that_allocates_without_bound_fails_and_its_worker_is_replaced(
    tmp_path: Path,
) -> None:
    # 2 GB, a megabyte at a time, against the default limit of 1 GiB per worker process.
    plan = Plan(tasks=[TaskSpec(id="hog", kind="tool", tool="hoard", args={"mb": 2048})])
    again = Plan(tasks=[TaskSpec(id="small", kind="tool", tool="hoard", args={"mb": 8})])
    engine = Engine(store="memory://", data_dir=tmp_path, model=ScriptedModel([]), tools=[hoard])
    async with engine:
        with _RssWatch() as rss:
            outcome, stall_s = await _longest_stall_s(engine.run(plan=plan))
        assert outcome.status == "failed"
        state = await engine.get(outcome.job_id)
        error = state.tasks["hog"].error or ""
        assert "the tool ran out of memory: its worker process may use 1024 MiB" in error
        assert state.tasks["hog"].attempt == 1  # not retried: the same call would do the same
        after = await engine.run(plan=again)  # on a fresh worker
        assert (after.status, after.result) == ("succeeded", 8)
    assert rss.growth_mb < 60
    assert stall_s < 1.0


async def test_the_memory_limit_of_tool_workers_is_set_on_the_engine(tmp_path: Path) -> None:
    plan = Plan(tasks=[TaskSpec(id="hog", kind="tool", tool="hoard", args={"mb": 300})])
    tight = Engine(
        store="memory://",
        data_dir=tmp_path,
        model=ScriptedModel([]),
        tools=[hoard],
        tool_memory_bytes=256 * 1024 * 1024,
    )
    async with tight:
        failed = await tight.run(plan=plan)
        assert "may use 256 MiB" in ((await tight.get(failed.job_id)).tasks["hog"].error or "")
    roomy = Engine(
        store="memory://",
        data_dir=tmp_path,
        model=ScriptedModel([]),
        tools=[hoard],
        tool_memory_bytes=None,
    )
    async with roomy:
        assert (await roomy.run(plan=plan)).result == 300
    with pytest.raises(UsageError) as info:
        Engine(store="memory://", data_dir=tmp_path, tool_memory_bytes=1024)
    assert "tool_memory_bytes must be at least 134217728" in str(info.value)


# --- workspace depth and deletion -----------------------------------------------------------


def _nest(root: Path, depth: int) -> None:
    """Make ``depth`` nested folders under ``root`` (relative to descriptors: past PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as file:
            file.write("bottom")
    finally:
        os.close(fd)


async def test_write_file_refuses_deep_folders_and_delete_removes_any_depth(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as api, api_client(api) as http:
        plan = api_tool_plan(
            {"id": "ok", "tool": "write_file", "args": {"path": "a/" * 32 + "x", "content": "1"}},
            {
                "id": "deep",
                "tool": "write_file",
                "args": {"path": "a/" * 2047 + "x", "content": "1"},
                "depends_on": ["ok"],  # after it: its failure must not cancel "ok"
            },
        )
        job_id = (await http.post("/v1/jobs", json=plan)).json()["job_id"]
        job = await wait_for_status(http, job_id, "failed", "succeeded")
        tasks = {
            task["id"]: task
            for task in (await http.get(f"/v1/jobs/{job_id}/tasks")).json()["tasks"]
        }
        assert tasks["ok"]["status"] == "succeeded"
        assert "2047 folders deep, over the limit of 32" in tasks["deep"]["error"]
        assert job["status"] == "failed"
        workspace = tmp_path / "data" / "workspaces" / job_id
        assert (workspace / ("a/" * 32 + "x")).read_text() == "1"
        # As deep as a tool without the limit (or an older version) could have made it.
        _nest(workspace, 2047)
        try:
            start = time.perf_counter()
            assert (await http.delete(f"/v1/jobs/{job_id}")).status_code == 204
            assert time.perf_counter() - start < 20
            assert not workspace.exists()
            assert (await http.get(f"/v1/jobs/{job_id}")).status_code == 404
        finally:
            remove_tree(workspace)  # pytest's own clean-up of tmp_path recurses


def test_remove_tree_never_follows_a_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tree = tmp_path / "tree"
    tree.mkdir()
    _nest(tree, 50)
    (tree / "d" / "link").symlink_to(outside, target_is_directory=True)
    (tree / "file-link").symlink_to(outside / "keep.txt")
    assert remove_tree(tree) is True
    assert not tree.exists() and (outside / "keep.txt").read_text() == "keep"
    assert remove_tree(tree) is False


# --- decompression bombs in http_fetch ------------------------------------------------------


def _gzip_of_zeros(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1_000_000)
    return b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return packer.compress(data) + packer.flush()


@pytest.fixture(scope="module")
def bomb_server() -> Iterator[str]:
    """A real HTTP server on loopback that answers with decompression bombs."""
    single = _gzip_of_zeros(150)  # 150 MB of zeros in about 150 KB
    bodies = {
        "/gzip": ("gzip", single),
        "/gzip-gzip": ("gzip, gzip", _gzip(single)),
        "/page": ("gzip", _gzip(b"hello, compressed world")),
        "/raw-deflate": ("deflate", zlib.compress(b"raw deflate", 9)[2:-4]),
        "/br": ("br", b"whatever"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            encoding, body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _fetch(tmp_path: Path, url: str) -> ToolResult:
    ctx = ToolContext(workspace=tmp_path, allow_private_network=True)
    return await invoke(ToolRegistry(builtin_tools()), "http_fetch", {"url": url}, ctx)


async def test_a_stacked_gzip_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, bomb_server: str
) -> None:
    with _RssWatch() as rss:
        result, stall_s = await _longest_stall_s(_fetch(tmp_path, bomb_server + "/gzip-gzip"))
    assert rss.growth_mb < 40
    assert stall_s < 1.0
    assert (result.ok, result.retryable) == (False, False)
    assert "it is encoded several times over ('gzip, gzip')" in (result.error or "")


async def test_a_gzip_bomb_is_decoded_only_up_to_the_byte_limit(
    tmp_path: Path, bomb_server: str
) -> None:
    with _RssWatch() as rss:
        result, stall_s = await _longest_stall_s(_fetch(tmp_path, bomb_server + "/gzip"))
    assert rss.growth_mb < 40
    assert stall_s < 1.0
    assert result.ok and result.value["truncated"] is True
    assert len(result.value["text"]) == 1_000_000


async def test_compressed_pages_still_read_and_odd_encodings_are_refused(
    tmp_path: Path, bomb_server: str
) -> None:
    page = await _fetch(tmp_path, bomb_server + "/page")
    assert page.value["text"] == "hello, compressed world" and not page.value["truncated"]
    raw = await _fetch(tmp_path, bomb_server + "/raw-deflate")
    assert raw.value["text"] == "raw deflate"
    brotli = await _fetch(tmp_path, bomb_server + "/br")
    assert "unsupported content encoding 'br'" in (brotli.error or "")
