"""One SQL statement as a store runs it: text with ``?`` placeholders and their names in order.

Kept free of SQLAlchemy: the statements are rendered from the Core tables ahead of time (see
``_sqlgen``), so opening a store and reading from it imports no SQL toolkit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Sql"]


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement as SQLite text, with the names of its ``?`` parameters in order."""

    text: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, **values: Any) -> tuple[Any, ...]:
        """The parameter tuple: ``values`` by name, compiled-in constants for the rest."""
        return tuple(values[n] if n in values else self.defaults[n] for n in self.names)
