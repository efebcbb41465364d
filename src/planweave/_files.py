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

from planweave.constants import MAX_INPUT_FILE_BYTES
from planweave.errors import ConfigError

__all__ = ["load_yaml_file", "read_text_file"]


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
    from planweave._yaml import BoundedLoader, Refused  # PyYAML only when a file is read

    text = read_text_file(file, what=what, max_bytes=max_bytes)
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    except Refused as exc:
        mark = exc.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {str(file)!r}{where}: {exc.problem}") from None
    finally:
        loader.dispose()
