"""The YAML loader of ``_files.load_yaml_file``: safe, without aliases, of bounded depth."""

from __future__ import annotations

from typing import Any

import yaml

from planweave.constants import MAX_YAML_DEPTH

__all__ = ["BoundedLoader", "Refused"]


class Refused(yaml.MarkedYAMLError):
    """A limit of ours, not a syntax error: reported as such, with its position."""


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and nesting deeper than ``MAX_YAML_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # check_event leaves the next event in current_event (peek_event is untyped).
        if self.check_event(yaml.AliasEvent):
            raise Refused(
                problem="aliases (*name) are not allowed: write the value out in full",
                problem_mark=self.current_event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH and self.check_event(yaml.NodeEvent):
                raise Refused(
                    problem=f"nested deeper than {MAX_YAML_DEPTH} levels",
                    problem_mark=self.current_event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
