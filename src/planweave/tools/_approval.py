"""The approval gate: which tool calls wait for a person before they run.

Every tool call inside a job passes here (from ``_runtime``), after the ``before_tool_call``
hooks and before the tool runs. A call needs approval when its tool is high impact
(``is_high_impact``: ``delete_file``, ``shell``, an HTTP call that is not a GET, an MCP tool
marked so) or when its name matches one of the job's ``approve_tools`` patterns. Such a call
raises ``ApprovalRequired``: the task's attempt ends, the task waits in ``awaiting_approval``,
and once a person decides it runs again (its earlier model and tool calls replayed from the
journal) with the decision in its work item. The decision is matched by the call's fingerprint,
its tool and arguments: an approved call runs, a rejected one returns an error the agent reads
(``rejected by <who>: <reason>``), and the same call asked again gets the same answer.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planweave import _journal
from planweave._json import TOO_DEEP_TEXT, too_deep
from planweave.errors import ApprovalRequired
from planweave.tools._tool import Tool, is_high_impact

__all__ = ["ApprovalGate", "Verdict", "call_fingerprint", "needs_approval"]


def call_fingerprint(name: str, args: Mapping[str, Any]) -> str:
    """The fingerprint a decision on a call is matched by: its tool and its arguments."""
    if not args:
        text = "{}"
    elif too_deep(args):
        text = TOO_DEEP_TEXT
    else:
        text = json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)
    return _journal.fingerprint("approval", name, text)


def needs_approval(
    tool: Tool, name: str, args: Mapping[str, Any], patterns: Sequence[str]
) -> str | None:
    """Why this call needs a person's approval (``None``: it does not)."""
    if is_high_impact(tool, args):
        return f"tool {name!r} is high impact"
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern):
            if pattern == name:
                return f"the job's approve_tools names {name!r}"
            return f"tool {name!r} matches {pattern!r} in the job's approve_tools"
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision on one call: ``approved``, or rejected ``by`` someone for ``reason``."""

    approved: bool
    by: str
    reason: str = ""

    def rejection(self) -> str:
        """The text an agent reads for a rejected call."""
        text = f"the call was rejected by {self.by}"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(frozen=True, slots=True)
class ApprovalGate:
    """The approval rules of one task: the job's ``approve_tools`` and the decisions made.

    Attributes:
        patterns: Names or glob patterns of tools whose calls need approval.
        decisions: The decisions made on the task's calls, by call fingerprint (a later
            decision on the same call wins).
    """

    patterns: tuple[str, ...] = ()
    decisions: Mapping[str, Verdict] = field(default_factory=dict)

    def check(self, tool: Tool, name: str, args: Mapping[str, Any]) -> Verdict | None:
        """The verdict on a call that needs approval (``None``: it needs none, it runs).

        Raises:
            ApprovalRequired: the call needs approval and nobody decided it yet.
        """
        reason = needs_approval(tool, name, args, self.patterns)
        if reason is None:
            return None
        call = call_fingerprint(name, args)
        verdict = self.decisions.get(call)
        if verdict is None:
            raise ApprovalRequired(reason, tool=name, arguments=dict(args), call=call)
        return verdict

    def decided(self, name: str, args: Mapping[str, Any]) -> Verdict | None:
        """The decision on this call, if one was made."""
        return self.decisions.get(call_fingerprint(name, args)) if self.decisions else None
