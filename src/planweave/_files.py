"""Read the files a person hands planweave (plans, scripted-model scripts, the config) within
limits.

A small file can still cost a great deal to parse: a YAML "billion laughs" of nine anchors, each
aliased nine times by the next, is 580 bytes and expands to gigabytes once anything walks it
(validation, JSON encoding). No documented planweave format needs anchors, aliases or merge keys,
so aliases are refused outright (refusing a count would not help: nine aliases of nine aliases
are few and still explode). Nesting depth and file size are capped as well, and every refusal
names the file (and, for YAML, the line), so the CLI reports it as a usage error (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from planweave.constants import MAX_INPUT_FILE_BYTES, MAX_YAML_DEPTH
from planweave.errors import ConfigError

__all__ = ["load_yaml_file", "read_text_file"]


class _Refused(yaml.MarkedYAMLError):
    """A limit of ours, not a syntax error: reported as such, with its position."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and nesting deeper than ``MAX_YAML_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # check_event leaves the next event in current_event (peek_event is untyped).
        if self.check_event(yaml.AliasEvent):
            raise _Refused(
                problem="aliases (*name) are not allowed: write the value out in full",
                problem_mark=self.current_event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH and self.check_event(yaml.NodeEvent):
                raise _Refused(
                    problem=f"nested deeper than {MAX_YAML_DEPTH} levels",
                    problem_mark=self.current_event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_text_file(file: Path, *, what: str, max_bytes: int = MAX_INPUT_FILE_BYTES) -> str:
    """The UTF-8 text of ``file``, refused when it is over ``max_bytes``.

    Args:
        file: The file.
        what: What the file is, for messages (``"plan file"``).
        max_bytes: Largest file accepted.

    Raises:
        FileNotFoundError: The file does not exist.
        OSError: The file cannot be read.
        ConfigError: The file is too large or is not UTF-8 text.
    """
    with file.open("rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {str(file)!r} is larger than the limit of {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {str(file)!r} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None


def load_yaml_file(file: Path, *, what: str, max_bytes: int = MAX_INPUT_FILE_BYTES) -> Any:
    """Parse a YAML file safely: plain data only, no aliases, bounded size and depth.

    Args:
        file: The file.
        what: What the file is, for messages (``"plan file"``).
        max_bytes: Largest file accepted.

    Raises:
        FileNotFoundError: The file does not exist.
        OSError: The file cannot be read.
        ConfigError: The file breaks a limit (size, aliases, depth) or is not UTF-8; the
            message names the file and, where there is one, the line and column.
        yaml.YAMLError: The file is not valid YAML.
    """
    text = read_text_file(file, what=what, max_bytes=max_bytes)
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        mark = exc.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {str(file)!r}{where}: {exc.problem}") from None
    finally:
        loader.dispose()
