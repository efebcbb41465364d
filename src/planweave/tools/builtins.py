"""The tools every planweave agent can be given: arithmetic, workspace files, archives, web,
search, text, data, units, dates, a Python expression sandbox and (when allowed) a shell.

They are ordinary ``@tool`` functions, so they show how to write tools as much as they serve.
Everything that touches the outside world goes through a policy module (``_paths`` for files,
``_net`` and ``_fetch`` for the network) configured by the call's :class:`ToolContext`. The web,
text and data families live in their own modules (``_web``, ``_search``, ``_text_tools``,
``_data``, ``_units``, ``_dates``).
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from typing import Any

from planweave.errors import ToolError
from planweave.tools._archives import archive_create, archive_extract, archive_list
from planweave.tools._calculator import evaluate
from planweave.tools._context import ToolContext
from planweave.tools._data import csv_query, json_query, parse_data
from planweave.tools._dates import date_add, date_diff, date_parse
from planweave.tools._decorator import FunctionTool, tool
from planweave.tools._files import (
    append_file,
    copy_file,
    delete_file,
    file_info,
    glob_files,
    make_dir,
    move_file,
    replace_in_file,
    search_files,
)
from planweave.tools._paths import (
    list_workspace_dir,
    read_workspace_file,
    resolve_in_workspace,
    write_workspace_file,
)
from planweave.tools._pyexpr import python_eval
from planweave.tools._search import web_search
from planweave.tools._shell import shell
from planweave.tools._text_tools import (
    regex_extract,
    summarize,
    text_chunk,
    text_diff,
    text_stats,
)
from planweave.tools._units import unit_convert
from planweave.tools._web import http_download, http_fetch, http_request

__all__ = [
    "WEB_TEXT_DATA_TOOLS",
    "append_file",
    "archive_create",
    "archive_extract",
    "archive_list",
    "builtin_tools",
    "calculator",
    "copy_file",
    "csv_query",
    "current_time",
    "date_add",
    "date_diff",
    "date_parse",
    "delete_file",
    "file_info",
    "glob_files",
    "http_download",
    "http_fetch",
    "http_request",
    "json_query",
    "list_files",
    "make_dir",
    "move_file",
    "parse_data",
    "python_eval",
    "read_file",
    "regex_extract",
    "replace_in_file",
    "search_files",
    "shell",
    "summarize",
    "text_chunk",
    "text_diff",
    "text_stats",
    "unit_convert",
    "web_search",
    "write_file",
]


@tool(timeout_s=5.0, isolated=True)
def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression and return the number.

    Supports numbers, + - * / // % **, parentheses, the functions abs, round, min, max, sqrt,
    floor, ceil, exp, log, log10, log2, sin, cos, tan and the constants pi, e and tau.

    Args:
        expression: The expression, e.g. "(2 + 3) * sqrt(16)".
    """
    return evaluate(expression)


@tool
def read_file(path: str, ctx: ToolContext) -> str:
    """Read a text file from the job's workspace.

    Args:
        path: Path relative to the workspace, e.g. "notes/summary.md".
    """
    data = read_workspace_file(ctx.workspace, path, max_bytes=ctx.max_file_bytes)
    return data.decode("utf-8", errors="replace")


@tool
def write_file(path: str, content: str, ctx: ToolContext) -> str:
    """Write a text file in the job's workspace, replacing it if it exists.

    Args:
        path: Path relative to the workspace; missing directories are created.
        content: The full text to write (UTF-8).
    """
    data = content.encode("utf-8")
    write_workspace_file(
        ctx.workspace, path, data, max_bytes=ctx.max_file_bytes, max_depth=ctx.max_dir_depth
    )
    return f"wrote {len(data)} bytes to {os.path.normpath(path)}"


@tool
def list_files(ctx: ToolContext, path: str = ".") -> list[str]:
    """List a directory of the job's workspace (directories end with "/").

    Args:
        path: Directory relative to the workspace; the workspace itself by default.
    """
    resolve_in_workspace(ctx.workspace, path, must_exist=True)
    return list_workspace_dir(ctx.workspace, path)


@tool
def current_time(timezone: str = "UTC") -> str:
    """Return the current date and time as an ISO-8601 string.

    Args:
        timezone: IANA time zone name, e.g. "Europe/Paris".
    """
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError(
            f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/Paris'"
        ) from None
    return dt.datetime.now(zone).isoformat(timespec="seconds")


WEB_TEXT_DATA_TOOLS: tuple[FunctionTool[..., Any], ...] = (
    http_fetch,
    http_request,
    http_download,
    web_search,
    regex_extract,
    text_diff,
    text_stats,
    text_chunk,
    summarize,
    json_query,
    csv_query,
    parse_data,
    unit_convert,
    date_parse,
    date_add,
    date_diff,
)
"""The built-in tools that reach the web or work on text, data, units and dates."""


def builtin_tools() -> list[FunctionTool[..., Any]]:
    """The built-in tools, ready to register.

    ``shell`` is among them but refuses every call unless the ``shell_commands`` setting
    allows some programs; an ``Engine`` without ``shell_commands`` leaves it out.
    """
    return [
        calculator,
        read_file,
        write_file,
        list_files,
        current_time,
        # web, text, data, units and dates
        *WEB_TEXT_DATA_TOOLS,
        # Files, archives and system
        append_file,
        archive_create,
        archive_extract,
        archive_list,
        copy_file,
        delete_file,
        file_info,
        glob_files,
        make_dir,
        move_file,
        python_eval,
        replace_in_file,
        search_files,
        shell,
    ]
