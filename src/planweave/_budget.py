"""A task's budget grant inside its worker: the check before each model call and tool call.

Why: a job's budgets must hold across parallel branches and sub-agents, whose workers may run
in other processes and cannot read the store. The control plane hands each attempt a share of
what its job has left unreserved (``Grant``, in the work item); the worker runs the attempt
inside :func:`granted`, and the one model-call path (``llm._record``) and the one tool-call path
(``tools._runtime``) ask :func:`before_model_call` and :func:`before_tool_call` first. A model
call is counted at its most (its prompt's tokens plus its largest reply, priced by the price
table), so no call can take the attempt past its grant; when the grant cannot cover a call, the
call is not made and ``BudgetNeeded`` ends the attempt. What is left returns to the job when the
attempt ends, and the control plane either grants the task more or stops the job.

Calls replayed from the journal cost nothing and are never checked. Outside a granted attempt
every check returns at once, without allocating.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from planweave.constants import DEFAULT_REPLY_TOKENS_ESTIMATE
from planweave.errors import BudgetNeeded
from planweave.events import Grant
from planweave.llm._common import estimate_tokens
from planweave.llm.base import ChatMessage
from planweave.llm.pricing import price_usd

__all__ = ["Allowance", "before_model_call", "before_tool_call", "granted", "settle_model_call"]


class Allowance:
    """What is left of one attempt's grant (``None``: no limit of that kind)."""

    __slots__ = ("cost_usd", "tokens", "tool_calls")

    def __init__(self, grant: Grant) -> None:
        self.tokens = grant.tokens
        self.cost_usd = grant.cost_usd
        self.tool_calls = grant.tool_calls


_ACTIVE: ContextVar[Allowance | None] = ContextVar("planweave_allowance", default=None)

_Reserved = tuple[Allowance, int, float]


@contextlib.contextmanager
def granted(grant: Grant | None) -> Iterator[Allowance | None]:
    """Check the model and tool calls made inside against ``grant`` (``None``: no checks)."""
    allowance = None if grant is None else Allowance(grant)
    token = _ACTIVE.set(allowance)
    try:
        yield allowance
    finally:
        _ACTIVE.reset(token)


def estimate_call(
    model: str, messages: Sequence[ChatMessage], max_tokens: int | None
) -> tuple[int, float]:
    """The most one model call may use: its prompt's tokens plus its largest reply (the
    request's ``max_tokens``, else ``DEFAULT_REPLY_TOKENS_ESTIMATE``), and what that costs."""
    tokens_in = sum(estimate_tokens(m.content) for m in messages)
    tokens_in += sum(estimate_tokens(str(c.arguments)) for m in messages for c in m.tool_calls)
    tokens_out = max_tokens if max_tokens is not None else DEFAULT_REPLY_TOKENS_ESTIMATE
    return tokens_in + tokens_out, price_usd(model, tokens_in, tokens_out)


def before_model_call(
    model: str, messages: Sequence[ChatMessage], max_tokens: int | None
) -> _Reserved | None:
    """Reserve a model call's most out of the attempt's grant (``None``: no grant applies).

    Raises:
        BudgetNeeded: The grant cannot cover the call; it must not be made.
    """
    allowance = _ACTIVE.get()
    if allowance is None or (allowance.tokens is None and allowance.cost_usd is None):
        return None
    tokens, cost = estimate_call(model, messages, max_tokens)
    short_tokens = allowance.tokens is not None and tokens > allowance.tokens
    short_cost = allowance.cost_usd is not None and cost > allowance.cost_usd
    if short_tokens or short_cost:
        what = (
            f"{tokens} tokens" if short_tokens else f"${cost:.6f}"
        ) + " at most, more than its share of the job's budget has left"
        raise BudgetNeeded(
            f"the next model call may use {what}",
            tokens=tokens if allowance.tokens is not None else None,
            cost_usd=cost if allowance.cost_usd is not None else None,
        )
    if allowance.tokens is not None:
        allowance.tokens -= tokens
    if allowance.cost_usd is not None:
        allowance.cost_usd -= cost
    return allowance, tokens, cost


def settle_model_call(reserved: _Reserved | None, tokens: int, cost_usd: float) -> None:
    """Replace a call's reservation by what it used (``tokens`` in plus out, dollars)."""
    if reserved is None:
        return
    allowance, held_tokens, held_cost = reserved
    if allowance.tokens is not None:
        allowance.tokens += held_tokens - tokens
    if allowance.cost_usd is not None:
        allowance.cost_usd += held_cost - cost_usd


def before_tool_call() -> None:
    """Count one tool call against the attempt's grant.

    Raises:
        BudgetNeeded: The grant has no tool call left; the call must not be made.
    """
    allowance = _ACTIVE.get()
    if allowance is None or allowance.tool_calls is None:
        return
    if allowance.tool_calls < 1:
        raise BudgetNeeded(
            "the next tool call is more than its share of the job's tool calls has left",
            tool_calls=1,
        )
    allowance.tool_calls -= 1
