"""Worker processes a benchmark starts: stopped with SIGTERM, killed if they do not go."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

__all__ = ["stop_all"]


def stop_all(procs: Sequence[subprocess.Popen[bytes]], *, timeout_s: float) -> None:
    """SIGTERM every process, then wait for each; one still running after ``timeout_s`` is
    killed and reaped, so none is left running or unreaped."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
