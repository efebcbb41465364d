"""Printing the bench's tables: with rich where it is installed, else (or with ``--plain``) as
aligned plain text, so that every section of ``python -m bench`` looks the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Grid", "plain_table", "print_tables"]


@dataclass(frozen=True)
class Grid:
    """One table: ``right`` holds the indexes of the columns aligned right (figures), and
    ``grouped`` blanks a first cell that repeats the row above's (in rich only)."""

    title: str
    headers: Sequence[str]
    rows: Sequence[tuple[str, ...]]
    right: frozenset[int] = frozenset()
    grouped: bool = False


def plain_table(headers: Sequence[str], table: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [tuple(headers), *table]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def print_tables(grids: Sequence[Grid], legend: str, *, plain: bool = False) -> None:
    """Print ``grids`` one after the other, then ``legend``."""
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if plain:
        print("\n\n".join(plain_table(grid.headers, grid.rows) for grid in grids))
        print(legend)
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    for grid in grids:
        table = Table(title=grid.title)
        for i, header in enumerate(grid.headers):
            table.add_column(header, justify="right" if i in grid.right else "left")
        previous = None
        for row in grid.rows:
            first = "" if grid.grouped and row[0] == previous else row[0]
            table.add_row(first, *row[1:], end_section=False)
            previous = row[0]
        console.print(table)
    console.print(legend, highlight=False)
