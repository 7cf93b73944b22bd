"""The engine's scheduler: which sequences run, and when. It owns the queue of waiting
requests, admission into the batch, deadlines and cancellation, and one worker thread that runs
the model's batched step (model/runner.py) step after step:

    step:  answer overdue requests  →  drop rows that finished or whose client left
           →  admit waiting rows (zero state)  →  Runner.step (one forward for every row)
           →  results to each request's channel, one wake-up per event loop

It knows a row's request by its channel, kept here (a row knows only its `origin`). Torch work
runs only on the worker thread, never on the event loop. No HTTP here, and no request limits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from app import metrics
from app.engine.channels import Channel, send
from app.errors import DeadlineExceeded, NotReady, Overloaded, ServiceError
from app.settings import Settings
from model.rows import BlankRow, GenerateRow, Row
from model.runner import Outbox, Runner

log = logging.getLogger(__name__)

Seat = tuple[Row, Channel[Any]]  # a row submitted, and the channel its results go to


class Scheduler:
    """Runs the rows requests submit on one Runner, on one worker thread, within the batch and
    queue limits of settings; each step's counts go to recorded."""

    def __init__(self, runner: Runner, settings: Settings, recorded: metrics.ModelMetrics):
        self.runner = runner
        self.settings = settings
        self.metrics = recorded
        self._wake = threading.Condition()
        self._waiting: deque[deque[Seat]] = deque()  # one inner deque per request
        self._channels: dict[Row, Channel[Any]] = {}  # of each running row's origin
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self, name: str) -> None:
        """Start the worker thread (named for the model it serves)."""
        self._thread = threading.Thread(
            target=self._run, name=f"nextword-engine-{name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; sequences still waiting or running get a NotReady error."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the worker accepts and runs sequences."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    # -- the queue (event loop side) -----------------------------------------------------------
    def channel(self) -> Channel[Any]:
        """A new channel for a request's results, its deadline from now; NotReady unless
        running."""
        if not self.running:
            raise NotReady("the engine is not running (starting or shutting down)")
        return Channel(asyncio.get_running_loop(), self.settings.request_timeout_seconds)

    def submit(self, seats: list[Seat]) -> None:
        """Queue a request's rows; Overloaded when no slot is free and the queue is full."""
        if not seats:  # e.g. a completion of 0 tokens without echo: nothing to run
            return
        with self._wake:
            if self._stopping:
                raise NotReady("the engine is shutting down")
            if self._is_full(_places(row for row, _ in seats)):
                raise Overloaded(
                    f"all {self.settings.max_batch_size} batch slots are busy and "
                    f"{len(self._waiting)} requests are waiting; retry shortly",
                    headers={"Retry-After": str(self.settings.retry_after_seconds)},
                )
            self._waiting.append(deque(seats))
            self.metrics.queue_size.set(len(self._waiting))
            self._wake.notify()

    def _is_full(self, new_places: int) -> bool:
        """Whether a request whose rows may take new_places must be refused (lock held)."""
        waiting = sum(_places(row for row, _ in group) for group in self._waiting)
        free = self.settings.max_batch_size - _places(self.runner.rows) - waiting
        if free >= new_places or len(self._waiting) < self.settings.max_waiting:
            return False
        # requests whose clients left still hold places until the worker looks: free them
        self._waiting = deque(g for g in self._waiting if not g[0][1].cancelled)
        self.metrics.queue_size.set(len(self._waiting))
        return len(self._waiting) >= self.settings.max_waiting

    # -- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        """Step until stopped; then fail whatever is left."""
        while self._next_batch():
            try:
                self._step()
            except Exception:
                log.exception(
                    "engine step failed; dropping the %d sequences in it", len(self.runner.rows)
                )
                error = ServiceError("internal error while running the model (see server log)")
                self._finish_all(error, "error")
        self._finish_all(NotReady("the server is shutting down"), "cancelled")

    def _next_batch(self) -> bool:
        """Answer overdue requests, drop rows that left, admit waiting ones, sleep while there
        is nothing to do. False once stopping."""
        self._expire_overdue()
        self._drop_gone()
        with self._wake:
            while True:
                if self._stopping:
                    return False
                admitted = self._admit()
                if admitted or self.runner.rows:
                    break
                self._wake.wait()
        if admitted:
            self.runner.add(admitted)
        self.metrics.batch_size.set(len(self.runner.rows))
        return True

    def _admit(self) -> list[Row]:
        """Waiting rows whose places are free in the batch, oldest request first (lock held).
        A row wider than the whole batch (a blank of many lines) waits for it to be empty and
        runs alone."""
        free = self.settings.max_batch_size - _places(self.runner.rows)
        admitted: list[Row] = []
        now = time.monotonic()
        while self._waiting:
            group = self._waiting[0]
            row, channel = group[0]
            alone = not self.runner.rows and not admitted
            if _places([row]) > free and not alone and not channel.cancelled:
                break
            group.popleft()
            if not group:
                self._waiting.popleft()
            if not channel.cancelled:
                admitted.append(row)
                self._channels[row] = channel
                free -= _places([row])
                self.metrics.queue_time.observe(now - channel.submitted)
        self.metrics.queue_size.set(len(self._waiting))
        return admitted

    def _channel_of(self, row: Row) -> Channel[Any]:
        """Where a running row's results go: its origin's channel."""
        return self._channels[row.origin]

    def _gone(self, row: Row) -> bool:
        """Whether a running row can leave the batch: finished, or its client left."""
        return row.finished or self._channel_of(row).cancelled

    def _expire_overdue(self) -> None:
        """504 to every request past its deadline with nothing to show: still waiting, or
        reading its input. (A generation that produced tokens stops itself with
        "time_limit".) Its rows leave at once."""
        now = time.monotonic()
        with self._wake:
            firsts = [group[0] for group in self._waiting]  # a request's rows share a channel
        running = [(row, self._channel_of(row)) for row in self.runner.rows]
        overdue = [
            (row, channel)
            for row, channel in (*running, *firsts)
            if channel.deadline <= now
            and not _produced(row)
            and not row.finished
            and not channel.cancelled
        ]
        outbox: dict[Channel[Any], object] = {}
        for row, channel in overdue:
            seconds = self.settings.request_timeout_seconds
            outbox[channel] = DeadlineExceeded(
                f"no answer within the {seconds:g} s deadline (NEXTWORD_REQUEST_TIMEOUT_SECONDS);"
                " retry with a shorter text or when the server is less busy"
            )
            row.finished = True
            channel.cancelled = True  # the request's other rows leave too
            if isinstance(row, GenerateRow):
                self.metrics.sequences_finished("timeout").inc()
        send(list(outbox.items()))

    def _drop_gone(self) -> None:
        """Take finished and abandoned rows (and their state columns) out of the batch."""
        rows = self.runner.rows
        keep = [i for i, row in enumerate(rows) if not self._gone(row)]
        if len(keep) == len(rows):
            return
        for row in rows:
            if (
                not row.finished
                and self._channel_of(row).cancelled
                and isinstance(row, GenerateRow)
            ):
                self.metrics.sequences_finished("cancelled").inc()
        self.runner.keep(keep)
        self._channels = {row.origin: self._channel_of(row) for row in self.runner.rows}
        self.metrics.batch_size.set(len(self.runner.rows))

    def _finish_all(self, error: ServiceError, reason: str) -> None:
        """End every running and waiting sequence with error."""
        with self._wake:
            running = [(row, self._channel_of(row)) for row in self.runner.rows]
            seats = running + [seat for group in self._waiting for seat in group]
            self._waiting.clear()
        left = [(row, channel) for row, channel in seats if not (row.finished or channel.cancelled)]
        send(list({channel: error for _, channel in left}.items()))
        self.metrics.sequences_finished(reason).inc(
            sum(isinstance(row, GenerateRow) for row, _ in left)
        )
        self.runner.keep([])
        self._channels = {}
        self.metrics.queue_size.set(0)
        self.metrics.batch_size.set(0)

    def _step(self) -> None:
        """One step of the runner; its results go to each request, its counts to metrics."""
        started = time.monotonic()
        batch = len(self.runner.rows)
        outbox = self.runner.step()
        self._observe(outbox)
        send([(self._channel_of(row), result) for row, result in outbox.all()])
        self.metrics.step_batch_size.observe(batch)
        self.metrics.step_duration.observe(time.monotonic() - started)

    def _observe(self, outbox: Outbox) -> None:
        """Metrics of one step's generated tokens: how many, how each generation finished, the
        time to a row's first token and between its tokens."""
        now = time.monotonic()
        recorded = self.metrics
        for row, generated in outbox.generated:
            if generated.finish is not None:
                recorded.sequences_finished(generated.finish.finish_reason).inc()
            channel = self._channel_of(row)  # one per generation
            if channel.last_token_at is None:
                recorded.time_to_first_token.observe(now - channel.submitted)
            else:
                recorded.time_per_output_token.observe(now - channel.last_token_at)
            channel.last_token_at = now
        recorded.generated_tokens.inc(sum(g.token is not None for _, g in outbox.generated))


def _places(rows: Iterable[Row]) -> int:
    """The places in the batch rows may come to hold, what admission counts: a blank becomes
    up to its chooser's most words lines, any other row stays one."""
    return sum(row.chooser.most_words if isinstance(row, BlankRow) else 1 for row in rows)


def _produced(row: Row) -> bool:
    """Whether a row has sent its request something to answer with (a generated token): past
    the deadline its text then ends with "time_limit" instead of a 504."""
    return isinstance(row, GenerateRow) and bool(row.decoding.pieces)
