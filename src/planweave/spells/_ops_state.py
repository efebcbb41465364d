"""A spell's own key/value state: ``state.get``, ``state.set``, ``state.delete`` and
``state.keys``, kept across runs in the engine's data folder (one JSON file per spell, written
whole and atomically, under ``<data_dir>/spell-state/``), or in memory where the engine has no
folder for it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from planweave.spells._errors import SpellError
from planweave.spells._host import SpellHost, host_op

__all__ = ["MAX_STATE_BYTES", "SpellState"]

MAX_STATE_BYTES = 1_000_000
"""Most bytes of one spell's state, as JSON."""

_MEMORY: dict[str, dict[str, Any]] = {}
_LOCK = asyncio.Lock()


class SpellState:
    """The state of the spells an engine runs, one key space per spell name.

    Args:
        folder: Where it is kept (``None``: in this process's memory only).
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, spell: str) -> Path:
        assert self.folder is not None
        return self.folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", spell)[:100] + ".json")

    def read(self, spell: str) -> dict[str, Any]:
        if self.folder is None:
            return dict(_MEMORY.get(spell, {}))
        path = self._path(spell)
        if not path.exists():
            return {}
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}

    def write(self, spell: str, values: dict[str, Any]) -> None:
        text = json.dumps(values, ensure_ascii=False)
        if len(text.encode()) > MAX_STATE_BYTES:
            raise SpellError(
                f"the spell's state would be over {MAX_STATE_BYTES:,} bytes; delete keys first"
            )
        if self.folder is None:
            _MEMORY[spell] = dict(values)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self._path(spell))


def _state(host: SpellHost) -> SpellState:
    state = host.extra.get("state")
    return state if isinstance(state, SpellState) else SpellState(None)


def _key(args: list[Any]) -> str:
    key = args[0] if args else None
    if not isinstance(key, str) or not key:
        raise SpellError("a state key is a non-empty string")
    return key


@host_op("state.get")
async def _get(host: SpellHost, args: list[Any]) -> Any:
    """``state.get(key)`` -> the value (``nil``/``null`` when unset)."""
    return _state(host).read(host.name).get(_key(args))


@host_op("state.set")
async def _set(host: SpellHost, args: list[Any]) -> Any:
    """``state.set(key, value)``: keep ``value`` (JSON-like) under ``key``."""
    key = _key(args)
    state = _state(host)
    async with _LOCK:
        values = state.read(host.name)
        values[key] = args[1] if len(args) > 1 else None
        await asyncio.to_thread(state.write, host.name, values)
    return None


@host_op("state.delete")
async def _delete(host: SpellHost, args: list[Any]) -> Any:
    """``state.delete(key)``: forget ``key``."""
    key = _key(args)
    state = _state(host)
    async with _LOCK:
        values = state.read(host.name)
        values.pop(key, None)
        await asyncio.to_thread(state.write, host.name, values)
    return None


@host_op("state.keys")
async def _keys(host: SpellHost, args: list[Any]) -> Any:
    """``state.keys()`` -> the keys set, sorted."""
    return sorted(_state(host).read(host.name))
