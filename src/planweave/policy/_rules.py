"""The rules a policy is written in: plain data, checked once when they are loaded.

A policy comes from ``[policy]`` in ``planweave.toml``, from Python (``Engine(policy=Policy(
...))``) or from a job's options (``JobOptions.policy``), which travel to workers in other
processes; so every rule but a Python output predicate is JSON. A mistake (an unknown key, a
regular expression that does not compile, a glob with an unclosed ``[``, a range whose minimum
is above its maximum) is refused here, naming the key, before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = ["AgentRules", "ArgRule", "OutputRule", "Policy", "ToolRules"]

_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$|^\*$|^\[?[0-9a-f:.]+\]?$")
_NAME_GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


def _check_glob(glob: str, *, path: bool) -> str:
    if not glob:
        raise ValueError("a glob may not be empty")
    depth = 0
    for char in glob:
        if char == "[":
            if depth:
                raise ValueError(f"bad glob {glob!r}: '[' inside a [...] class")
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad glob {glob!r}: unclosed '['")
    if path:
        if glob.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", glob):
            raise ValueError(f"bad path glob {glob!r}: write it relative to the workspace")
        if ".." in glob.replace("\\", "/").split("/"):
            raise ValueError(f"bad path glob {glob!r}: '..' is not allowed")
    elif not _NAME_GLOB_RE.match(glob):
        raise ValueError(f"bad tool name glob {glob!r}: use letters, digits, _ - . and * ? [ ]")
    return glob


def _check_host(pattern: str) -> str:
    host = pattern.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not _HOST_RE.match(host):
        raise ValueError(
            f"bad host {pattern!r}: write a host name (example.org), a subdomain wildcard "
            "(*.example.org) or an IP address"
        )
    return host.rstrip(".")


MAX_PATTERN_CHARS = 1000


def _check_regex(pattern: str) -> str:
    import regex

    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"regular expression longer than {MAX_PATTERN_CHARS} characters")
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return pattern


class _Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArgRule(_Rules):
    """Constraints on one argument of a tool; a call whose argument breaks one is denied.

    Attributes:
        paths: Globs the argument, a path relative to the workspace, must match (``docs/**``,
            ``*.md``); ``**`` spans folders, ``*`` stays within one.
        hosts: Hosts the argument, a URL, may name (``example.org``, ``*.example.org`` for
            its subdomains).
        min: Smallest number allowed.
        max: Largest number allowed.
        pattern: A regular expression the whole argument (a string) must match.
        enum: The values allowed.
    """

    paths: tuple[str, ...] | None = None
    hosts: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    enum: tuple[str | int | float | bool, ...] | None = None

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(_check_glob(g, path=True) for g in value)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(_check_host(h) for h in value)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @model_validator(mode="after")
    def _range(self) -> ArgRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self


class ToolRules(_Rules):
    """Rules for the calls of one tool (or of every tool whose name matches the key's glob).

    Attributes:
        args: Constraints by argument name.
    """

    args: dict[str, ArgRule] = Field(default_factory=dict)


def _globs(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(_check_glob(g, path=False) for g in value)


class AgentRules(_Rules):
    """Which tools one agent may call (and is offered).

    Attributes:
        allow: Tool names or globs it may call (``None``: any the policy allows).
        deny: Tool names or globs it may not call; deny wins over allow.
    """

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _globs(value)

    @field_validator("deny")
    @classmethod
    def _deny(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _globs(value) or ()


class OutputRule(_Rules):
    """A content rule on task results: a result that breaks it fails its task.

    Give a ``pattern`` (a result, as text, that contains a match is refused) or, in Python
    only, a ``predicate`` (a function of the result text that returns ``True`` when the result
    is acceptable).

    Attributes:
        name: Names the rule in the task's error and the ``PolicyDenied`` event.
        pattern: A regular expression no result may contain.
        predicate: A Python function ``(text) -> bool``; ``False`` refuses the result.
        reason: Words added to the error (default: what the rule checks).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: Annotated[str, Field(min_length=1, max_length=100)]
    pattern: str | None = None
    predicate: SkipJsonSchema[Annotated[Callable[[str], bool] | None, Field(exclude=True)]] = None
    reason: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @model_validator(mode="after")
    def _one_check(self) -> OutputRule:
        if (self.pattern is None) == (self.predicate is None):
            raise ValueError(f"output rule {self.name!r}: give exactly one of pattern, predicate")
        return self


class Policy(_Rules):
    """Guardrails on what a job's agents and tools may do, checked before every tool call and
    before a task's result is accepted.

    Attributes:
        allow: Tool names or globs any caller may call (``None``: every tool); a tool outside
            it is neither offered to a model nor run.
        deny: Tool names or globs no caller may call (``["shell", "mcp_*"]``); deny wins.
        agents: Allow/deny lists for one agent, by its name (on top of the two above).
        tools: Argument constraints by tool name or glob (``"*"`` for every tool).
        egress: Hosts every network tool of the job may connect to (``example.org``,
            ``*.example.org`` for its subdomains), redirects included; ``None``: any public
            host (the SSRF guard still refuses private addresses).
        outputs: Content rules every task result must pass.
    """

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    agents: dict[str, AgentRules] = Field(default_factory=dict)
    tools: dict[str, ToolRules] = Field(default_factory=dict)
    egress: tuple[str, ...] | None = None
    outputs: tuple[OutputRule, ...] = ()

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _globs(value)

    @field_validator("deny")
    @classmethod
    def _deny(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _globs(value) or ()

    @field_validator("tools")
    @classmethod
    def _tool_keys(cls, value: dict[str, ToolRules]) -> dict[str, ToolRules]:
        for key in value:
            _check_glob(key, path=False)
        return value

    @field_validator("egress")
    @classmethod
    def _egress(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(_check_host(h) for h in value)

    @model_validator(mode="after")
    def _unique_outputs(self) -> Policy:
        names = [rule.name for rule in self.outputs]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two output rules are named {name!r}")
        return self

    def __bool__(self) -> bool:
        return bool(
            self.allow is not None
            or self.deny
            or self.agents
            or self.tools
            or self.egress is not None
            or self.outputs
        )

    @property
    def has_predicates(self) -> bool:
        """Whether an output rule is a Python predicate (such a policy cannot travel as data)."""
        return any(rule.predicate is not None for rule in self.outputs)
