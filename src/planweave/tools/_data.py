"""Data tools: query JSON with JMESPath, filter and aggregate a CSV file, parse YAML/TOML/JSON.

Every input is capped in size and every parsed value in depth and node count before it is
returned. YAML is read with the safe loader only (no Python objects), and its aliases are
counted as the value is expanded, so a "billion laughs" document, a few hundred bytes that
expand to billions of nodes, is refused instead of filling memory.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
import operator
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import jmespath
import jmespath.exceptions
import yaml
from pydantic import BaseModel, ConfigDict

from planweave.constants import MAX_JSON_DEPTH
from planweave.errors import PolicyViolation, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import tool
from planweave.tools._paths import read_workspace_file

__all__ = ["CsvCondition", "csv_query", "json_query", "parse_data", "plain_value"]

MAX_DATA_CHARS = 1_000_000
MAX_NODES = 100_000
MAX_EXPRESSION_CHARS = 2_000
MAX_RESULT_CHARS = 500_000
MAX_CSV_ROWS = 200_000
MAX_ROWS_RETURNED = 1_000
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_AGGREGATE = re.compile(r"^\s*(count|sum|avg|min|max)\s*\(\s*(\*|[^()]+?)\s*\)\s*$", re.I)


def plain_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """``value`` as plain JSON (dates as ISO strings, keys as strings, sets as lists, bytes
    as base64), refused when deeper than ``max_depth`` or larger than ``max_nodes`` nodes."""
    count = 0

    def walk(node: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > max_nodes:
            raise PolicyViolation(f"the data has more than {max_nodes} values, over the limit")
        if depth > max_depth:
            raise PolicyViolation(f"the data is nested deeper than {max_depth} levels")
        if node is None or isinstance(node, bool | int | str):
            return node
        if isinstance(node, float):
            return node if math.isfinite(node) else str(node)
        if isinstance(node, dt.date | dt.time):
            return node.isoformat()
        if isinstance(node, bytes):
            return base64.b64encode(node).decode("ascii")
        if isinstance(node, dict):
            return {str(k): walk(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list | tuple | set | frozenset):
            return [walk(v, depth + 1) for v in node]
        return str(node)

    return walk(value, 0)


def _yaml_size(node: yaml.Node) -> None:
    """Refuse a YAML document whose aliases expand past the node or depth limit."""
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise PolicyViolation(
                f"the YAML expands to more than {MAX_NODES} values (aliases repeated over and "
                "over, as in a 'billion laughs' bomb): refused"
            )
        if depth > MAX_JSON_DEPTH:
            raise PolicyViolation(f"the YAML is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(current, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _parse_yaml(text: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _yaml_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ToolError(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _parse(text: str, fmt: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except RecursionError:
            raise PolicyViolation(
                f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels"
            ) from None
        except ValueError as exc:
            raise ToolError(f"not valid JSON: {exc}") from None
    if fmt == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ToolError(f"not valid TOML: {exc}") from None
        except RecursionError:
            raise PolicyViolation("the TOML is nested too deeply") from None
    return _parse_yaml(text)


def _auto(text: str) -> tuple[str, Any]:
    if text.lstrip()[:1] in ("{", "["):
        try:
            return "json", _parse(text, "json")
        except ToolError as exc:
            if isinstance(exc, PolicyViolation):
                raise
    try:
        return "toml", tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return "yaml", _parse_yaml(text)


@tool(
    sandbox=f"pure parsing of the given text (at most {MAX_DATA_CHARS} characters): YAML with "
    f"the safe loader, alias bombs refused, at most {MAX_NODES} values and {MAX_JSON_DEPTH} "
    "levels"
)
def parse_data(text: str, format: Literal["auto", "json", "yaml", "toml"] = "auto") -> Any:
    """Parse a YAML, TOML or JSON document and return its value as JSON.

    Dates become ISO-8601 strings. With "auto" the format is guessed (JSON, then TOML, then
    YAML).

    Args:
        text: The document.
        format: "json", "yaml", "toml" or "auto".
    """
    if len(text) > MAX_DATA_CHARS:
        raise PolicyViolation(
            f"the text is {len(text)} characters, over the {MAX_DATA_CHARS} limit"
        )
    value = _auto(text)[1] if format == "auto" else _parse(text, format)
    return plain_value(value)


@tool(
    sandbox="pure computation; data given inline or read from a workspace file (confined to the "
    f"workspace, at most the job's file size), results of at most {MAX_RESULT_CHARS} characters"
)
def json_query(
    expression: str,
    ctx: ToolContext,
    data: Any = None,
    text: str | None = None,
    path: str | None = None,
) -> Any:
    """Query JSON data with a JMESPath expression, e.g. "items[?price > `10`].name | sort(@)".

    Give the data one way: as a JSON value (data), as JSON text (text) or as a JSON file in
    the workspace (path).

    Args:
        expression: The JMESPath expression.
        data: The JSON value to query.
        text: JSON text to parse and query.
        path: Workspace path of a JSON file to query.
    """
    given = [name for name, v in (("data", data), ("text", text), ("path", path)) if v is not None]
    if len(given) != 1:
        raise ToolError("give the data exactly one way: data, text or path")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if path is not None:
        raw = read_workspace_file(ctx.workspace, path, max_bytes=ctx.max_file_bytes)
        text = raw.decode("utf-8", errors="replace")
    if text is not None:
        data = _parse(text, "json")
    plain_value(data)
    try:
        result = jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as exc:
        raise ToolError(f"invalid JMESPath expression: {exc}") from None
    if len(json.dumps(result, default=str)) > MAX_RESULT_CHARS:
        raise ToolError(f"the result is over {MAX_RESULT_CHARS} characters: narrow the expression")
    return result


class CsvCondition(BaseModel):
    """One filter on a CSV column: ``{"column": "price", "op": ">", "value": 10}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    op: Literal["==", "!=", "<", "<=", ">", ">=", "contains", "startswith", "endswith"]
    value: str | float | int | bool


def _number(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    try:
        value = float(str(text).replace(",", "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _matches(row: dict[str, str], cond: CsvCondition) -> bool:
    cell = row.get(cond.column, "")
    if cond.op in ("contains", "startswith", "endswith"):
        needle = str(cond.value).lower()
        low = cell.lower()
        return needle in low if cond.op == "contains" else bool(getattr(low, cond.op)(needle))
    left, right = _number(cell), _number(cond.value)
    if left is not None and right is not None:
        return bool(_COMPARE[cond.op](left, right))
    return bool(_COMPARE[cond.op](cell, str(cond.value)))


def _rows(data: bytes, delimiter: str | None) -> tuple[list[str], Iterator[dict[str, str]]]:
    text = data.decode("utf-8-sig", errors="replace")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:10_000], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, restval="")
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    return columns, (row for row in reader)


def _aggregate(fn: str, column: str, rows: list[dict[str, str]]) -> float | int | str | None:
    if fn == "count":
        return len(rows) if column == "*" else sum(1 for r in rows if r.get(column, "") != "")
    values = [v for v in (_number(r.get(column, "")) for r in rows) if v is not None]
    if not values:
        return None
    if fn == "sum":
        return sum(values)
    if fn == "avg":
        return sum(values) / len(values)
    return min(values) if fn == "min" else max(values)


@tool(
    sandbox="reads one CSV file inside the workspace (no '..', absolute paths or symlinks out; at "
    f"most the job's file size and {MAX_CSV_ROWS} rows); returns at most {MAX_ROWS_RETURNED} rows"
)
def csv_query(
    path: str,
    ctx: ToolContext,
    where: list[CsvCondition] | None = None,
    select: list[str] | None = None,
    group_by: list[str] | None = None,
    aggregates: list[str] | None = None,
    order_by: str | None = None,
    descending: bool = False,
    limit: int = 100,
    delimiter: str | None = None,
) -> dict[str, Any]:
    """Read a CSV file from the workspace, filter its rows, pick columns, group and aggregate.

    Numbers compare as numbers. With group_by or aggregates, each output row is one group with
    its aggregates, e.g. aggregates ["count(*)", "sum(amount)", "avg(price)"] (count, sum,
    avg, min, max).

    Args:
        path: Workspace path of the CSV file (the first row names the columns).
        where: Conditions every row must meet, e.g. [{"column": "country", "op": "==",
            "value": "FR"}].
        select: Columns to return (all by default; ignored when grouping).
        group_by: Columns to group by.
        aggregates: Aggregates per group (or over all rows without group_by).
        order_by: Output column to sort by.
        descending: Sort from largest to smallest.
        limit: Most rows to return (at most 1000).
        delimiter: Column separator; guessed from the file by default.
    """
    if not 1 <= limit <= MAX_ROWS_RETURNED:
        raise ToolError(f"limit must be from 1 to {MAX_ROWS_RETURNED}")
    if delimiter is not None and len(delimiter) != 1:
        raise ToolError("delimiter must be one character")
    columns, rows = _rows(
        read_workspace_file(ctx.workspace, path, max_bytes=ctx.max_file_bytes), delimiter
    )
    wanted = [*(c.column for c in where or ()), *(select or ()), *(group_by or ())]
    unknown = sorted({c for c in wanted if c not in columns})
    if unknown:
        raise ToolError(f"unknown column {', '.join(unknown)}; the columns are {columns}")
    kept: list[dict[str, str]] = []
    for n, row in enumerate(rows):
        if n >= MAX_CSV_ROWS:
            raise PolicyViolation(f"{path!r} has more than {MAX_CSV_ROWS} rows, over the limit")
        if all(_matches(row, cond) for cond in where or ()):
            kept.append(row)
    out: list[dict[str, Any]]
    if group_by or aggregates:
        specs: list[tuple[str, str, str]] = []
        for text in aggregates or ["count(*)"]:
            match = _AGGREGATE.match(text)
            if match is None or (match[2] != "*" and match[2] not in columns):
                raise ToolError(
                    f"bad aggregate {text!r}: use count(*), count(col), sum(col), avg(col), "
                    f"min(col) or max(col) with a column of {columns}"
                )
            specs.append((text.strip(), match[1].lower(), match[2]))
        groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
        for row in kept:
            groups.setdefault(tuple(row.get(c, "") for c in group_by or ()), []).append(row)
        out = [
            {
                **dict(zip(group_by or (), key, strict=True)),
                **{name: _aggregate(fn, col, members) for name, fn, col in specs},
            }
            for key, members in groups.items()
        ]
    else:
        out = [{c: row.get(c, "") for c in select or columns} for row in kept]
    if order_by is not None:
        if out and order_by not in out[0]:
            raise ToolError(f"cannot order by {order_by!r}: it is not an output column")

        def key(row: dict[str, Any]) -> tuple[int, float, str]:
            value = row.get(order_by)
            number = _number(value) if value is not None else None
            return (0, number, "") if number is not None else (1, 0.0, str(value))

        out.sort(key=key, reverse=descending)
    return {
        "columns": list(out[0]) if out else (select or columns),
        "rows": out[:limit],
        "matched": len(out),
        "truncated": len(out) > limit,
    }
