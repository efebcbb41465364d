"""Durations as people write them: ``90s``, ``10m``, ``1h30m``, ``1.5h`` or a plain number of
seconds, for ``--max-time`` and the job option ``max_time_s``."""

from __future__ import annotations

import re

from planweave.errors import UsageError

__all__ = ["parse_duration_s"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``: a number (seconds) or parts such as ``1h30m``, ``90s``, ``10m``.

    Raises:
        UsageError: ``text`` is not a duration above zero; the message names ``what``.
    """
    cleaned = text.strip().lower().replace(" ", "")
    seconds: float | None = None
    try:
        seconds = float(cleaned)
    except ValueError:
        end = 0
        total = 0.0
        for match in _PART.finditer(cleaned):
            if match.start() != end:
                break
            total += float(match.group(1)) * _SECONDS[match.group(2)]
            end = match.end()
        if end == len(cleaned) and end > 0:
            seconds = total
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise UsageError(
            f"{what}: expected a duration above zero such as 90s, 10m, 1h30m or a number of "
            f"seconds, got {text!r}"
        )
    return seconds
