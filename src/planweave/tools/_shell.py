"""``shell``: run one allowlisted program in the workspace, off unless the operator allows some.

The command is an argument list handed to the program as is (``exec``, never a shell), so
``;``, ``$(...)``, backticks, globs and redirections are plain text to it. Only executables
named in the ``shell_commands`` setting run; the program starts in the workspace with a minimal
environment (no variable of the engine's own environment, so no API key, reaches it), in its
own process group, which is killed at the time limit; its output is cut at a size limit.
Each call is high impact: by default a person approves it before it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from planweave._text import truncate
from planweave.errors import PolicyViolation, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import tool

__all__ = ["MAX_OUTPUT_BYTES", "MAX_SHELL_TIMEOUT_S", "SAFE_PATH", "shell"]

MAX_OUTPUT_BYTES = 64 * 1024
"""Most bytes of standard output (and, apart, of standard error) a call returns."""
MAX_SHELL_TIMEOUT_S = 300.0
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where the allowlisted executables are looked up (not the engine's ``PATH``)."""
_REAP_S = 5.0
_MAX_ARGS = 1000
_MAX_ARG_CHARS = 100_000


def _environment(workspace: str) -> dict[str, str]:
    return {
        "PATH": SAFE_PATH,
        "HOME": workspace,
        "PWD": workspace,
        "TMPDIR": workspace,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def _prepare(workspace: Path) -> str:
    """The real workspace folder, made if missing (the program's working directory)."""
    real = os.path.realpath(workspace)
    os.makedirs(real, exist_ok=True)
    return real


def _executable(command: list[str], allowed: tuple[str, ...]) -> str:
    if not allowed:
        raise PolicyViolation(
            "the shell tool is off: the operator allows no commands (setting shell_commands)"
        )
    if not command or not command[0]:
        raise ToolError("command is empty: give the program and its arguments as a list")
    if len(command) > _MAX_ARGS or sum(len(arg) for arg in command) > _MAX_ARG_CHARS:
        raise ToolError("the command is too long")
    if any("\x00" in arg for arg in command):
        raise ToolError("the command contains a NUL byte")
    program = command[0]
    if program not in allowed:
        raise PolicyViolation(
            f"command {truncate(program, 80)!r} is not allowed: the allowed commands are "
            f"{', '.join(allowed)}"
        )
    found = program if os.path.isabs(program) else shutil.which(program, path=SAFE_PATH)
    if found is None or not os.access(found, os.X_OK):
        raise ToolError(f"command {program!r} is allowed but not installed ({SAFE_PATH})")
    return found


class _Capture:
    """The first ``limit`` bytes of a stream, and whether more came (read and dropped, so the
    program is never blocked on a full pipe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.more = False

    async def read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            if len(chunk) > room:
                self.more = True

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


async def _feed(proc: asyncio.subprocess.Process, text: str | None) -> None:
    if text is None or proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(text.encode("utf-8"))
        await proc.stdin.drain()
    proc.stdin.close()


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@tool(
    timeout_s=MAX_SHELL_TIMEOUT_S + 10,
    high_impact=True,
    sandbox=(
        "Off unless the shell_commands setting allows programs; runs only those, as an argument "
        "list without a shell, in the workspace with a minimal environment, killed at its time "
        "limit, output capped; needs a person's approval by default."
    ),
)
async def shell(
    command: list[str], ctx: ToolContext, timeout_s: float = 30.0, stdin: str | None = None
) -> dict[str, Any]:
    """Run an allowed program in the workspace and return its exit code and output.

    The command is a list: the program, then each argument as its own item. No shell runs it,
    so quotes, ";", "|", "$(...)", "*" and ">" are passed to the program as plain text.

    Args:
        command: Program and arguments, e.g. ["git", "status", "--short"].
        timeout_s: Seconds before the program (and everything it started) is killed (at most 300).
        stdin: Text given to the program on its standard input.
    """
    program = _executable(command, tuple(ctx.shell_commands))
    limit_s = min(max(timeout_s, 0.1), MAX_SHELL_TIMEOUT_S)
    remaining = ctx.remaining_s()
    if remaining is not None:
        limit_s = min(limit_s, max(remaining, 0.1))
    workspace = await asyncio.to_thread(_prepare, ctx.workspace)
    proc = await asyncio.create_subprocess_exec(
        program,
        *command[1:],
        cwd=workspace,
        env=_environment(workspace),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capture(MAX_OUTPUT_BYTES), _Capture(MAX_OUTPUT_BYTES)
    timed_out = False
    try:
        try:
            await asyncio.wait_for(
                asyncio.gather(
                    _feed(proc, stdin), out.read(proc.stdout), err.read(proc.stderr), proc.wait()
                ),
                limit_s,
            )
        except TimeoutError:
            timed_out = True
    finally:
        # Also on success: whatever the program left running in its group goes with it.
        _kill_group(proc)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # A program that left the group may still hold the pipes: do not wait on it long.
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await asyncio.wait_for(proc.wait(), _REAP_S)
    result: dict[str, Any] = {
        "exit_code": proc.returncode,
        "stdout": out.text(),
        "stderr": err.text(),
        "truncated": out.more or err.more,
    }
    if timed_out:
        result["timed_out"] = True
        result["stderr"] += f"\n[killed after {limit_s:g} s, the time limit]"
    return result
