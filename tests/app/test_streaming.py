"""app/streaming.py: every streamed answer ends with [DONE], an error mid-stream becomes one
error event in the route's body, and the stream's sequences are closed however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.errors import DeadlineExceeded, ServiceError
from app.streaming import event_stream


def _collect(events: AsyncIterator[str], failure: Exception | None) -> tuple[list[str], int]:
    closed = []

    async def source() -> AsyncIterator[str]:
        async for event in events:
            yield event
        if failure is not None:
            raise failure

    async def run() -> list[str]:
        stream = event_stream(source(), lambda e: f"{e.error_type}: {e}", lambda: closed.append(1))
        return [event async for event in stream]

    return asyncio.run(run()), len(closed)


async def _two() -> AsyncIterator[str]:
    for data in ("a", "b"):
        yield f"data: {data}\n\n"


def test_a_stream_ends_with_done_and_closes_once() -> None:
    assert _collect(_two(), None) == (["data: a\n\n", "data: b\n\n", "data: [DONE]\n\n"], 1)


def test_an_error_mid_stream_is_one_event_in_the_routes_body_then_done() -> None:
    events, closed = _collect(_two(), DeadlineExceeded("too slow"))
    deadline = DeadlineExceeded("too slow").error_type
    assert events[2:] == [f"data: {deadline}: too slow\n\n", "data: [DONE]\n\n"]
    assert closed == 1


def test_an_unexpected_error_is_answered_as_an_internal_one() -> None:
    events, closed = _collect(_two(), KeyError("oops"))
    internal = ServiceError("x").error_type
    assert events[2].startswith(f"data: {internal}: internal error while generating")
    assert "oops" not in events[2] and events[3] == "data: [DONE]\n\n" and closed == 1
