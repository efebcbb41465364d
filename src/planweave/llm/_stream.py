"""Streaming a model call's reply to whoever watches the task, beside the recorded call.

A worker hands the recorded call path a :class:`LiveReplies` (where deltas go: the job's live
topic); each call opens one :class:`ReplySink` there, feeds it the reply as the model writes it,
and closes it once the call has ended, so the last piece goes out before the call's
``LlmCalled`` event is reported. Models with a ``stream`` method stream; any other model's reply
arrives as one delta when its call is done, so every model streams as far as it can.
"""

from __future__ import annotations

from typing import Literal, Protocol

from planweave.llm.base import DeltaSink, LlmRequest, LlmResponse, Model, StreamingModel

__all__ = ["LiveReplies", "ReplySink", "stream_reply", "streamed_call"]


class ReplySink(Protocol):
    """One call's deltas: called with each piece of text, closed when the call ends."""

    def __call__(self, text: str) -> None:
        """Take the next piece of the reply (on the event loop; never blocks)."""

    async def aclose(self) -> None:
        """Send what is still held back; the call is over."""


class LiveReplies(Protocol):
    """Where a task's model calls stream their replies (the worker's live topic)."""

    def open(
        self, request: LlmRequest, *, model: str, format: Literal["text", "json"]
    ) -> ReplySink:
        """A sink for the deltas of one call of ``request`` to ``model``."""


async def stream_reply(model: Model, request: LlmRequest, on_delta: DeltaSink) -> LlmResponse:
    """Run one call, passing its reply text to ``on_delta`` as it is written.

    A model that cannot stream (no ``stream`` method) sends its whole content as one delta once
    the call is done.
    """
    if isinstance(model, StreamingModel):
        return await model.stream(request, on_delta)
    response = await model.complete(request)
    if response.content:
        on_delta(response.content)
    return response


async def streamed_call(model: Model, request: LlmRequest, live: LiveReplies) -> LlmResponse:
    """``stream_reply`` into a sink of ``live``, closed (flushed) however the call ends."""
    sink = live.open(
        request,
        model=model.name,
        format="json" if request.response_schema is not None else "text",
    )
    try:
        return await stream_reply(model, request, sink)
    finally:
        await sink.aclose()
