"""How MCP servers are configured: ``[mcp.servers.NAME]`` tables in ``planweave.toml``.

A server is either a command planweave starts and talks to over stdin/stdout (``command``,
``args``, ``env``) or a streamable-HTTP endpoint (``url``, ``headers``). Only the ``env`` a
server is given reaches it: planweave's own environment (its API tokens, its model keys) is
never passed on.
"""

from __future__ import annotations

import re
import shutil
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from planweave.errors import ConfigError

__all__ = [
    "DEFAULT_MCP_CALL_TIMEOUT_S",
    "DEFAULT_MCP_CONNECT_TIMEOUT_S",
    "SERVER_NAME_RE",
    "McpServerConfig",
    "McpSettings",
    "check_commands",
]

DEFAULT_MCP_CALL_TIMEOUT_S = 60.0
DEFAULT_MCP_CONNECT_TIMEOUT_S = 20.0
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,30}$")
"""Server names: letters, digits and ``-`` (``__`` separates a server from its tool)."""


class McpServerConfig(BaseModel):
    """One MCP server whose tools jobs may call once it is approved.

    Attributes:
        command: The program to start (stdio transport); found on ``PATH`` or given as a path.
        args: Its arguments.
        env: The only environment variables the server gets, besides ``HOME``, ``PATH``,
            ``SHELL``, ``TERM``, ``USER`` and ``LOGNAME`` (planweave's own are never passed).
        cwd: The folder the server starts in (the current folder when ``None``).
        url: A streamable-HTTP endpoint (``http://host:port/mcp``) instead of a command.
        headers: HTTP headers sent to ``url`` (an API key the server expects, say).
        high_impact: Tools (their MCP names) whose calls need a person's approval, or ``"*"``
            for all of them; tools the server marks ``destructiveHint`` need it too.
        timeout_s: Longest one tool call may take.
        connect_timeout_s: Longest starting and greeting the server may take.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    high_impact: Literal["*"] | tuple[str, ...] = ()
    timeout_s: float = Field(default=DEFAULT_MCP_CALL_TIMEOUT_S, gt=0, allow_inf_nan=False)
    connect_timeout_s: float = Field(
        default=DEFAULT_MCP_CONNECT_TIMEOUT_S, gt=0, allow_inf_nan=False
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("url must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (an HTTP server)")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd are for command servers, not url servers")
        if self.command is not None and self.headers:
            raise ValueError("headers are for url servers, not command servers")
        if self.command is not None and not self.command.strip():
            raise ValueError("command must not be empty")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``stdio`` for a command, ``http`` for a URL."""
        return "stdio" if self.command is not None else "http"

    def is_high_impact(self, tool: str, *, destructive: bool) -> bool:
        """Whether calls of the server's tool ``tool`` need a person's approval."""
        return destructive or self.high_impact == "*" or tool in self.high_impact


class McpSettings(BaseModel):
    """The ``[mcp]`` table: the MCP servers, by name.

    Attributes:
        servers: ``[mcp.servers.NAME]`` tables; a name is 1 to 30 letters, digits or ``-``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: dict[str, McpServerConfig] = Field(default_factory=dict)

    @field_validator("servers")
    @classmethod
    def _names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name in value:
            if not SERVER_NAME_RE.match(name):
                raise ValueError(
                    f"bad MCP server name {name!r}: use 1 to 30 letters, digits or '-'"
                )
        return value


def check_commands(settings: McpSettings) -> None:
    """Refuse servers whose command cannot be found, before anything runs.

    Raises:
        ConfigError: naming the server and the command.
    """
    for name, server in settings.servers.items():
        if server.command is not None and shutil.which(server.command) is None:
            raise ConfigError(
                f"MCP server {name!r}: command {server.command!r} not found "
                f"(give a path, or install it on PATH)"
            )
