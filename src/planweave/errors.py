"""The one exception tree of planweave.

Three families are kept apart so that callers can react sensibly:

* usage errors: the caller gave bad configuration or input; the message says what to do;
* run errors: a task, a job, a model call or a tool failed while running;
* signals: control flow raised on purpose by agents and tools (retry this task, wait for approval).

Foreign exceptions (sqlite3, redis, openai, httpx) are translated at the adapter that meets them
(``raise StoreUnavailable(...) from exc``) and never leak into the engine::

    PlanweaveError
    ├── UsageError
    │   ├── ConfigError
    │   ├── UnknownBackend
    │   ├── MissingDependency
    │   ├── PlanInvalid
    │   ├── JobNotFound
    │   ├── JobBusy
    │   ├── QuotaExceeded
    │   ├── ArtifactNotFound
    │   ├── ScriptedModelMismatch
    │   ├── SessionNotFound
    │   ├── SessionInputInvalid
    │   ├── SessionConflict
    │   └── SessionRateLimited
    ├── RunError
    │   ├── ModelError
    │   │   ├── ModelUnavailable
    │   │   └── ModelResponseError
    │   ├── ToolError
    │   │   ├── ToolNotFound
    │   │   ├── ToolArgumentsInvalid
    │   │   ├── ToolTimeout
    │   │   ├── PolicyViolation
    │   │   ├── ToolDisabled
    │   │   └── McpServerUnavailable
    │   ├── StoreUnavailable
    │   ├── BusUnavailable
    │   │   └── ArtifactStoreUnavailable
    │   ├── JobDataInvalid
    │   ├── ClaimLost
    │   │   └── LogConflict
    │   │       └── SessionLogConflict
    │   ├── BudgetExceeded
    │   │   └── HandoffLimitExceeded
    │   ├── AnswerRejected
    │   └── HookVeto
    │       └── PolicyVeto
    └── Signal
        ├── RetryTask
        ├── ApprovalRequired
        └── BudgetNeeded
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

__all__ = [
    "AnswerProblem",
    "AnswerRejected",
    "ApprovalRequired",
    "ArtifactNotFound",
    "ArtifactStoreUnavailable",
    "BudgetExceeded",
    "BudgetNeeded",
    "BusUnavailable",
    "ClaimLost",
    "ConfigError",
    "FailureType",
    "HandoffLimitExceeded",
    "HookVeto",
    "JobBusy",
    "JobDataInvalid",
    "JobFailureCode",
    "JobNotFound",
    "LogConflict",
    "McpServerUnavailable",
    "MissingDependency",
    "ModelError",
    "ModelResponseError",
    "ModelUnavailable",
    "PlanInvalid",
    "PlanweaveError",
    "PolicyVeto",
    "PolicyViolation",
    "QuotaCode",
    "QuotaExceeded",
    "RetryTask",
    "RunError",
    "ScriptedModelMismatch",
    "SessionConflict",
    "SessionInputInvalid",
    "SessionLogConflict",
    "SessionNotFound",
    "SessionOwned",
    "SessionRateLimited",
    "Signal",
    "StoreUnavailable",
    "ToolArgumentsInvalid",
    "ToolDisabled",
    "ToolError",
    "ToolNotFound",
    "ToolTimeout",
    "UnknownBackend",
    "UsageError",
]


class PlanweaveError(Exception):
    """Root of every error planweave raises on purpose."""


# --- usage errors -----------------------------------------------------------------------------


class UsageError(PlanweaveError):
    """The caller's configuration or input is wrong; the message says what to change."""


class ConfigError(UsageError):
    """A setting is missing or malformed."""


class UnknownBackend(UsageError):
    """A backend URL names a scheme planweave does not know."""

    def __init__(self, concern: str, url: str, valid: Sequence[str]) -> None:
        self.concern = concern
        self.url = url
        self.valid = tuple(valid)
        super().__init__(
            f"unknown {concern} URL {url!r}: use one of the schemes {', '.join(self.valid)}"
        )


class MissingDependency(UsageError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{package} is not installed: run pip install 'planweave[{extra}]'")


class PlanInvalid(UsageError):
    """A plan failed validation; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid plan: " + "; ".join(self.errors))


class JobNotFound(UsageError):
    """No job with this id exists in the store."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id!r} in this store (list them with 'planweave jobs')")


class JobBusy(UsageError):
    """Another process is running the job (its claim on the job has not expired)."""


QuotaCode = Literal["tenant_job_limit", "tenant_storage_limit", "tenant_spend_limit"]
"""Which of a tenant's quotas refused a submission: its running and queued jobs, the bytes its
stored jobs hold, or what its jobs spent in the spend window."""


class QuotaExceeded(UsageError):
    """A submission was refused because its tenant is at one of its quotas (``TenantQuotas``).

    Nothing was started. ``code`` names the quota; the message says what frees it (a job
    ending, deleting finished jobs, the spend window moving on). The API answers 429 with
    ``code`` as the error's code.
    """

    def __init__(self, code: QuotaCode, message: str) -> None:
        self.code: QuotaCode = code
        super().__init__(message)


class ArtifactNotFound(UsageError):
    """The artifact store holds no file of this name for the job (or the name would leave the
    job's folder, which is answered the same way)."""

    def __init__(self, job_id: str, name: str) -> None:
        self.job_id = job_id
        self.name = name
        super().__init__(f"job {job_id!r} has no artifact {name!r}")


class ScriptedModelMismatch(UsageError):
    """The scripted model has no reply left that matches a request."""


class SessionNotFound(UsageError):
    """No session with this id exists in the store."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"no session {session_id!r} in this store")


class SessionInputInvalid(UsageError):
    """A change to a session's inputs was refused (too large, an unknown tag, an input that
    does not exist, too many inputs); nothing changed."""


class SessionRateLimited(UsageError):
    """A session took as many input changes as its ``max_changes_per_minute`` allows; nothing
    changed. ``retry_after_s`` says when the next one is accepted (the API answers 429 with
    ``Retry-After``)."""

    def __init__(self, session_id: str, limit: int, retry_after_s: float) -> None:
        self.session_id = session_id
        self.retry_after_s = retry_after_s
        super().__init__(
            f"session {session_id!r} takes at most {limit} input changes a minute; "
            f"retry in {retry_after_s:.1f} s"
        )


class SessionConflict(UsageError):
    """A change was based on an older version of the session's inputs than the current one.

    Nothing changed; ``current_version`` is the version to base the change on after reading
    the board again. The API answers 409.
    """

    def __init__(self, session_id: str, expected: int, current_version: int) -> None:
        self.session_id = session_id
        self.expected = expected
        self.current_version = current_version
        super().__init__(
            f"session {session_id!r} changed: the change was based on version {expected}, "
            f"the current version is {current_version}"
        )


# --- run errors -------------------------------------------------------------------------------


class RunError(PlanweaveError):
    """Something failed while a job ran."""


class ModelError(RunError):
    """A model call failed. ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ModelUnavailable(ModelError):
    """The model cannot be reached or is not configured (no key, no server, no file)."""

    retryable = True


class ModelResponseError(ModelError):
    """The model answered with something unusable."""


class ToolError(RunError):
    """A tool call failed. ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ToolNotFound(ToolError):
    """No tool of this name is registered."""


class ToolArgumentsInvalid(ToolError):
    """The arguments do not match the tool's JSON schema."""


class ToolTimeout(ToolError):
    """The tool did not finish within its timeout."""

    retryable = True


class PolicyViolation(ToolError):
    """A tool refused an action its policy forbids (a path outside the workspace, a private
    address, a host off the egress allowlist, a call without approval).

    Args:
        message: What was refused and why.
        rule: The policy rule that refused it (``policy.egress``), when a job's policy did;
            such a refusal is recorded as a ``PolicyDenied`` event too.
        call_args: The call's arguments as the hooks before the refusal left them (redacted),
            recorded in its events instead of those the caller wrote.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        rule: str | None = None,
        call_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.rule = rule
        self.call_args = call_args


class ToolDisabled(ToolError):
    """The tool is switched off: an MCP tool whose definition changed since it was approved
    (``planweave mcp approve NAME`` approves it again)."""


class McpServerUnavailable(ToolError):
    """An MCP server cannot be started or reached, or stopped answering; it is restarted with
    backoff, so trying again later may succeed."""

    retryable = True


class StoreUnavailable(RunError):
    """The store cannot be reached or refused a write."""


class BusUnavailable(RunError):
    """The bus cannot be reached (after retrying with backoff) or refused a command."""


class ArtifactStoreUnavailable(StoreUnavailable):
    """The artifact store (an S3 endpoint, a folder) cannot be reached or refused a request;
    trying again later may work."""


class JobDataInvalid(RunError):
    """The store refused a batch because the data of some of its jobs cannot be stored.

    A row or an event of each job in ``job_ids`` could not be encoded (text that is not valid
    Unicode, a value with no JSON form), or an earlier batch of the job was refused so this one
    would leave a gap in its log. Nothing of the batch was written; the other jobs in it are
    not at fault, so a control plane writes them again on their own and fails these jobs (with
    the code ``data_invalid``) from their last stored state. ``reasons`` maps each job to what
    was wrong with its data.
    """

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = dict(reasons)
        self.job_ids = tuple(self.reasons)
        super().__init__(
            "the store cannot hold the data of job "
            + "; ".join(f"{job_id} ({why})" for job_id, why in self.reasons.items())
            + "; nothing of this batch was written"
        )


class ClaimLost(RunError):
    """A write or a claim renewal came from a process that no longer owns the job.

    Another process took the job (after the claim expired, or with ``--force``), so this one
    must stop driving it at once: nothing of the rejected batch was written. ``job_ids`` names
    the jobs whose claim was lost.
    """

    def __init__(self, job_ids: Sequence[str], message: str | None = None) -> None:
        self.job_ids = tuple(job_ids)
        super().__init__(
            message
            or "the claim on job "
            + ", ".join(self.job_ids)
            + " is held by another process; this process stopped driving it"
        )


class LogConflict(ClaimLost):
    """An event's ``(job_id, seq)`` is already in the log: a second writer drives the job.

    The batch that carried it was not written at all.
    """

    def __init__(self, job_id: str, seq: int) -> None:
        self.job_id = job_id
        self.seq = seq
        super().__init__(
            (job_id,),
            f"event {seq} of job {job_id} is already in the log: another process writes this "
            "job, so this one stopped driving it",
        )


class SessionLogConflict(LogConflict):
    """A batch of a session's events was based on an older ``seq`` than the stored one: another
    process wrote the session. Nothing of the batch was written."""

    def __init__(self, session_id: str, seq: int) -> None:
        super().__init__(session_id, seq)
        self.session_id = session_id
        self.args = (
            f"event {seq} of session {session_id} is already in the log: another process "
            "writes this session",
        )


class SessionOwned(ClaimLost):
    """Another process drives the session: its lease (``owner``) is live, or it took the
    session over from this one. Nothing was written; a process that gets this for a session it
    was driving stops driving it. ``expires_in_s`` says how long the other owner's lease runs
    unrenewed (``open`` takes the session over once it has run out)."""

    def __init__(self, session_id: str, owner: str, expires_in_s: float) -> None:
        self.session_id = session_id
        self.owner = owner
        self.expires_in_s = max(0.0, expires_in_s)
        super().__init__(
            (session_id,),
            f"session {session_id} is driven by {owner} (its lease runs for another "
            f"{self.expires_in_s:.1f} s unless renewed); nothing was written",
        )


class BudgetExceeded(RunError):
    """A job or task went over one of its budgets (cost, tokens, steps, time)."""


class HandoffLimitExceeded(BudgetExceeded):
    """Agents handed a task to each other more often than ``max_handoffs`` allows; the task
    fails for good (the same agents would hand it off again)."""


FailureType = Literal[
    "error",
    "crash",
    "retry",
    "plan_invalid",
    "model",
    "tool",
    "timeout",
    "usage",
    "budget_exceeded",
    "budget_needed",
    "empty_answer",
    "echoed_instructions",
    "output_invalid",
    "critic_rejected",
    "vetoed",
    "policy",
]
"""What ended an attempt in failure (``Outcome.error_type``, ``TaskFailed.error_type``): a crash
of the worker or of the task's code, a retry asked for, a bad plan, a model, tool or usage
error, a timeout, the budget (over it, or a grant too small for the next call), a junk answer,
a critic's verdict (``docs/critic.md``), a hook's veto, or a policy rule that refused the
result."""

JobFailureCode = Literal["task_failed", "budget_exceeded", "data_invalid", "job_too_large"]
"""Why a job failed (``JobFailed.code``): a task failed for good, the job went over its cost
budget, its own data could not be stored (``JobDataInvalid``), or it went over its limits on
events or bytes (``max_job_events``, ``max_job_bytes``)."""

AnswerProblem = Literal["empty_answer", "echoed_instructions", "output_invalid"]
"""Why an agent's answer is not a result: it is empty, it repeats the engine's own prompt, or
it does not match the agent's output schema."""


class AnswerRejected(RunError):
    """An agent's answer is junk, not a result: empty, an echo of the engine's instructions, or
    (after one repair round) not valid against the agent's output schema.

    The attempt failed and another may do better (sampling differs), so it is retryable;
    ``reason`` names the problem and becomes the failed outcome's ``error_type``.
    """

    retryable = True

    def __init__(self, message: str, *, reason: AnswerProblem) -> None:
        super().__init__(message)
        self.reason: AnswerProblem = reason


class HookVeto(RunError):
    """Raised by a hook to refuse what it was shown: a vetoed tool call becomes an error the
    agent reads; a vetoed model call, task or workflow step fails its task for good, with
    ``reason`` (error type ``vetoed``).

    Args:
        reason: Why, in words a user reads in the task's error.
        hook: The hook that refused (filled in by the engine when not given).
    """

    retryable = False

    def __init__(self, reason: str, *, hook: str | None = None) -> None:
        self.reason = reason
        self.hook = hook
        super().__init__(reason)

    def __str__(self) -> str:
        return f"vetoed by hook {self.hook!r}: {self.reason}" if self.hook else self.reason


class PolicyVeto(HookVeto):
    """A policy rule refused a tool call: the agent reads ``reason``, which names ``rule``.

    Args:
        rule: The rule's key (``policy.deny``, ``policy.tools.read_file.args.path.paths``).
        reason: Why, naming the rule.
        call_args: The arguments the policy judged (after the hooks before it, redaction
            among them).
    """

    def __init__(self, rule: str, reason: str, *, call_args: dict[str, Any] | None = None) -> None:
        super().__init__(reason, hook="policy")
        self.rule = rule
        self.call_args = call_args

    def __str__(self) -> str:
        return self.reason


# --- control-flow signals ---------------------------------------------------------------------


class Signal(PlanweaveError):
    """Raised on purpose by agents and tools to steer the engine."""


class RetryTask(Signal):
    """Ask the engine to run this task again after ``delay_s`` seconds."""

    def __init__(self, reason: str = "retry requested", *, delay_s: float | None = None) -> None:
        self.reason = reason
        self.delay_s = delay_s
        super().__init__(reason)


class BudgetNeeded(Signal):
    """The attempt's share of its job's budgets cannot cover its next call.

    Raised before the call is made (by the one model-call path and the one tool-call path), so
    nothing is spent; the worker reports it and the control plane runs the task again with a
    larger share, or stops the job when its budget cannot cover the call.

    Attributes:
        tokens: Tokens the call may use at most (``None``: not a model call, or no token limit).
        cost_usd: Dollars it may cost at most (``None``: no dollar limit).
        tool_calls: 1 for a tool call (``None``: a model call).
    """

    def __init__(
        self,
        reason: str,
        *,
        tokens: int | None = None,
        cost_usd: float | None = None,
        tool_calls: int | None = None,
    ) -> None:
        self.reason = reason
        self.tokens = tokens
        self.cost_usd = cost_usd
        self.tool_calls = tool_calls
        super().__init__(reason)


class ApprovalRequired(Signal):
    """The action needs a person's approval before it may go ahead.

    Raised by the approval gate of the tool runtime for a call that needs approval (a
    high-impact tool, or one the job's ``approve_tools`` names): the task's attempt ends there,
    the task waits in ``awaiting_approval`` and runs again once a person decides. A tool may
    raise it too; the runtime then fills in the call.

    Attributes:
        reason: Why the call needs approval.
        tool: The tool of the waiting call (``None`` until the runtime fills it in).
        arguments: Its arguments.
        call: The call's fingerprint (tool and arguments), which the decision is matched by.
    """

    def __init__(
        self,
        reason: str = "the action needs a person's approval",
        *,
        tool: str | None = None,
        arguments: dict[str, Any] | None = None,
        call: str | None = None,
    ) -> None:
        self.reason = reason
        self.tool = tool
        self.arguments = dict(arguments or {})
        self.call = call
        super().__init__(reason)
