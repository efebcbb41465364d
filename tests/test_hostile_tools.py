"""Hostile input against tools, files and parsers: every case must end quickly, with a clear
error, within bounded memory, without stalling the event loop.

Sizes are small (they only need to trip the limits) so the module runs in seconds. Time bounds
are generous: they catch a stall or a hang, not a slow machine.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from tests.test_cli import clean_env, store_args

from planweave.config import load_settings
from planweave.errors import ConfigError, PlanInvalid
from planweave.llm.scripted import ScriptedModel
from planweave.plan import load_plan_file

T = TypeVar("T")


# --- measuring ------------------------------------------------------------------------------


def _rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_rss_mb() -> float:
    """The most resident memory this process has used so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


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


def _run_child(args: list[str], cwd: Path) -> tuple[int, str, float]:
    """Run a process; its exit code, stderr and peak resident memory in MB."""
    proc = subprocess.Popen(
        args, cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    return proc.returncode, stderr, usage.ru_maxrss / 1e3


# --- YAML alias bomb ------------------------------------------------------------------------


def _alias_bomb(levels: int) -> str:
    """A plan whose one task's arguments hold a "billion laughs": 9**levels strings."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    body = "\n".join(f"        {line}" for line in lines)
    return (
        "tasks:\n  - id: t\n    kind: tool\n    tool: calculator\n    args:\n"
        f"      expression: '1'\n      extra:\n{body}\n"
    )


def test_a_yaml_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    file = tmp_path / "bomb.yaml"
    file.write_text(_alias_bomb(9))
    assert len(file.read_bytes()) < 1000
    before = _peak_rss_mb()
    start = time.perf_counter()
    with pytest.raises(PlanInvalid) as info:
        load_plan_file(file)
    assert time.perf_counter() - start < 5
    assert _peak_rss_mb() - before < 100
    assert f"plan file {str(file)!r}, line 9, column 18: aliases (*name) are not allowed" in str(
        info.value
    )


def test_the_cli_refuses_a_yaml_alias_bomb_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(_alias_bomb(7))
    command = [sys.executable, "-m", "planweave.cli", "run", "--plan", "bomb.yaml"]
    code, stderr, peak_mb = _run_child([*command, *store_args(tmp_path)], tmp_path)
    assert code == 2, stderr
    assert "plan file 'bomb.yaml', line 9" in stderr
    assert "aliases (*name) are not allowed" in stderr
    assert peak_mb < 500


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
