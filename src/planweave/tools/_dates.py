"""Date tools: parse a date in any common spelling, add a duration, measure between two dates.

Time zones are IANA names read with ``zoneinfo``; parsing is python-dateutil's. A date given
without a zone is taken in the zone the call names (UTC by default), so results are always
explicit ISO-8601 with an offset. Differences are computed on absolute time (across daylight
saving changes), additions on the calendar of the zone (one day later is the same wall-clock
time the next day).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from dateutil import parser as date_parser
from dateutil.relativedelta import relativedelta

from planweave.errors import ToolError
from planweave.tools._decorator import tool

__all__ = ["date_add", "date_diff", "date_parse"]

MAX_DATE_CHARS = 200
_SANDBOX = "pure computation with the system's time zone database"


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def _parse(text: str, zone: zoneinfo.ZoneInfo, dayfirst: bool = False) -> dt.datetime:
    if not text.strip() or len(text) > MAX_DATE_CHARS:
        raise ToolError(f"a date must be 1 to {MAX_DATE_CHARS} characters")
    try:
        parsed = date_parser.parse(text, dayfirst=dayfirst)
    except (ValueError, OverflowError) as exc:
        raise ToolError(f"cannot read {text!r} as a date: {exc}") from None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def _describe(moment: dt.datetime) -> dict[str, Any]:
    return {
        "iso": moment.isoformat(),
        "date": moment.date().isoformat(),
        "weekday": moment.strftime("%A"),
        "timezone": str(moment.tzinfo),
        "unix": moment.timestamp(),
    }


@tool(sandbox=_SANDBOX)
def date_parse(
    text: str, timezone: str = "UTC", to_timezone: str | None = None, dayfirst: bool = False
) -> dict[str, Any]:
    """Read a date or date-time written in almost any common form ("2026-03-01 14:00",
    "March 1, 2026 2pm", "Sun, 01 Mar 2026 14:00:00 +0100") and return it as ISO-8601.

    Args:
        text: The date as written.
        timezone: IANA zone the date is in when it does not say (e.g. "Europe/Paris").
        to_timezone: IANA zone to express the result in (the date's own zone by default).
        dayfirst: Read "01/03/2026" as 1 March rather than January 3.
    """
    moment = _parse(text, _zone(timezone), dayfirst)
    if to_timezone is not None:
        moment = moment.astimezone(_zone(to_timezone))
    return _describe(moment)


@tool(sandbox=_SANDBOX)
def date_add(
    date: str,
    years: int = 0,
    months: int = 0,
    weeks: int = 0,
    days: int = 0,
    hours: int = 0,
    minutes: int = 0,
    seconds: int = 0,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """Add (or, with negative numbers, subtract) a duration to a date, on the calendar:
    one month after 31 January is the last day of February.

    Args:
        date: The starting date or date-time, e.g. "2026-01-31" or "2026-03-28T09:00+01:00".
        years: Years to add.
        months: Months to add.
        weeks: Weeks to add.
        days: Days to add.
        hours: Hours to add.
        minutes: Minutes to add.
        seconds: Seconds to add.
        timezone: IANA zone of the date when it does not say.
    """
    start = _parse(date, _zone(timezone))
    delta = relativedelta(
        years=years,
        months=months,
        weeks=weeks,
        days=days,
        hours=hours,
        minutes=minutes,
        seconds=seconds,
    )
    try:
        moment = start + delta
    except (OverflowError, ValueError) as exc:
        raise ToolError(f"the result is out of range: {exc}") from None
    return _describe(moment)


@tool(sandbox=_SANDBOX)
def date_diff(start: str, end: str, timezone: str = "UTC") -> dict[str, Any]:
    """Measure the time from one date to another: the total in seconds, hours and days, and
    the calendar difference in years, months, days, hours, minutes and seconds (negative
    when end is before start).

    Args:
        start: The first date or date-time.
        end: The second date or date-time.
        timezone: IANA zone of a date that does not say.
    """
    zone = _zone(timezone)
    a = _parse(start, zone).astimezone(dt.UTC)
    b = _parse(end, zone).astimezone(dt.UTC)
    total = (b - a).total_seconds()
    calendar = relativedelta(b, a)
    return {
        "seconds": total,
        "hours": total / 3600,
        "days": total / 86400,
        "calendar": {
            "years": calendar.years,
            "months": calendar.months,
            "days": calendar.days,
            "hours": calendar.hours,
            "minutes": calendar.minutes,
            "seconds": calendar.seconds,
        },
    }
