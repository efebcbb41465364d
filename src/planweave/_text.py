"""Cutting text of unknown size to a budget, kept in one place for prompts and events.

Text from models and tools is also scrubbed here: JSON may carry half of a surrogate pair
(``"\\ud83d"``), which Python accepts in a ``str`` but no UTF-8 encoder does, so one such
character would make the event that carries it impossible to store or send.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import BaseModel

__all__ = ["ELLIPSIS", "REPLACEMENT", "bound", "scrub", "tail", "truncate"]

ELLIPSIS: Final = "…"
REPLACEMENT: Final = "\ufffd"
"""What a lone surrogate becomes (U+FFFD, the Unicode replacement character)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_WALK_DEPTH: Final = 64
"""How deep ``bound`` looks into a value when it cuts nothing (scrubbing only)."""


def truncate(text: str, max_chars: int) -> str:
    """Keep the start of ``text``, at most ``max_chars`` characters (marked when cut)."""
    if len(text) <= max_chars:
        return text
    if max_chars <= len(ELLIPSIS):
        return text[:max_chars]
    return text[: max_chars - len(ELLIPSIS)] + ELLIPSIS


def tail(text: str, max_chars: int) -> str:
    """Keep the end of ``text``, at most ``max_chars`` characters (marked when cut)."""
    if len(text) <= max_chars:
        return text
    if max_chars <= len(ELLIPSIS):
        return text[-max_chars:] if max_chars > 0 else ""
    return ELLIPSIS + text[-(max_chars - len(ELLIPSIS)) :]


def scrub(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (the same object when clean)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text


def bound(
    value: Any,
    *,
    max_chars: int | None = None,
    max_items: int | None = None,
    max_depth: int | None = None,
) -> Any:
    """A JSON-like value (strings, lists, tuples, dicts, models) made safe to store.

    Every string in it is scrubbed (``scrub``); with limits, each string is cut to
    ``max_chars``, each list or dict to ``max_items`` entries (a marker says how many were left
    out), and anything nested deeper than ``max_depth`` becomes a marker. A value that needs no
    change is returned as it is (the same object), so frozen models keep their identity.
    """
    return _bound(value, max_chars, max_items, _MAX_WALK_DEPTH if max_depth is None else max_depth)


def _bound(value: Any, max_chars: int | None, max_items: int | None, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        text = scrub(value)
        return text if max_chars is None else truncate(text, max_chars)
    if kind in (int, float, bool) or value is None:
        return value
    if depth <= 0:
        if max_chars is None:
            return value  # scrubbing only: leave what lies deeper as it is
        return ELLIPSIS
    below = depth - 1
    if isinstance(value, dict):
        items = list(value.items())
        left_out = 0
        if max_items is not None and len(items) > max_items:
            left_out = len(items) - max_items
            items = items[:max_items]
        changed = left_out > 0
        out: dict[Any, Any] = {}
        for key, item in items:
            new_key = scrub(key) if isinstance(key, str) else key
            new_item = _bound(item, max_chars, max_items, below)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        if left_out:
            out[ELLIPSIS] = f"{left_out} more entries left out"
        return out if changed else value
    if isinstance(value, list | tuple):
        seq = value
        left_out = 0
        if max_items is not None and len(seq) > max_items:
            left_out = len(seq) - max_items
            seq = seq[:max_items]
        new = [_bound(item, max_chars, max_items, below) for item in seq]
        if not left_out and all(a is b for a, b in zip(new, value, strict=False)):
            return value
        if left_out:
            new.append(f"{ELLIPSIS} {left_out} more items left out")
        return tuple(new) if isinstance(value, tuple) else new
    if isinstance(value, BaseModel):
        update = {}
        for name, item in value.__dict__.items():
            new_item = _bound(item, max_chars, max_items, below)
            if new_item is not item:
                update[name] = new_item
        return value.model_copy(update=update) if update else value
    return value
