"""Approvals of MCP servers: each approved tool's definition, pinned by its hash.

``planweave mcp approve NAME`` lists the server's tools and writes them to
``data_dir/mcp-approvals.json``. Jobs are offered only the pinned tools, with the pinned
definitions; when the server later describes a tool differently (a new schema, a new
description, new annotations), that tool is disabled until it is approved again, so a server
cannot change what an agent was approved to call behind a person's back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from planweave.errors import ConfigError
from planweave.mcp._config import McpServerConfig

__all__ = [
    "APPROVALS_FILE",
    "PinnedServer",
    "PinnedTool",
    "definition_hash",
    "read_pins",
    "server_target",
    "write_pin",
]

APPROVALS_FILE = "mcp-approvals.json"


class PinnedTool(BaseModel):
    """One approved tool: its definition as the server gave it, and that definition's hash."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    definition: dict[str, Any]


class PinnedServer(BaseModel):
    """An approved server: what it was (``target``), when and its tools by MCP name."""

    model_config = ConfigDict(frozen=True)

    target: str
    approved_at: str
    tools: dict[str, PinnedTool]


def definition_hash(definition: dict[str, Any]) -> str:
    """``sha256:`` and the hash of a tool definition's name, description, schemas and
    annotations, in canonical JSON."""
    keys = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
    picked = {key: definition[key] for key in keys if definition.get(key) is not None}
    text = json.dumps(picked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def server_target(server: McpServerConfig) -> str:
    """What the server is, for its approval: its command line or its URL."""
    if server.url is not None:
        return server.url
    return json.dumps([server.command, *server.args, server.cwd])


def read_pins(data_dir: Path) -> dict[str, PinnedServer]:
    """The approved servers by name (none when the file does not exist).

    Raises:
        ConfigError: the file is not an approvals file.
    """
    path = data_dir / APPROVALS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from None
    try:
        data = json.loads(text)
        servers = data["servers"] if isinstance(data, dict) else None
        if not isinstance(servers, dict):
            raise ValueError("no 'servers' table")
        return {name: PinnedServer.model_validate(pin) for name, pin in servers.items()}
    except (ValueError, KeyError, ValidationError) as exc:
        raise ConfigError(
            f"{str(path)!r} is not an MCP approvals file ({type(exc).__name__}); "
            f"delete it and approve the servers again"
        ) from None


def write_pin(
    data_dir: Path, name: str, server: McpServerConfig, definitions: list[dict[str, Any]]
) -> PinnedServer:
    """Approve ``name`` with ``definitions`` (replacing an earlier approval) and return it."""
    pins = read_pins(data_dir)
    pin = PinnedServer(
        target=server_target(server),
        approved_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tools={d["name"]: PinnedTool(sha256=definition_hash(d), definition=d) for d in definitions},
    )
    pins[name] = pin
    data_dir.mkdir(parents=True, exist_ok=True)
    body = {"servers": {key: value.model_dump(mode="json") for key, value in pins.items()}}
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".mcp-approvals-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2, sort_keys=True)
        os.replace(tmp, data_dir / APPROVALS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return pin
