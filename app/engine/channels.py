"""The way back from the engine's worker thread to the requests awaiting on the event loop: one
Channel per request (the rows' Ticket with a queue), and the hand-over of a step's results."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence

from model.rows import Ticket


class Channel(Ticket):
    """One request's results, from the worker thread to the event loop awaiting them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float):
        super().__init__()
        self.submitted = time.monotonic()
        self.deadline = self.submitted + timeout  # time.monotonic() value
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    async def get(self) -> object:
        """The next result; an exception the worker sent is raised here."""
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def send(outbox: Sequence[tuple[Channel, object]]) -> None:
    """Hand results to the event loops awaiting them: one wake-up per loop per step."""
    by_loop: defaultdict[asyncio.AbstractEventLoop, list[tuple[Channel, object]]] = defaultdict(
        list
    )
    for channel, item in outbox:
        by_loop[channel.loop].append((channel, item))
    for loop, items in by_loop.items():
        # a closed loop raises RuntimeError: nobody waits for these results any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[Channel, object]]) -> None:
    for channel, item in items:
        channel.queue.put_nowait(item)
