"""Structured logging: one JSON object per line for each model call, tool call, task attempt,
workflow step, job start and job end.

Lines go to a logger (``planweave.hooks.log`` by default, at INFO: the process's log setup
decides where they land) or, with ``path``, are appended to a file (flushed when a job starts or
ends, and at most a second after any line; :meth:`JsonLogHook.close` flushes the rest). Prompts, replies and tool
results are left out (the event log keeps them); what is logged is who, what, how long, how
many tokens, what it cost and how it ended.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from planweave.hooks._contexts import (
    AfterModelCall,
    AfterStep,
    AfterTask,
    AfterToolCall,
    JobEnd,
    JobStart,
)
from planweave.hooks._hook import Hook

__all__ = ["JsonLogHook"]

ERROR_CHARS = 500
FLUSH_EVERY_S = 1.0
_NEWLINE = orjson.OPT_APPEND_NEWLINE


def _encode(record: dict[str, Any]) -> bytes:
    """The record as one JSON line (orjson: a line costs well under a microsecond)."""
    return orjson.dumps(record, default=str, option=_NEWLINE)


class JsonLogHook(Hook):
    """Writes one JSON line per model call, tool call, task attempt, step, job start and end.

    Args:
        path: A file to append the lines to (default: the logger).
        logger: The logger's name, when there is no ``path``.
        level: The level of the lines on the logger.
    """

    name = "logging"
    priority = 900  # after the hooks that rewrite or redact: lines show what really ran

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        logger: str = "planweave.hooks.log",
        level: int = logging.INFO,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.logger = logging.getLogger(logger)
        self.level = level
        self._lock = threading.Lock()
        self._out: BinaryIO | None = None
        self._flushed_at = 0.0

    def _write(self, record: dict[str, Any], *, flush: bool = False) -> None:
        if self.path is None and not self.logger.isEnabledFor(self.level):
            return
        record["at"] = time.time()
        line = _encode(record)
        if self.path is None:
            self.logger.log(self.level, line[:-1].decode())
            return
        with self._lock:
            out = self._out
            if out is None:
                out = self._out = self.path.open("ab")
            out.write(line)
            now = time.monotonic()
            # At a job's start and end, and at most once a second in between: one write call
            # per line would cost more than the line.
            if flush or now - self._flushed_at >= FLUSH_EVERY_S:
                out.flush()
                self._flushed_at = now

    def close(self) -> None:
        """Flush and close the file (a later line opens it again)."""
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None

    async def after_model_call(self, ctx: AfterModelCall) -> None:
        response = ctx.response
        record: dict[str, Any] = {
            "event": "model_call",
            "job_id": ctx.job_id,
            "task_id": ctx.task_id,
            "agent": ctx.agent,
            "model": ctx.model,
            "latency_ms": round(ctx.latency_ms, 3),
            "outcome": "ok" if response is not None else "error",
        }
        if response is not None:
            record["tokens_in"] = response.tokens_in
            record["tokens_out"] = response.tokens_out
            record["cost_usd"] = response.cost_usd
        else:
            record["error"] = (ctx.error or "")[:ERROR_CHARS]
        self._write(record)

    async def after_tool_call(self, ctx: AfterToolCall) -> None:
        result = ctx.result
        record: dict[str, Any] = {
            "event": "tool_call",
            "job_id": ctx.job_id,
            "task_id": ctx.task_id,
            "agent": ctx.agent,
            "tool": ctx.name,
            "latency_ms": round(result.latency_ms, 3),
            "outcome": "ok" if result.ok else "error",
        }
        if not result.ok:
            record["error"] = (result.error or "")[:ERROR_CHARS]
        self._write(record)

    async def after_task(self, ctx: AfterTask) -> None:
        outcome = ctx.outcome
        record: dict[str, Any] = {
            "event": "task",
            "job_id": ctx.job_id,
            "task_id": ctx.task_id,
            "attempt": ctx.item.attempt,
            "worker": ctx.item.worker,
            "status": outcome.status,
        }
        if outcome.status == "failed":
            record["error"] = (outcome.error or "")[:ERROR_CHARS]
            record["error_type"] = outcome.error_type
        self._write(record)

    async def after_step(self, ctx: AfterStep) -> None:
        self._write(
            {
                "event": "step",
                "job_id": ctx.job_id,
                "task_id": ctx.task_id,
                "workflow": ctx.workflow,
                "step": ctx.step,
            }
        )

    async def job_start(self, ctx: JobStart) -> None:
        self._write(
            {"event": "job_start", "job_id": ctx.job_id, "resumed": ctx.resumed}, flush=True
        )

    async def job_end(self, ctx: JobEnd) -> None:
        record: dict[str, Any] = {"event": "job_end", "job_id": ctx.job_id, "status": ctx.status}
        if ctx.error:
            record["error"] = ctx.error[:ERROR_CHARS]
        self._write(record, flush=True)
