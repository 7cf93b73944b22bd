"""The engine's scheduler: which sequences run, and when. It owns the queue of waiting
requests, admission into the batch, deadlines and cancellation, and one worker thread that runs
the model's batched step (model/runner.py) step after step:

    step:  answer overdue requests  →  drop rows that finished or whose client left
           →  admit waiting rows (zero state)  →  Runner.step (one forward for every row)
           →  results to each request's channel, one wake-up per event loop

Requests arrive already validated and encoded by the HTTP layer (app/limits.py); the engine
only schedules and runs them. Torch work runs only on the worker thread, never on the event
loop. No HTTP here, and no request limits.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import torch

from app import metrics
from app.engine.channels import Channel, send
from app.engine.results import BlankLines, GenerationStream, TextScore, text_score
from app.errors import DeadlineExceeded, NotReady, Overloaded, ServiceError
from app.settings import Settings
from model.checkpoint import Checkpoint, load_direction
from model.decoding import Decoding
from model.fill_blank import Gap, Proposer
from model.rows import (
    BlankRow,
    BlankWords,
    FinishEvent,
    GenerateRow,
    Prediction,
    PredictRow,
    Row,
    ScoreRow,
    TokenEvent,
    TopTokens,
    places_of,
)
from model.runner import Outbox, Runner
from model.sampling import SamplingOptions
from model.served import load_served_model
from model.tokenizers import EncodedText, TextEncoder, build_tokenizer

log = logging.getLogger(__name__)


class Engine:
    """Schedules every request's sequences onto one Runner on one worker thread: one model,
    served under settings.served_model_name (the name its metrics carry)."""

    def __init__(self, checkpoint: Checkpoint, settings: Settings):
        self.checkpoint = checkpoint
        self.settings = settings
        self.name = settings.served_model_name
        self.metrics = metrics.ModelMetrics(self.name)
        self.vocab = checkpoint.vocab
        self.encoder = TextEncoder(
            build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab, load_direction(checkpoint)
        )
        # the batch and the checkpoint's recorded reading (context, cache): model/runner.py
        self.runner = Runner(checkpoint, settings.prefill_chunk, settings.output == "pruned")
        self._wake = threading.Condition()
        self._waiting: deque[deque[Row]] = deque()  # one inner deque per request
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load the checkpoint the settings name (settings.model_dir, quantised if asked) and
        check that one forward works. Blocking; raises CheckpointError with the reason."""
        if settings.threads:
            torch.set_num_threads(settings.threads)
        checkpoint = load_served_model(settings.model_dir, settings.device, settings.quantize)
        engine = cls(checkpoint, settings)
        engine.runner.warm_up()
        return engine

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(
            target=self._run, name=f"nextword-engine-{self.name}", daemon=True
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

    # -- what the HTTP layer calls: one call per request -------------------------------------
    async def predict_next(
        self, text: EncodedText, top_k: int, cache: bool = True, every_word: bool = False
    ) -> Prediction:
        """The top_k most probable next tokens after text (<unk> is never offered); with the
        checkpoint's cache pointer unless cache is False. With every_word, also the exact
        log-probability of every vocabulary entry there."""
        channel = self._channel()
        new_cache = self.runner.new_cache(cache)
        eos = self.vocab.eos_id
        self._submit([PredictRow(text.ids, eos, top_k, channel, new_cache, every_word)])
        try:
            prediction = await channel.get()
        finally:
            channel.cancelled = True
        assert isinstance(prediction, Prediction)
        return prediction

    async def score(
        self, texts: Sequence[EncodedText], top_n: int = 0, cache: bool = True
    ) -> list[TextScore]:
        """Per-target log-probabilities and perplexity of each text, each read from the start
        state: the figures of model.evaluate (with the checkpoint's context and cache, unless
        cache is False), whatever else shares the batch. With top_n, each target also gets the
        top_n most probable tokens at its place (one full output layer per position: dearer)."""
        channel = self._channel()
        self._submit(self._score_rows(texts, channel, top_n, cache))
        return await self._scores(texts, channel)

    async def fill_blank(self, gap: Gap, proposer: Proposer) -> BlankLines:
        """The words this (forward) model proposes at the blank and the per-target
        log-probabilities of each line filled with a word proposer chooses, without the cache
        pointer: the left side is read once, its state continued by every line, all lines one
        batch (model/rows.py's BlankRow). The figures are score()'s for each line."""
        channel = self._channel()
        eos = self.vocab.eos_id
        self._submit([BlankRow(gap.left, gap.right, eos, proposer, channel)])
        try:
            blank = await channel.get()
            assert isinstance(blank, BlankWords)
            lines = await self._results(channel, len(blank.words))
        finally:
            channel.cancelled = True
        return BlankLines(blank.proposed, [scores.tolist() for scores, _ in lines])

    async def generate(
        self,
        prompts: Sequence[EncodedText],
        choices: Sequence[tuple[int, SamplingOptions]],
        score_top_n: int | None = None,
    ) -> tuple[list[TextScore] | None, list[GenerationStream]]:
        """Start one generation per choice (the index of its prompt, its options), all admitted
        together; with score_top_n, also score the prompts as score() does. Returns the
        prompts' scores (None unless asked) and each choice's events. Raises before any token
        (overloaded, not ready) so that the caller can still answer with a plain error."""
        score_channel = self._channel() if score_top_n is not None else None
        rows: list[Row] = []
        if score_channel is not None:
            rows = self._score_rows(prompts, score_channel, score_top_n or 0, cache=True)
        channels = [self._channel() for _ in choices]
        for channel, (index, options) in zip(channels, choices, strict=True):
            rows.append(self._generate_row(prompts[index], options, channel))
        self._submit(rows)
        self.metrics.prompt_tokens.inc(sum(len(prompts[index].ids) for index, _ in choices))
        streams = [GenerationStream(channel) for channel in channels]
        if score_channel is None:
            return None, streams
        try:
            return await self._scores(prompts, score_channel), streams
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise

    # -- building a request's rows -------------------------------------------------------------
    def _score_rows(
        self, texts: Sequence[EncodedText], channel: Channel, top_n: int, cache: bool
    ) -> list[Row]:
        eos = self.vocab.eos_id
        return [
            ScoreRow(text.ids, eos, i, channel, top_n, self.runner.new_cache(cache))
            for i, text in enumerate(texts)
        ]

    def _generate_row(
        self, prompt: EncodedText, options: SamplingOptions, channel: Channel
    ) -> GenerateRow:
        if options.seed is None:  # a random one, returned with the text so it can be replayed
            options = replace(options, seed=random.randrange(2**63))
        eos, tokenizer = self.vocab.eos_id, self.encoder.tokenizer
        decoding = Decoding(prompt.ids, prompt.tokens, options, eos, tokenizer, channel.deadline)
        return GenerateRow(decoding, len(prompt.ids), channel, self.runner.new_cache(options.cache))

    async def _scores(self, texts: Sequence[EncodedText], channel: Channel) -> list[TextScore]:
        """Each text's score as its rows finish, in the order given."""
        try:
            results = await self._results(channel, len(texts))
        finally:
            channel.cancelled = True
        return [text_score(t, s, tops) for t, (s, tops) in zip(texts, results, strict=True)]

    async def _results(
        self, channel: Channel, count: int
    ) -> list[tuple[torch.Tensor, list[TopTokens]]]:
        """The (scores, tops) of a request's `count` scored texts as their rows finish, text
        i at index i; counted in the scored-tokens metric."""
        results: list[tuple[torch.Tensor, list[TopTokens]]] = [(torch.empty(0), [])] * count
        for _ in range(count):
            result = await channel.get()
            assert isinstance(result, tuple)
            index, scores, tops = result
            results[index] = (scores, tops)
        self.metrics.scored_tokens.inc(sum(s.numel() for s, _ in results))
        return results

    # -- the queue (event loop side) -----------------------------------------------------------
    def _channel(self) -> Channel:
        if not self.running:
            raise NotReady("the engine is not running (starting or shutting down)")
        return Channel(asyncio.get_running_loop(), self.settings.request_timeout_seconds)

    def _submit(self, rows: list[Row]) -> None:
        """Queue a request's rows; Overloaded when no slot is free and the queue is full."""
        if not rows:  # e.g. a completion of 0 tokens without echo: nothing to run
            return
        with self._wake:
            if self._stopping:
                raise NotReady("the engine is shutting down")
            if self._is_full(places_of(rows)):
                raise Overloaded(
                    f"all {self.settings.max_batch_size} batch slots are busy and "
                    f"{len(self._waiting)} requests are waiting; retry shortly",
                    headers={"Retry-After": str(self.settings.retry_after_seconds)},
                )
            self._waiting.append(deque(rows))
            self.metrics.queue_size.set(len(self._waiting))
            self._wake.notify()

    def _is_full(self, new_places: int) -> bool:
        """Whether a request whose rows may take new_places must be refused (lock held)."""
        waiting = sum(places_of(group) for group in self._waiting)
        free = self.settings.max_batch_size - places_of(self.runner.rows) - waiting
        if free >= new_places or len(self._waiting) < self.settings.max_waiting:
            return False
        # requests whose clients left still hold places until the worker looks: free them
        self._waiting = deque(g for g in self._waiting if not g[0].channel.cancelled)
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
        free = self.settings.max_batch_size - places_of(self.runner.rows)
        admitted: list[Row] = []
        now = time.monotonic()
        while self._waiting:
            group = self._waiting[0]
            row = group[0]
            alone = not self.runner.rows and not admitted
            if row.places > free and not alone and not row.channel.cancelled:
                break
            group.popleft()
            if not group:
                self._waiting.popleft()
            if not row.channel.cancelled:
                admitted.append(row)
                free -= row.places
                self.metrics.queue_time.observe(now - _channel_of(row).submitted)
        self.metrics.queue_size.set(len(self._waiting))
        return admitted

    def _expire_overdue(self) -> None:
        """504 to every request past its deadline with nothing to show: still waiting, or
        reading its input. (A generation that produced tokens stops itself with
        "time_limit".) Its rows leave at once."""
        now = time.monotonic()
        with self._wake:
            firsts = [group[0] for group in self._waiting]  # a request's rows share a channel
        overdue = [
            row
            for row in (*self.runner.rows, *firsts)
            if _channel_of(row).deadline <= now and not row.produced and not row.gone
        ]
        outbox: dict[Channel, object] = {}
        for row in overdue:
            seconds = self.settings.request_timeout_seconds
            outbox[_channel_of(row)] = DeadlineExceeded(
                f"no answer within the {seconds:g} s deadline (NEXTWORD_REQUEST_TIMEOUT_SECONDS);"
                " retry with a shorter text or when the server is less busy"
            )
            row.finished = True
            row.channel.cancelled = True  # the request's other rows leave too
            if isinstance(row, GenerateRow):
                self.metrics.sequences_finished("timeout").inc()
        send(list(outbox.items()))

    def _drop_gone(self) -> None:
        """Take finished and abandoned rows (and their state columns) out of the batch."""
        rows = self.runner.rows
        keep = [i for i, row in enumerate(rows) if not row.gone]
        if len(keep) == len(rows):
            return
        for row in rows:
            if not row.finished and row.channel.cancelled and isinstance(row, GenerateRow):
                self.metrics.sequences_finished("cancelled").inc()
        self.runner.keep(keep)
        self.metrics.batch_size.set(len(self.runner.rows))

    def _finish_all(self, error: ServiceError, reason: str) -> None:
        """End every running and waiting sequence with error."""
        with self._wake:
            rows = self.runner.rows + [row for group in self._waiting for row in group]
            self._waiting.clear()
        outbox = {_channel_of(row): error for row in rows if not row.gone}
        self.metrics.sequences_finished(reason).inc(
            sum(isinstance(row, GenerateRow) and not row.gone for row in rows)
        )
        send(list(outbox.items()))
        self.runner.keep([])
        self.metrics.queue_size.set(0)
        self.metrics.batch_size.set(0)

    def _step(self) -> None:
        """One step of the runner; its results go to each request, its counts to metrics."""
        started = time.monotonic()
        batch = len(self.runner.rows)
        outbox = self.runner.step()
        _observe(outbox, self.metrics)
        send([(_channel_of(row), item) for row, item in outbox])
        self.metrics.step_batch_size.observe(batch)
        self.metrics.step_duration.observe(time.monotonic() - started)


def _channel_of(row: Row) -> Channel:
    """The channel of a row the engine made (every engine row has one)."""
    return cast(Channel, row.channel)


def _observe(outbox: Outbox, recorded: metrics.ModelMetrics) -> None:
    """Metrics of one step's generated tokens, into the model's series (recorded): how many,
    how each generation finished, the time to a row's first token and between its tokens."""
    now = time.monotonic()
    timed: set[int] = set()
    produced = 0
    for row, item in outbox:
        produced += isinstance(item, TokenEvent)
        if isinstance(item, FinishEvent):
            recorded.sequences_finished(item.finish_reason).inc()
        if isinstance(row, GenerateRow) and id(row) not in timed:
            timed.add(id(row))  # a row's first token: time to it; later ones: time between
            if row.last_token_at is None:
                recorded.time_to_first_token.observe(now - _channel_of(row).submitted)
            else:
                recorded.time_per_output_token.observe(now - row.last_token_at)
            row.last_token_at = now
    recorded.generated_tokens.inc(produced)
