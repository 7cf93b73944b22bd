"""The way back from the engine's worker thread (app/engine/channels.py): send() hands each
result to the event loop awaiting it, in order, with one wake-up per loop per step; an error
sent is raised by the awaiting request."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.engine.channels import Channel, send
from app.errors import NotReady


class CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the wake-ups other threads ask of it."""

    wakeups = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.wakeups += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_send_hands_each_result_to_the_loop_awaiting_it() -> None:
    channels: dict[str, list[Channel]] = {}
    received: dict[str, list[list[object]]] = {}
    registered = threading.Barrier(3)
    loops = {name: CountingLoop() for name in ("first", "second")}

    def serve(name: str) -> None:
        """A request loop: two requests, each awaiting two results."""

        async def requests() -> list[list[object]]:
            mine = [Channel(asyncio.get_running_loop(), 60.0) for _ in range(2)]
            channels[name] = mine
            registered.wait()
            return [[await c.get(), await c.get()] for c in mine]

        received[name] = loops[name].run_until_complete(asyncio.wait_for(requests(), 10))

    threads = [threading.Thread(target=serve, args=(name,)) for name in loops]
    for thread in threads:
        thread.start()
    registered.wait()  # the worker thread's side: both loops are awaiting
    (a, b), (c, d) = channels["first"], channels["second"]
    send([(a, "a1"), (c, "c1"), (b, "b1"), (a, "a2"), (d, "d1"), (c, "c2"), (b, "b2"), (d, "d2")])
    for thread in threads:
        thread.join(10)
    for loop in loops.values():
        loop.close()
    assert received == {
        "first": [["a1", "a2"], ["b1", "b2"]],
        "second": [["c1", "c2"], ["d1", "d2"]],
    }
    assert [loop.wakeups for loop in loops.values()] == [1, 1]


def test_an_error_sent_is_raised_and_a_closed_loop_is_skipped() -> None:
    async def awaiting() -> Channel:
        channel = Channel(asyncio.get_running_loop(), 2.5)
        assert channel.deadline == channel.submitted + 2.5 and channel.cancelled is False
        send([(channel, NotReady("the server is shutting down"))])
        with pytest.raises(NotReady, match="shutting down"):
            await channel.get()
        return channel

    closed = asyncio.new_event_loop()
    channel = closed.run_until_complete(awaiting())
    closed.close()
    send([(channel, "nobody waits for this")])  # no error: the request is gone
    assert channel.queue.empty()
