"""Cutting text of unknown size to a budget, kept in one place for prompts and events."""

from __future__ import annotations

__all__ = ["tail", "truncate"]

ELLIPSIS = "…"


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
