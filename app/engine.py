"""The inference engine: owns the model, the recurrent state of every active sequence, and the
batching. No HTTP here; the routes call the async methods at the bottom.

Continuous batching over recurrent state. A sequence's state has a fixed size, so all active
sequences live as rows of one state tensor (S, L, B, H) and a worker thread runs, step after
step, one batched forward for all of them:

    step:  drop rows that finished or whose client left  →  admit waiting rows (zero state)
           →  each row reads its next tokens (a prompt chunk, or the token it just sampled)
           →  one forward  →  scores / next-token distributions  →  sample every generating
           row at once with its own parameters and seeded generator  →  results to the loop

Nothing is ever read twice: a generated token costs one step of the recurrent layer and one
output layer pass, however long the text before it. Torch work runs only on that thread,
never on the event loop; results travel back with one call_soon_threadsafe per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from app import metrics
from app.errors import (
    DeadlineExceeded,
    InvalidRequest,
    NotReady,
    Overloaded,
    ServiceError,
    TooLarge,
)
from app.sequences import (
    Channel,
    FinishEvent,
    GenerateRow,
    PredictRow,
    Row,
    ScoreRow,
    TokenEvent,
    TopTokens,
)
from app.settings import Settings
from model.checkpoint import (
    Checkpoint,
    load_cache_scope,
    load_checkpoint,
    load_inference_config,
)
from model.decoding import Decoding, choose_tokens
from model.forward import chunk_target_log_probs, forward_rows
from model.pointer_cache import PointerCache, mix_rows
from model.quantize import quantize_int8
from model.sampling import SamplingOptions
from model.scoring import perplexity_of
from model.tokenizers import (
    EncodedText,
    build_tokenizer,
    encode_document,
    encode_text,
    encode_text_with_specials,
)
from model.vocab import EOS, UNK

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A possible next token; end_of_text marks <eos>."""

    token: str
    logprob: float
    end_of_text: bool


@dataclass(frozen=True)
class Prediction:
    """A text as the model read it and its most probable next tokens, best first."""

    text: EncodedText
    candidates: list[Candidate]


@dataclass(frozen=True)
class TextScore:
    """How well the model predicts a text: one log-probability per target (its tokens, then the
    closing <eos>), pooled as in model.evaluate."""

    text: EncodedText
    logprobs: list[float]
    perplexity: float
    mean_nll: float
    tops: Sequence[TopTokens] = ()  # per target, when asked for

    @property
    def targets(self) -> list[tuple[str, bool]]:
        """(token, out of vocabulary) of each target, in order: the text's tokens, then <eos>."""
        return [*zip(self.text.tokens, self.text.oov, strict=True), (EOS, False)]


class Generation:
    """The events of one generation as they come: TokenEvents, then one FinishEvent. cancel()
    (or a cancelled await) takes the sequence out of the batch at the next step."""

    def __init__(self, channel: Channel):
        self._channel = channel
        self._done = False

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> TokenEvent | FinishEvent:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._channel.get()
        except BaseException:
            self.cancel()
            raise
        assert isinstance(event, TokenEvent | FinishEvent)
        self._done = isinstance(event, FinishEvent)
        return event

    def cancel(self) -> None:
        """Leave the batch (no-op once finished)."""
        self._done = True
        self._channel.cancelled = True


class Engine:
    """Batches every request's sequences through one model on one worker thread."""

    def __init__(self, checkpoint: Checkpoint, settings: Settings):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.vocab = checkpoint.vocab
        self.tokenizer = build_tokenizer(checkpoint.tokenizer_spec)
        self.eos_token, self.unk_token = EOS, UNK  # the special tokens, as clients write them
        # how the checkpoint reads a text of several lines best (model.evaluate.tune_cache): as one
        # document or each line from the start state; the cache pointer's settings, if it has
        # one, and whether its cache starts empty at every line or once per text
        self.context, self.cache_config = load_inference_config(checkpoint)
        self.cache_scope = load_cache_scope(checkpoint)
        self.settings = settings
        self._wake = threading.Condition()
        self._waiting: deque[deque[Row]] = deque()  # one inner deque per request
        self._rows: list[Row] = []  # the batch; row i is column i of the state
        self._state = self.model.init_state(0)  # (S, L, B, H)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load the checkpoint the settings name (quantised if asked) and check that one
        forward works. Blocking; raises CheckpointError with the reason."""
        if settings.threads:
            torch.set_num_threads(settings.threads)
        checkpoint = load_checkpoint(settings.model_dir, settings.device)
        if settings.quantize == "int8":
            checkpoint.model = quantize_int8(checkpoint.model)
        engine = cls(checkpoint, settings)
        engine._warm_up()
        return engine

    @torch.inference_mode()
    def _warm_up(self) -> None:
        """One single-token forward and output layer: proves the model runs."""
        features, _ = forward_rows(self.model, [[self.vocab.eos_id]], self.model.init_state(1))
        probabilities = self.model.log_probs(features[:, -1]).exp().sum()
        if not abs(float(probabilities) - 1.0) < 1e-3:
            raise RuntimeError(f"the model's next-token probabilities sum to {probabilities}")

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="nextword-engine", daemon=True)
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

    # -- the API the routes call --------------------------------------------------------------
    async def predict_next(self, text: str, top_k: int, cache: bool = True) -> Prediction:
        """The top_k most probable next tokens after text (<unk> is never offered); with the
        checkpoint's cache pointer unless cache is False."""
        (encoded,) = await self._encode([text])
        channel = self._channel()
        row_cache = self._new_cache(cache)
        self._submit([PredictRow(encoded.ids, self.vocab.eos_id, top_k, channel, row_cache)])
        try:
            candidates = await channel.get()
        finally:
            channel.cancelled = True
        assert isinstance(candidates, list)
        return Prediction(encoded, candidates)

    async def score(self, texts: Sequence[str], cache: bool = True) -> list[TextScore]:
        """Per-target log-probabilities and perplexity of each text, each read from the start
        state: the figures of model.evaluate (with the checkpoint's context and cache, unless
        cache is False), whatever else shares the batch."""
        self.check_text_count(len(texts), "texts")
        return await self.score_encoded(await self._encode(texts), cache=cache)

    async def score_encoded(
        self, encoded: Sequence[EncodedText], top_n: int = 0, cache: bool = True
    ) -> list[TextScore]:
        """score() of texts already encoded; with top_n, each target also gets the top_n most
        probable tokens at its place (one full output layer per position: dearer)."""
        channel = self._channel()
        eos = self.vocab.eos_id
        self._submit(
            [
                ScoreRow(e.ids, eos, i, channel, top_n, self._new_cache(cache))
                for i, e in enumerate(encoded)
            ]
        )
        results: list[tuple[torch.Tensor, list[TopTokens]]] = [(torch.empty(0), [])] * len(encoded)
        try:
            for _ in encoded:
                result = await channel.get()
                assert isinstance(result, tuple)
                index, scores, tops = result
                results[index] = (scores, tops)
        finally:
            channel.cancelled = True
        metrics.SCORED_TOKENS.inc(sum(s.numel() for s, _ in results))
        return [_text_score(e, s, t) for e, (s, t) in zip(encoded, results, strict=True)]

    def check_text_count(self, count: int, field: str) -> None:
        """TooLarge when a request holds more texts than NEXTWORD_MAX_TEXTS allows."""
        if count > self.settings.max_texts:
            raise TooLarge(
                f"{field} holds {count} texts; the limit is {self.settings.max_texts} "
                "(NEXTWORD_MAX_TEXTS)"
            )

    async def encode_prompts(self, prompts: Sequence[str | Sequence[int]]) -> list[EncodedText]:
        """Prompts given as text or as token ids, as the model reads them, under the same
        limits as every text. In text, "<eos>" and "<unk>" are read as those tokens (one id
        each), so that a client's own tokenization and ours agree."""
        texts = [p for p in prompts if isinstance(p, str)]
        encoded = iter(await self._encode(texts, encode_text_with_specials))
        results = [next(encoded) if isinstance(p, str) else self._from_ids(p) for p in prompts]
        self._check_token_counts(results)
        return results

    def _from_ids(self, ids: Sequence[int], field: str = "prompt") -> EncodedText:
        """A text given as token ids (InvalidRequest for an id outside the vocabulary)."""
        size = len(self.vocab)
        wrong = [i for i in ids if not 0 <= i < size]
        if wrong:
            raise InvalidRequest(
                f"{field}: token id {wrong[0]} is not in the vocabulary (ids 0 to {size - 1})",
                param=field,
            )
        tokens = self.vocab.decode(ids)
        return EncodedText(tokens, list(ids), [i == self.vocab.unk_id for i in ids])

    def detokenize(self, ids: Sequence[int]) -> str:
        """Readable text of token ids, special tokens written as "<eos>" and "<unk>"
        (InvalidRequest for an id outside the vocabulary)."""
        return self.tokenizer.detokenize(self._from_ids(ids, "tokens").tokens)

    async def generate(self, prompt: str, options: SamplingOptions) -> Generation:
        """Start continuing prompt; raises at once (too large, overloaded, not ready) before
        any token, so that the caller can still answer with a plain error."""
        self.check_generation_limits(options)
        (encoded,) = await self._encode([prompt])
        return self.generate_encoded(encoded, options)

    def generate_encoded(self, encoded: EncodedText, options: SamplingOptions) -> Generation:
        """generate() of a prompt already encoded, whose options passed
        check_generation_limits."""
        channel = self._channel()
        eos = self.vocab.eos_id
        if options.seed is None:  # a random one, returned with the text so it can be replayed
            options = replace(options, seed=random.randrange(2**63))
        decoding = Decoding(
            encoded.ids, encoded.tokens, options, eos, self.tokenizer, channel.deadline
        )
        row_cache = self._new_cache(options.cache)
        self._submit([GenerateRow(decoding, len(encoded.ids), eos, channel, row_cache)])
        metrics.PROMPT_TOKENS.inc(len(encoded.ids))
        return Generation(channel)

    def check_generation_limits(
        self, options: SamplingOptions, length_field: str = "max_new_tokens"
    ) -> None:
        """InvalidRequest naming the field and the setting when options pass a configured
        limit (the schema holds the fixed ones); length_field: the request's name for
        max_new_tokens."""
        settings = self.settings
        if options.max_new_tokens > settings.max_new_tokens:
            raise InvalidRequest(
                f"{length_field}: must be at most {settings.max_new_tokens} "
                "(NEXTWORD_MAX_NEW_TOKENS)",
                param=length_field,
            )
        if len(options.stop) > settings.max_stop_strings:
            raise InvalidRequest(
                f"stop: at most {settings.max_stop_strings} stop strings, got "
                f"{len(options.stop)} (NEXTWORD_MAX_STOP_STRINGS)",
                param="stop",
            )
        longest = max((len(s) for s in options.stop), default=0)
        if longest > settings.max_stop_chars:
            raise InvalidRequest(
                f"stop: a stop string is {longest} characters long; the limit is "
                f"{settings.max_stop_chars} (NEXTWORD_MAX_STOP_CHARS)",
                param="stop",
            )

    def _new_cache(self, wanted: bool) -> PointerCache | None:
        """A fresh cache for one row, if the checkpoint has one and the request wants it."""
        if self.cache_config is None or not wanted:
            return None
        return PointerCache(self.cache_config, self.model.config.feature_size, self.vocab.unk_id)

    @property
    def cache_bytes_per_row(self) -> int:
        """The most memory one row's cache can take (0 without a cache)."""
        if self.cache_config is None:
            return 0
        return self.cache_config.max_bytes(self.model.config.feature_size)

    # -- submission (event loop side) ---------------------------------------------------------
    async def _encode(
        self, texts: Sequence[str], encode: Callable[..., EncodedText] = encode_text
    ) -> list[EncodedText]:
        """Tokenize texts off the event loop (with encode(tokenizer, vocab, text)), enforcing
        the character and token limits. A text of several lines becomes its lines joined by
        <eos>, as a split is read; the context then decides whether each line starts from the
        start state."""
        encode = functools.partial(encode_document, encode)
        limit = self.settings.max_text_chars
        for text in texts:
            if len(text) > limit:
                raise TooLarge(
                    f"a text is {len(text)} characters long; the limit is {limit} "
                    "(NEXTWORD_MAX_TEXT_CHARS)"
                )
        encoded = await asyncio.to_thread(
            lambda: [encode(self.tokenizer, self.vocab, t) for t in texts]
        )
        self._check_token_counts(encoded)
        return encoded

    def _check_token_counts(self, encoded: Sequence[EncodedText]) -> None:
        """TooLarge for a text over NEXTWORD_MAX_TEXT_TOKENS."""
        limit = self.settings.max_text_tokens
        for item in encoded:
            if len(item.ids) > limit:
                raise TooLarge(
                    f"a text has {len(item.ids)} tokens; the limit is {limit} "
                    "(NEXTWORD_MAX_TEXT_TOKENS)"
                )

    def _channel(self) -> Channel:
        if not self.running:
            raise NotReady("the engine is not running (starting or shutting down)")
        return Channel(asyncio.get_running_loop(), self.settings.request_timeout_seconds)

    def _submit(self, rows: list[Row]) -> None:
        """Queue a request's rows; Overloaded when no slot is free and the queue is full."""
        if self.context == "line" or self.cache_scope == "line":
            for row in rows:
                row.read_line_by_line(self.vocab.eos_id)
        with self._wake:
            if self._stopping:
                raise NotReady("the engine is shutting down")
            if self._is_full(len(rows)):
                raise Overloaded(
                    f"all {self.settings.max_batch_size} batch slots are busy and "
                    f"{len(self._waiting)} requests are waiting; retry shortly",
                    headers={"Retry-After": str(self.settings.retry_after_seconds)},
                )
            self._waiting.append(deque(rows))
            metrics.QUEUE_SIZE.set(len(self._waiting))
            self._wake.notify()

    def _is_full(self, new_rows: int) -> bool:
        """Whether a request of new_rows rows must be refused (lock held)."""
        waiting_rows = sum(len(group) for group in self._waiting)
        free = self.settings.max_batch_size - len(self._rows) - waiting_rows
        if free >= new_rows or len(self._waiting) < self.settings.max_waiting:
            return False
        # requests whose clients left still hold places until the worker looks: free them
        self._waiting = deque(g for g in self._waiting if not g[0].channel.cancelled)
        metrics.QUEUE_SIZE.set(len(self._waiting))
        return len(self._waiting) >= self.settings.max_waiting

    # -- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        """Step until stopped; then fail whatever is left."""
        while self._next_batch():
            try:
                self._step()
            except Exception:
                log.exception(
                    "engine step failed; dropping the %d sequences in it", len(self._rows)
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
                if admitted or self._rows:
                    break
                self._wake.wait()
        if admitted:
            self._state = torch.cat([self._state, self.model.init_state(len(admitted))], dim=2)
            self._rows.extend(admitted)
        metrics.BATCH_SIZE.set(len(self._rows))
        return True

    def _admit(self) -> list[Row]:
        """Waiting rows that fit in the batch, oldest request first (lock held)."""
        free = self.settings.max_batch_size - len(self._rows)
        admitted: list[Row] = []
        now = time.monotonic()
        while self._waiting and free > len(admitted):
            group = self._waiting[0]
            row = group.popleft()
            if not group:
                self._waiting.popleft()
            if not row.channel.cancelled:
                admitted.append(row)
                metrics.QUEUE_TIME.observe(now - row.channel.submitted)
        metrics.QUEUE_SIZE.set(len(self._waiting))
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
            for row in (*self._rows, *firsts)
            if row.channel.deadline <= now and not row.produced and not row.gone
        ]
        outbox: dict[Channel, object] = {}
        for row in overdue:
            seconds = self.settings.request_timeout_seconds
            outbox[row.channel] = DeadlineExceeded(
                f"no answer within the {seconds:g} s deadline (NEXTWORD_REQUEST_TIMEOUT_SECONDS);"
                " retry with a shorter text or when the server is less busy"
            )
            row.finished = True
            row.channel.cancelled = True  # the request's other rows leave too
            if isinstance(row, GenerateRow):
                metrics.SEQUENCES_FINISHED.labels("timeout").inc()
        _send(list(outbox.items()))

    def _drop_gone(self) -> None:
        """Take finished and abandoned rows (and their state columns) out of the batch."""
        keep = [i for i, row in enumerate(self._rows) if not row.gone]
        if len(keep) == len(self._rows):
            return
        for row in self._rows:
            if not row.finished and row.channel.cancelled and isinstance(row, GenerateRow):
                metrics.SEQUENCES_FINISHED.labels("cancelled").inc()
        self._rows = [self._rows[i] for i in keep]
        self._state = self._state[:, :, keep]
        metrics.BATCH_SIZE.set(len(self._rows))

    def _finish_all(self, error: ServiceError, reason: str) -> None:
        """End every running and waiting sequence with error."""
        with self._wake:
            rows = self._rows + [row for group in self._waiting for row in group]
            self._waiting.clear()
        outbox = {row.channel: error for row in rows if not row.gone}
        metrics.SEQUENCES_FINISHED.labels(reason).inc(
            sum(isinstance(row, GenerateRow) and not row.gone for row in rows)
        )
        _send(list(outbox.items()))
        self._rows = []
        self._state = self.model.init_state(0)
        metrics.QUEUE_SIZE.set(0)
        metrics.BATCH_SIZE.set(0)

    @torch.inference_mode()
    def _step(self) -> None:
        """One batched forward over every row, then what each row wants from it."""
        started = time.monotonic()
        rows = self._rows
        self._start_lines(rows)
        starts = [row.position for row in rows]
        chunks = [row.next_chunk(self.settings.prefill_chunk) for row in rows]
        features, self._state = forward_rows(self.model, chunks, self._state)  # (B, T, D)
        for i, row in enumerate(rows):
            if row.cache is not None and not isinstance(row, ScoreRow):
                row.remember(features[i, : len(chunks[i])], chunks[i])
        outbox: list[tuple[Channel, object]] = []
        scoring = [i for i, row in enumerate(rows) if isinstance(row, ScoreRow)]
        if scoring:
            self._score_rows(rows, scoring, starts, chunks, features, outbox)
        wanting = [
            i for i, row in enumerate(rows) if row.caught_up and not isinstance(row, ScoreRow)
        ]
        if wanting:
            last = torch.tensor([len(chunks[i]) - 1 for i in wanting])
            log_probs = self._with_caches(
                [rows[i] for i in wanting],
                features[wanting, last],
                self.model.log_probs(features[wanting, last]).float().cpu(),  # (N, V)
            )
            predicting = [j for j, i in enumerate(wanting) if isinstance(rows[i], PredictRow)]
            generating = [j for j, i in enumerate(wanting) if isinstance(rows[i], GenerateRow)]
            if predicting:
                self._predict_rows(
                    [rows[wanting[j]] for j in predicting], log_probs[predicting], outbox
                )
            if generating:
                self._sample_rows(
                    [rows[wanting[j]] for j in generating], log_probs[generating], outbox
                )
        _send(outbox)
        metrics.STEP_BATCH_SIZE.observe(len(rows))
        metrics.STEP_DURATION.observe(time.monotonic() - started)

    def _start_lines(self, rows: Sequence[Row]) -> None:
        """Rows about to read a new line of their text: under line context it starts from the
        start state, and under a line-scoped cache with an empty cache."""
        starting = [i for i, row in enumerate(rows) if row.at_line_start]
        for i in starting:
            rows[i].start_line(clear_cache=self.cache_scope == "line")
        if starting and self.context == "line":
            self._state[:, :, starting] = 0.0

    def _score_rows(
        self,
        rows: list[Row],
        scoring: list[int],
        starts: list[int],
        chunks: list[list[int]],
        features: torch.Tensor,
        outbox: list[tuple[Channel, object]],
    ) -> None:
        """Log-probabilities of the targets the scoring rows just read, in one output-layer
        call; a row whose text is read sends (index, scores) to its request."""
        targets = []
        for i in scoring:
            row = rows[i]
            assert isinstance(row, ScoreRow)
            targets.append(row.targets[starts[i] : starts[i] + len(chunks[i])])
        pieces = chunk_target_log_probs(self.model, features[scoring], targets)
        for i, piece, chunk_targets in zip(scoring, pieces, targets, strict=True):
            row = rows[i]
            assert isinstance(row, ScoreRow)
            if row.cache is not None:
                row_features = features[i, : len(chunk_targets)].float().cpu()
                piece = row.cache.score_targets(row_features, piece, torch.tensor(chunk_targets))
            tops: list[TopTokens] = []
            if row.top_n:
                row_log_probs = self.model.log_probs(features[i, : len(chunks[i])])  # (T, V)
                tops = self._top_tokens(row_log_probs, row.top_n)
            if row.add_scores(piece, tops):
                outbox.append((row.channel, (row.index, torch.cat(row.scores), row.tops)))

    @staticmethod
    def _with_caches(
        rows: Sequence[Row], features: torch.Tensor, log_probs: torch.Tensor
    ) -> torch.Tensor:
        """Next-token log-distributions (N, V) of rows that read features (N, D): mixed with
        each row's own cache where it has one, the model's alone elsewhere."""
        cached = [j for j, row in enumerate(rows) if row.cache is not None]
        caches = [rows[j].cache for j in cached]
        if len(cached) == len(rows):  # every row: mixed in place, no copy of the (N, V) block
            return mix_rows(caches, features.float().cpu(), log_probs.float().cpu())  # type: ignore[arg-type]
        if cached:
            log_probs[cached] = mix_rows(
                caches,  # type: ignore[arg-type]
                features[cached].float().cpu(),
                log_probs[cached],
            )
        return log_probs

    def _top_tokens(self, log_probs: torch.Tensor, k: int) -> list[TopTokens]:
        """The k most probable tokens of each row of log_probs (N, V), with their logprobs."""
        values, ids = log_probs.float().cpu().topk(min(k, log_probs.size(-1)), dim=-1)
        itos = self.vocab.itos
        return [
            tuple((itos[i], v) for i, v in zip(row_ids, row_values, strict=True))
            for row_ids, row_values in zip(ids.tolist(), values.tolist(), strict=True)
        ]

    def _predict_rows(
        self, rows: list[Row], log_probs: torch.Tensor, outbox: list[tuple[Channel, object]]
    ) -> None:
        """The top-k candidates of each predicting row (<unk> excluded); the row is done."""
        log_probs = log_probs.clone()
        log_probs[:, self.vocab.unk_id] = float("-inf")
        widest = min(
            max(row.top_k for row in rows if isinstance(row, PredictRow)), len(self.vocab) - 1
        )
        values, ids = log_probs.topk(widest, dim=-1)  # (N, k)
        for row, row_values, row_ids in zip(rows, values.tolist(), ids.tolist(), strict=True):
            assert isinstance(row, PredictRow)
            candidates = [
                Candidate(self.vocab.itos[i], v, i == self.vocab.eos_id)
                for v, i in zip(row_values[: row.top_k], row_ids[: row.top_k], strict=True)
            ]
            row.finished = True
            outbox.append((row.channel, candidates))

    def _sample_rows(
        self, rows: list[Row], log_probs: torch.Tensor, outbox: list[tuple[Channel, object]]
    ) -> None:
        """Next token of every generating row at once, each with its own parameters and
        generator; the events go to each row's request."""
        generating = [row for row in rows if isinstance(row, GenerateRow)]
        chosen, chosen_logprobs = choose_tokens(
            log_probs, [row.decoding for row in generating], self.vocab.unk_id
        )
        tops: list[TopTokens] = [()] * len(generating)
        asking = [j for j, row in enumerate(generating) if row.options.top_logprobs]
        if asking:
            widest = max(generating[j].options.top_logprobs for j in asking)
            for j, top in zip(asking, self._top_tokens(log_probs[asking], widest), strict=True):
                tops[j] = top[: generating[j].options.top_logprobs]
        now = time.monotonic()
        produced = 0
        for row, token_id, logprob, top in zip(
            generating, chosen.tolist(), chosen_logprobs.tolist(), tops, strict=True
        ):
            events = row.accept(token_id, self.vocab.itos[token_id], logprob, top)
            outbox.extend((row.channel, event) for event in events)
            produced += isinstance(events[0], TokenEvent)
            _observe_token_time(row, now)
            if row.finished:
                finish = events[-1]
                assert isinstance(finish, FinishEvent)
                metrics.SEQUENCES_FINISHED.labels(finish.finish_reason).inc()
        metrics.GENERATED_TOKENS.inc(produced)


def _observe_token_time(row: GenerateRow, now: float) -> None:
    """Time to first token for a row's first token, time per output token after it."""
    if row.last_token_at is None:
        metrics.TIME_TO_FIRST_TOKEN.observe(now - row.channel.submitted)
    else:
        metrics.TIME_PER_OUTPUT_TOKEN.observe(now - row.last_token_at)
    row.last_token_at = now


def _send(outbox: Sequence[tuple[Channel, object]]) -> None:
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


def _text_score(text: EncodedText, logprobs: torch.Tensor, tops: Sequence[TopTokens]) -> TextScore:
    """The figures of one scored text, pooled exactly as model.evaluate pools a split."""
    perplexity, count = perplexity_of([logprobs])
    mean_nll = -float(logprobs.double().sum()) / count
    return TextScore(text, logprobs.tolist(), perplexity, mean_nll, tops)
