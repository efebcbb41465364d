"""A live session: changes in, agent runs out, every step in the session's log.

A ``Session`` is driven by one coroutine in the process that opened it. It writes nothing the
pure propagation (``_propagate``) did not decide: a change (an input added or removed, a run's
outcome) is folded into the state, the events and the new state are written to the store in
one transaction, and then the commands are carried out: each agent run is a one-task engine job
(``engine.submit(agent=..., input=...)``), so it has the engine's retries, budgets, hooks and
events, and the session records its job id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from planweave.errors import (
    ConfigError,
    LogConflict,
    SessionConflict,
    SessionInputInvalid,
    SessionRateLimited,
    StoreUnavailable,
)
from planweave.events import new_id
from planweave.sessions._events import (
    AgentRunStarted,
    InputAdded,
    InputRemoved,
    SessionEvent,
    SessionSettled,
)
from planweave.sessions._propagate import (
    CancelRun,
    Decision,
    RunAgent,
    RunOutcome,
    agent_basis,
    decide,
    on_result,
)
from planweave.sessions._spec import SessionSpec, load_route_function
from planweave.sessions._state import SessionState

if TYPE_CHECKING:
    from planweave.engine import Engine
    from planweave.sessions._store import SessionStore

__all__ = ["InputLike", "Session", "board_of"]

log = logging.getLogger("planweave.sessions")

InputLike = str | Mapping[str, Any]
"""An input: its text, or ``{"text": ..., "tags": [...]}``."""


class Session:
    """One reactive session, live in this process (see ``engine.sessions``).

    Read it with ``board()`` or ``state``; change it with ``add_input`` and ``remove_input``;
    watch it with ``follow()``.
    """

    def __init__(
        self,
        engine: Engine,
        store: SessionStore,
        spec: SessionSpec,
        state: SessionState,
        agent_names: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.id = state.session_id
        self._store = store
        self._state = state
        self._agent_names = dict(agent_names)  # board name -> registered agent name
        self._lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._changed = asyncio.Event()
        self._runs: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._cancelling: set[asyncio.Task[None]] = set()
        self._change_times: collections.deque[float] = collections.deque()
        self._driver: asyncio.Task[None] | None = None
        self._closed = False
        self._route_function = (
            load_route_function(spec.routing.function)
            if spec.routing.mode == "function" and spec.routing.function
            else None
        )

    # --- reading --------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """A copy of the session's current state."""
        return self._state.copy_state()

    @property
    def version(self) -> int:
        """The version of the inputs, which ``expected_version`` is compared with."""
        return self._state.input_rev

    def board(self) -> dict[str, Any]:
        """The board as plain data: inputs, each agent's latest result with its version and
        status, the aggregate, the budget and the propagation counters."""
        return board_of(self.spec, self._state)

    async def events(self, *, after_seq: int = 0, limit: int | None = None) -> list[SessionEvent]:
        """The session's recorded events after ``after_seq`` (at most ``limit`` of them)."""
        return await self._store.read_events(self.id, after_seq=after_seq, limit=limit)

    async def follow(
        self, *, after_seq: int = 0, until_settled: bool = False
    ) -> AsyncIterator[SessionEvent]:
        """Every change, live: the recorded events after ``after_seq``, then each new one.

        Resume a stream by passing the ``seq`` of the last event seen. With ``until_settled``
        the iteration ends at a ``session.settled`` event that nothing followed yet.
        """
        seq = after_seq
        while True:
            changed = self._changed
            events = await self._store.read_events(self.id, after_seq=seq)
            for event in events:
                yield event
                seq = event.seq
                if until_settled and isinstance(event, SessionSettled) and seq >= self._state.seq:
                    return
            if not events:
                if self._closed:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)

    async def wait_settled(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until nothing is left to run, and return the board.

        Raises:
            TimeoutError: it did not settle within ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while not self._state.settled:
                changed = self._changed
                await changed.wait()
        return self.board()

    # --- changing -------------------------------------------------------------------------

    async def add_input(
        self,
        data: InputLike,
        *,
        tags: Sequence[str] = (),
        expected_version: int | None = None,
    ) -> str:
        """Add an input; the agents it is routed to (and their dependents) re-run.

        Args:
            data: The input's text, or ``{"text": ..., "tags": [...]}``.
            tags: Tags for routing (added to those in ``data``).
            expected_version: The ``version`` the change is based on; a different current
                version raises ``SessionConflict`` and changes nothing.

        Returns:
            The new input's id.

        Raises:
            SessionInputInvalid: too large, an unknown tag, or too many inputs.
            SessionConflict: the inputs changed since ``expected_version``.
        """
        text, all_tags = self._checked_input(data, tags)
        routes, reason = await self._route(text, all_tags)
        async with self._lock:
            self._check_version(expected_version)
            if len(self._state.current_inputs()) >= self.spec.max_inputs:
                raise SessionInputInvalid(
                    f"session {self.id!r} holds {self.spec.max_inputs} inputs, its max_inputs"
                )
            input_id = new_id()
            rev = self._state.input_rev + 1
            event = InputAdded(
                session_id=self.id,
                input_id=input_id,
                text=text,
                tags=all_tags,
                version=rev,
                input_rev=rev,
                routes=routes,
                route_reason=reason,
            )
            await self._commit_change(event)
        return input_id

    async def remove_input(self, input_id: str, *, expected_version: int | None = None) -> None:
        """Remove an input (a tombstone stays in the log); it leaves every agent's inputs, and
        agents left with none drop their results.

        Raises:
            SessionInputInvalid: the session has no such current input.
            SessionConflict: the inputs changed since ``expected_version``.
        """
        async with self._lock:
            self._check_version(expected_version)
            node = self._state.inputs.get(input_id)
            if node is None or node.removed:
                raise SessionInputInvalid(f"session {self.id!r} has no input {input_id!r}")
            event = InputRemoved(
                session_id=self.id, input_id=input_id, input_rev=self._state.input_rev + 1
            )
            await self._commit_change(event)

    def _check_version(self, expected: int | None) -> None:
        if expected is not None and expected != self._state.input_rev:
            raise SessionConflict(self.id, expected, self._state.input_rev)
        limit = self.spec.max_changes_per_minute
        if limit is None:
            return
        now = time.monotonic()
        times = self._change_times
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) >= limit:
            raise SessionRateLimited(self.id, limit, times[0] + 60.0 - now)

    def _count_change(self) -> None:
        if self.spec.max_changes_per_minute is not None:
            self._change_times.append(time.monotonic())

    def _checked_input(self, data: InputLike, tags: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        given: tuple[str, ...] = ()
        if isinstance(data, str):
            text = data
        elif isinstance(data, Mapping):
            raw_text: Any = data.get("text")
            raw_tags: Any = data.get("tags") or ()
            if not isinstance(raw_text, str):
                raise SessionInputInvalid("input: text must be a string")
            if not isinstance(raw_tags, list | tuple) or not all(
                isinstance(tag, str) for tag in raw_tags
            ):
                raise SessionInputInvalid("input: tags must be a list of strings")
            text, given = raw_text, tuple(raw_tags)
        else:
            raise SessionInputInvalid("input: give its text or {text, tags}")
        if not text.strip():
            raise SessionInputInvalid("input: text is empty")
        if len(text) > self.spec.max_input_chars:
            raise SessionInputInvalid(
                f"input: text is {len(text)} characters, over the session's max_input_chars "
                f"({self.spec.max_input_chars})"
            )
        all_tags = tuple(dict.fromkeys((*given, *tags)))
        known = self.spec.tags()
        for tag in all_tags:
            if tag not in known:
                raise SessionInputInvalid(
                    f"input: unknown tag {tag!r}; the session's agents consume "
                    f"{', '.join(sorted(known)) or 'no tags'}"
                )
        return text, all_tags

    async def _route(self, text: str, tags: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
        names = [agent.name for agent in self.spec.agents]
        if self._route_function is not None:
            chosen = self._route_function(text, tags)
            unknown = [name for name in chosen if name not in names]
            if unknown:
                raise ConfigError(
                    f"routing.function {self.spec.routing.function}: returned unknown agent "
                    f"{unknown[0]!r}"
                )
            return tuple(name for name in names if name in chosen), "function"
        if self.spec.routing.mode == "llm":
            routed = await self._route_llm(text, tags, names)
            if routed is not None:
                return routed
        lowered = text.lower()
        routes = []
        for agent in self.spec.agents:
            by_tag = any(tag in tags for tag in agent.consumes.tags)
            by_word = any(
                re.search(rf"\b{re.escape(word.lower())}\b", lowered)
                for word in agent.consumes.keywords
            )
            if by_tag or by_word:
                routes.append(agent.name)
        return tuple(routes), "tags"

    async def _route_llm(
        self, text: str, tags: tuple[str, ...], names: list[str]
    ) -> tuple[tuple[str, ...], str] | None:
        prompt = (
            f"Input: {text}\nTags: {', '.join(tags) or 'none'}\n"
            f"Agents: {', '.join(names)}\n"
            'Answer with JSON: {"agents": [names of the agents this input concerns], '
            '"reason": "one sentence"}'
        )
        result = await self.engine.run(agent=self._agent_names["@routing"], input=prompt)
        verdict = _parsed(result.result) if result.ok else None
        if not isinstance(verdict, dict) or not isinstance(verdict.get("agents"), list):
            log.warning("session %s: the classifier gave no verdict; routing by tags", self.id)
            return None
        chosen = [name for name in verdict["agents"] if isinstance(name, str)]
        routes = tuple(name for name in names if name in chosen)
        return routes, f"llm: {str(verdict.get('reason', ''))[:500]}"

    async def _commit_change(self, event: SessionEvent) -> None:
        now = time.time()
        state = self._state.copy_state()
        event = event.model_copy(update={"seq": state.seq + 1, "at": now})
        state.apply(event)
        await self._write(Decision(state=state, events=[event]))
        self._count_change()
        self._kick.set()

    # --- driving --------------------------------------------------------------------------

    def start(self) -> None:
        """Start driving the session in this process (the engine does it on create/open)."""
        if self._driver is None:
            self._driver = asyncio.create_task(self._drive(), name=f"session-{self.id}")

    async def close(self) -> None:
        """Stop driving the session here: runs in flight are cancelled, the log kept."""
        self._closed = True
        driver, self._driver = self._driver, None
        runs = list(self._runs.values())
        for task in (driver, *runs):
            if task is not None:
                task.cancel()
        for task in (driver, *runs):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._notify()

    async def _drive(self) -> None:
        while not self._closed:
            self._kick.clear()
            try:
                async with self._lock:
                    decision = decide(self._state, self.spec, time.time())
                    await self._write(decision)
            except (LogConflict, StoreUnavailable):
                # Decided again from the stored state once the store answers.
                log.warning("session %s: writing a decision failed", self.id, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            timeout = None
            if decision.wake_at is not None:
                timeout = max(0.0, decision.wake_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout)

    async def _write(self, decision: Decision) -> None:
        """Write a decision's events and state, then carry out its commands."""
        if decision.events:
            try:
                await self._store.append(decision.state, decision.events, based_on=self._state.seq)
            except LogConflict:
                # Another process wrote the session: take its state; decide again from it.
                stored = await self._store.load(self.id)
                if stored is not None:
                    self._state = stored
                self._kick.set()
                raise
            self._state = decision.state
            self._notify()
        for command in decision.commands:
            if isinstance(command, RunAgent):
                key = (command.agent, command.run)
                self._runs[key] = asyncio.create_task(self._run(command))
            else:
                self._cancel(command)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _cancel(self, command: CancelRun) -> None:
        task = self._runs.pop((command.agent, command.run), None)
        if task is not None:
            task.cancel()
        if command.job_id is not None:
            cancelling = asyncio.create_task(self._cancel_job(command.job_id))
            self._cancelling.add(cancelling)
            cancelling.add_done_callback(self._cancelling.discard)

    async def _cancel_job(self, job_id: str) -> None:
        try:
            await self.engine.cancel(job_id, reason="superseded by a newer session change")
        except Exception:
            log.debug("cancelling superseded job %s failed", job_id, exc_info=True)

    async def _run(self, command: RunAgent) -> None:
        try:
            outcome = await self._execute(command)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("session %s: agent %s failed", self.id, command.agent, exc_info=True)
            outcome = RunOutcome(command.agent, command.run, ok=False, error=str(exc))
        finally:
            self._runs.pop((command.agent, command.run), None)
        while not self._closed:
            try:
                async with self._lock:
                    await self._write(on_result(self._state, self.spec, time.time(), outcome))
                break
            except StoreUnavailable:
                # The outcome is kept until the store answers again.
                log.warning("session %s: recording %s failed", self.id, command.agent)
                await asyncio.sleep(0.5)
            except LogConflict:
                log.warning("session %s: another process writes it", self.id)
                break
        self._kick.set()

    async def _execute(self, command: RunAgent) -> RunOutcome:
        from planweave.sessions._reactive import ReactiveAgent

        name = self._agent_names[command.agent]
        reactive = isinstance(self.engine.agents.get(name), ReactiveAgent)
        text = json.dumps(command.data, sort_keys=True) if reactive else command.prompt
        job_id = await self.engine.submit(agent=name, input=text)
        async with self._lock:
            current = self._is_current(command)
            if current:
                started = AgentRunStarted(
                    session_id=self.id, agent=command.agent, run=command.run, job_id=job_id
                )
                await self._commit_change_quiet(started)
        if not current:  # superseded while it was being submitted
            await self._cancel_job(job_id)
        result = await self.engine.wait(job_id)
        usage = result.usage
        tokens = usage.tokens_in + usage.tokens_out
        if not result.ok:
            error = result.error or f"the job ended {result.status}"
            return RunOutcome(
                command.agent, command.run, ok=False, error=error, tokens=tokens,
                cost_usd=usage.cost_usd,
            )  # fmt: skip
        return RunOutcome(
            command.agent, command.run, ok=True, value=_parsed(result.result), tokens=tokens,
            cost_usd=usage.cost_usd,
        )  # fmt: skip

    def _is_current(self, command: RunAgent) -> bool:
        s = self._state
        if self.spec.aggregator is not None and command.agent == self.spec.aggregator.name:
            return s.aggregate.running and s.aggregate.run == command.run
        node = s.agents[command.agent]
        return node.status == "running" and node.run == command.run

    async def _commit_change_quiet(self, event: SessionEvent) -> None:
        state = self._state.copy_state()
        event = event.model_copy(update={"seq": state.seq + 1, "at": time.time()})
        state.apply(event)
        await self._write(Decision(state=state, events=[event]))


def board_of(spec: SessionSpec, state: SessionState) -> dict[str, Any]:
    """A session's board as plain data (``Session.board``)."""
    s = state
    agents: dict[str, Any] = {}
    for agent in spec.agents:
        node = s.agents[agent.name]
        stale = node.status != "running" and node.basis is not None
        stale = stale and node.basis != agent_basis(s, spec, agent.name)
        agents[agent.name] = {
            "status": node.status,
            "value": node.value,
            "version": node.version,
            "data_version": node.data_version,
            "stale": stale,
            "runs": node.runs,
            "job_id": node.job_id,
            "error": node.error,
            "depends_on": list(agent.depends_on),
        }
    return {
        "session_id": s.session_id,
        "name": spec.name,
        "version": s.input_rev,
        "seq": s.seq,
        "settled": s.settled,
        "inputs": [
            {
                "input_id": node.input_id,
                "text": node.text,
                "tags": list(node.tags),
                "version": node.version,
                "routes": list(node.routes),
                "route_reason": node.route_reason,
            }
            for node in s.current_inputs()
        ],
        "agents": agents,
        "aggregate": {
            "value": s.aggregate.value,
            "version": s.aggregate.version,
            "running": s.aggregate.running,
            "runs": s.aggregate.runs,
        },
        "budget": {
            "tokens": s.tokens,
            "cost_usd": s.cost_usd,
            "max_tokens": spec.budget.max_tokens,
            "max_cost_usd": spec.budget.max_cost_usd,
            "blocked": s.blocked,
        },
        "counters": {"cutoffs": s.cutoffs, "fenced": s.fenced, "superseded": s.superseded},
    }


def _parsed(result: Any) -> Any:
    """An agent's answer as data: JSON where it is JSON, else its text."""
    if isinstance(result, str):
        text = result.strip()
        if text.startswith(("{", "[")):
            with contextlib.suppress(ValueError):
                return json.loads(text)
        return text
    return result
