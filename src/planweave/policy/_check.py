"""A policy compiled for checking: its globs and expressions turned into matchers once, and
its argument rules indexed by tool name, so a call that no rule concerns costs one lookup.

A job is held to two policies at most, the engine's (``Engine(policy=...)``, the ``policy``
setting) and its own (``JobOptions.policy``); a :class:`PolicySet` checks both, and a call or a
result must pass each. Every refusal names the rule's key (``policy.deny``,
``job.policy.tools.read_file.args.path.paths``), which is what the agent reads and what the
``PolicyDenied`` event records.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import regex

from planweave.policy._rules import ArgRule, Policy
from planweave.tools._net import host_matches

__all__ = ["CompiledPolicy", "Denial", "PolicySet"]

PATTERN_TIMEOUT_S = 0.1
"""Longest one pattern of a rule may take on one value: a pattern that takes longer (one
written to backtrack without end) refuses the value rather than stall the worker."""


@dataclass(frozen=True, slots=True)
class Denial:
    """Which rule refused, and why (in words that name the rule)."""

    rule: str
    reason: str


def _names(globs: Sequence[str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((g, re.compile(fnmatch.translate(g))) for g in globs)


def _first(name: str, matchers: tuple[tuple[str, re.Pattern[str]], ...]) -> str | None:
    for glob, matcher in matchers:
        if matcher.match(name):
            return glob
    return None


def path_regex(glob: str) -> re.Pattern[str]:
    """A workspace path glob as a regular expression: ``**`` spans folders (``docs/**``
    matches every file below ``docs``), ``*`` and ``?`` stay within one, ``[...]`` is a class."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = glob.index("]", i + 1)
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class _Arg:
    rule: str
    arg: str
    spec: ArgRule
    paths: tuple[re.Pattern[str], ...] | None
    pattern: regex.Pattern[str] | None


def _compile_arg(rule: str, arg: str, spec: ArgRule) -> _Arg:
    paths = None if spec.paths is None else tuple(path_regex(g) for g in spec.paths)
    pattern = None if spec.pattern is None else regex.compile(spec.pattern)
    return _Arg(rule=rule, arg=arg, spec=spec, paths=paths, pattern=pattern)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:120] + "..." if len(text) > 120 else text)


def _workspace_paths(value: str, workspace: Path | None) -> list[str] | str:
    """The relative paths ``value`` stands for (as written, and with links resolved), or why
    it stands for none inside the workspace."""
    text = value.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        if workspace is None:
            return "is an absolute path"
        try:
            text = Path(text).relative_to(workspace).as_posix()
        except ValueError:
            return "is outside the workspace"
    lexical = posixpath.normpath(text)
    if lexical == ".." or lexical.startswith("../"):
        return "leaves the workspace"
    found = [lexical]
    if workspace is not None and _has_link(workspace, lexical):
        real = os.path.realpath(workspace / lexical)
        try:
            resolved = Path(real).relative_to(os.path.realpath(workspace)).as_posix()
        except ValueError:
            return "leads outside the workspace (through a link)"
        if resolved != lexical:
            found.append(resolved)
    return found


def _has_link(workspace: Path, relative: str) -> bool:
    """Whether a folder or file on ``relative``'s way down from ``workspace`` is a link (one
    ``lstat`` a part, up to the first part that does not exist)."""
    if relative == ".":
        return False
    current = str(workspace)
    for part in relative.split("/"):
        current = f"{current}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except OSError:
            return False
    return False


def _where(rule: _Arg, value: Any) -> str:
    return f"argument {rule.arg!r} = {_shown(value)}"


def _check_arg(rule: _Arg, value: Any, workspace: Path | None) -> Denial | None:
    spec = rule.spec
    if rule.paths is not None:
        key = f"{rule.rule}.paths"
        if not isinstance(value, str):
            return Denial(key, f"{_where(rule, value)} is not a path")
        found = _workspace_paths(value, workspace)
        if isinstance(found, str):
            return Denial(key, f"{_where(rule, value)} {found}")
        allowed = ", ".join(spec.paths or ())
        for one in found:
            if not any(p.match(one) for p in rule.paths):
                via = "" if one == found[0] else f" leads to {one!r} through a link, which"
                return Denial(
                    key, f"{_where(rule, value)}{via} is outside the allowed paths {allowed}"
                )
    if spec.hosts is not None:
        key = f"{rule.rule}.hosts"
        try:
            host = urlsplit(value).hostname if isinstance(value, str) else None
        except ValueError:
            host = None
        if not host:
            return Denial(key, f"{_where(rule, value)} is not a URL with a host")
        if not host_matches(host, spec.hosts):
            return Denial(
                key, f"{_where(rule, value)}: host {host!r} is not one of {', '.join(spec.hosts)}"
            )
    if spec.min is not None or spec.max is not None:
        key = f"{rule.rule}.{'min' if spec.min is not None else 'max'}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return Denial(key, f"{_where(rule, value)} is not a number")
        if spec.min is not None and value < spec.min:
            return Denial(
                f"{rule.rule}.min", f"{_where(rule, value)} is below the minimum {spec.min:g}"
            )
        if spec.max is not None and value > spec.max:
            return Denial(
                f"{rule.rule}.max", f"{_where(rule, value)} is above the maximum {spec.max:g}"
            )
    if rule.pattern is not None and (
        not isinstance(value, str) or not _fullmatch(rule.pattern, value)
    ):
        return Denial(
            f"{rule.rule}.pattern", f"{_where(rule, value)} does not match {spec.pattern!r}"
        )
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(map(repr, spec.enum))
        return Denial(f"{rule.rule}.enum", f"{_where(rule, value)} is not one of {allowed}")
    return None


def _fullmatch(pattern: regex.Pattern[str], value: str) -> bool:
    try:
        return pattern.fullmatch(value, timeout=PATTERN_TIMEOUT_S) is not None
    except TimeoutError:
        return False


class CompiledPolicy:
    """One policy, compiled; ``prefix`` starts its rules' keys (``policy``, ``job.policy``)."""

    def __init__(self, policy: Policy, *, prefix: str = "policy") -> None:
        self.policy = policy
        self.prefix = prefix
        self._allow = None if policy.allow is None else _names(policy.allow)
        self._deny = _names(policy.deny)
        self._agents = {
            name: (None if rules.allow is None else _names(rules.allow), _names(rules.deny))
            for name, rules in policy.agents.items()
        }
        self._tool_rules = [
            (re.compile(fnmatch.translate(key)), key, rules) for key, rules in policy.tools.items()
        ]
        self._args: dict[str, tuple[_Arg, ...]] = {}
        self.egress = policy.egress
        self.outputs = tuple(
            (
                f"{prefix}.outputs.{rule.name}",
                rule,
                regex.compile(rule.pattern) if rule.pattern else None,
            )
            for rule in policy.outputs
        )
        self.checks_names = bool(self._allow is not None or self._deny or self._agents)

    def _args_of(self, tool: str) -> tuple[_Arg, ...]:
        found = self._args.get(tool)
        if found is None:
            found = self._args[tool] = tuple(
                _compile_arg(f"{self.prefix}.tools.{key}.args.{arg}", arg, spec)
                for regex, key, rules in self._tool_rules
                if regex.match(tool)
                for arg, spec in rules.args.items()
            )
        return found

    def name_denial(self, agent: str | None, tool: str) -> Denial | None:
        """The rule that keeps ``agent`` (``None``: a ``tool`` task) from calling ``tool``."""
        if not self.checks_names:
            return None
        glob = _first(tool, self._deny)
        if glob is not None:
            return Denial(f"{self.prefix}.deny", f"tool {tool!r} is denied (matches {glob!r})")
        if self._allow is not None and _first(tool, self._allow) is None:
            return Denial(f"{self.prefix}.allow", f"tool {tool!r} is not on the allow list")
        rules = self._agents.get(agent) if agent is not None else None
        if rules is not None:
            allow, deny = rules
            key = f"{self.prefix}.agents.{agent}"
            glob = _first(tool, deny)
            if glob is not None:
                return Denial(
                    f"{key}.deny", f"tool {tool!r} is denied to agent {agent!r} (matches {glob!r})"
                )
            if allow is not None and _first(tool, allow) is None:
                return Denial(
                    f"{key}.allow", f"tool {tool!r} is not on agent {agent!r}'s allow list"
                )
        return None

    def call_denial(
        self, agent: str | None, tool: str, args: Mapping[str, Any], workspace: Path | None
    ) -> Denial | None:
        """The rule that refuses this call, or ``None``."""
        denial = self.name_denial(agent, tool)
        if denial is not None:
            return denial
        for rule in self._args_of(tool):
            if rule.arg in args:
                denial = _check_arg(rule, args[rule.arg], workspace)
                if denial is not None:
                    return denial
        return None

    def output_denial(self, text: str) -> Denial | None:
        """The content rule a task result (as text) breaks, or ``None``."""
        for key, rule, compiled in self.outputs:
            if compiled is not None:
                try:
                    found = compiled.search(text, timeout=PATTERN_TIMEOUT_S) is not None
                    why = rule.reason or f"it contains text matching {rule.pattern!r}"
                except TimeoutError:
                    found, why = True, "its pattern took too long on this result"
                if found:
                    return Denial(key, f"the result is refused by policy rule {key}: {why}")
            elif rule.predicate is not None:
                try:
                    ok = bool(rule.predicate(text))
                except Exception as exc:
                    ok = False
                    why = f"its check raised {type(exc).__name__}: {exc}"
                else:
                    why = rule.reason or "its check refused it"
                if not ok:
                    return Denial(key, f"the result is refused by policy rule {key}: {why}")
        return None


class PolicySet:
    """The policies one job is held to (the engine's and the job's own), checked in turn."""

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self.policies = tuple(policies)
        self._checks_calls = tuple(p for p in self.policies if p.checks_names or p.policy.tools)
        self.checks_outputs = any(p.outputs for p in self.policies)
        egress = {f"{p.prefix}.egress": p.egress for p in self.policies if p.egress is not None}
        self.egress: dict[str, tuple[str, ...]] | None = egress or None

    @property
    def checks_calls(self) -> bool:
        """Whether any rule concerns tool calls (names or arguments)."""
        return bool(self._checks_calls)

    def offers(self, agent: str | None, tool: str) -> bool:
        """Whether ``tool`` may be offered to ``agent``'s model."""
        return all(p.name_denial(agent, tool) is None for p in self._checks_calls)

    def call_denial(
        self, agent: str | None, tool: str, args: Mapping[str, Any], workspace: Path | None
    ) -> Denial | None:
        """The first rule that refuses this call, or ``None``."""
        for policy in self._checks_calls:
            denial = policy.call_denial(agent, tool, args, workspace)
            if denial is not None:
                return denial
        return None

    def output_denial(self, value: Any) -> Denial | None:
        """The first content rule a task result breaks, or ``None``."""
        if not self.checks_outputs:
            return None
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        for policy in self.policies:
            denial = policy.output_denial(text)
            if denial is not None:
                return denial
        return None
