"""The way back from the engine's worker thread to the requests awaiting on the event loop: one
Channel per request (or per generation), and the hand-over of a step's results."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Channel(Generic[T]):
    """One request's results of type T, from the worker thread to the event loop awaiting
    them; cancelled once nobody waits for them any more (its rows then leave the batch)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float):
        self.submitted = time.monotonic()
        self.deadline = self.submitted + timeout  # time.monotonic() value
        self.loop = loop
        self.cancelled = False
        self.last_token_at: float | None = None  # a generation's last token (its metrics)
        self.queue: asyncio.Queue[T | BaseException] = asyncio.Queue()

    async def get(self) -> T:
        """The next result; an exception the worker sent is raised here."""
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def send(outbox: Sequence[tuple[Channel[Any], object]]) -> None:
    """Hand results to the event loops awaiting them: one wake-up per loop per step."""
    by_loop: defaultdict[asyncio.AbstractEventLoop, list[tuple[Channel[Any], object]]] = (
        defaultdict(list)
    )
    for channel, item in outbox:
        by_loop[channel.loop].append((channel, item))
    for loop, items in by_loop.items():
        # a closed loop raises RuntimeError: nobody waits for these results any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[Channel[Any], object]]) -> None:
    for channel, item in items:
        channel.queue.put_nowait(item)
