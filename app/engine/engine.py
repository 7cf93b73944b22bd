"""The engine's request API: what the HTTP layer calls, one call per request. Each call builds
its request's rows (model/rows.py), submits them to the scheduler (app/engine/scheduler.py) and
awaits their results (app/engine/results.py).

Requests arrive already validated and encoded by the HTTP layer (app/limits.py); no HTTP here,
and no request limits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import torch

from app import metrics
from app.engine.channels import Channel
from app.engine.results import GenerationStream, TextScore, collect_scores
from app.engine.scheduler import Scheduler, Seat
from app.settings import Settings
from model.checkpoint import Checkpoint, load_direction
from model.decoding import Decoding
from model.fill_blank import Gap, Proposer
from model.rows import BlankLines, BlankRow, GenerateRow, Prediction, PredictRow, Scored, ScoreRow
from model.runner import Runner
from model.sampling import SEED_SPACE, SamplingOptions
from model.served import load_served_model
from model.tokenizers import EncodedText, TextEncoder, build_tokenizer


class Engine:
    """One model served under settings.served_model_name (the name its metrics carry): its
    encoder, its Runner, and the scheduler that runs every request's rows on it."""

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
        self.scheduler = Scheduler(self.runner, settings, self.metrics)

    # -- life cycle ------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load the served model the settings name (model_dir, device, quantize) and check that
        one forward works. Blocking; raises CheckpointError with the reason."""
        if settings.threads:
            torch.set_num_threads(settings.threads)
        checkpoint = load_served_model(settings.model_dir, settings.device, settings.quantize)
        engine = cls(checkpoint, settings)
        engine.runner.warm_up()
        return engine

    def start(self) -> None:
        """Start the worker thread."""
        self.scheduler.start(self.name)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; sequences still waiting or running get a NotReady error."""
        self.scheduler.stop(timeout)

    @property
    def running(self) -> bool:
        """Whether the worker accepts and runs sequences."""
        return self.scheduler.running

    # -- what the HTTP layer calls: one call per request -------------------------------------
    async def predict_next(
        self, text: EncodedText, top_k: int, cache: bool = True, every_word: bool = False
    ) -> Prediction:
        """The top_k most probable next tokens after text (<unk> is never offered); with the
        checkpoint's cache pointer unless cache is False. With every_word, also the exact
        log-probability of every vocabulary entry there."""
        channel: Channel[Prediction] = self.scheduler.channel()
        new_cache = self.runner.new_cache(cache)
        row = PredictRow(text.ids, self.vocab.eos_id, top_k, new_cache, every_word)
        self.scheduler.submit([(row, channel)])
        try:
            return await channel.get()
        finally:
            channel.cancelled = True

    async def score(
        self, texts: Sequence[EncodedText], top_n: int = 0, cache: bool = True
    ) -> list[TextScore]:
        """Per-target log-probabilities and perplexity of each text, each read from the start
        state: the figures of model.evaluate (with the checkpoint's context and cache, unless
        cache is False), whatever else shares the batch. With top_n, each target also gets the
        top_n most probable tokens at its place (one full output layer per position: dearer)."""
        channel: Channel[Scored] = self.scheduler.channel()
        self.scheduler.submit(self._score_seats(texts, channel, top_n, cache))
        return await self._scores(texts, channel)

    async def fill_lines(self, gap: Gap, proposer: Proposer) -> BlankLines:
        """The words this (forward) model proposes at the blank and the per-target
        log-probabilities of each line filled with a word proposer chooses, without the cache
        pointer: the left side is read once, its state continued by every line, all lines one
        batch (model/rows.py's BlankRow). The figures are score()'s for each line."""
        channel: Channel[BlankLines] = self.scheduler.channel()
        row = BlankRow(gap.left, gap.right, self.vocab.eos_id, proposer)
        self.scheduler.submit([(row, channel)])
        try:
            lines = await channel.get()
        finally:
            channel.cancelled = True
        self.metrics.scored_tokens.inc(sum(len(line) for line in lines.logprobs))
        return lines

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
        score_channel: Channel[Scored] | None = None
        seats: list[Seat] = []
        if score_top_n is not None:
            score_channel = self.scheduler.channel()
            seats = self._score_seats(prompts, score_channel, score_top_n, cache=True)
        streams = []
        for index, options in choices:
            channel = self.scheduler.channel()
            seats.append((self._generate_row(prompts[index], options, channel), channel))
            streams.append(GenerationStream(channel))
        self.scheduler.submit(seats)
        self.metrics.prompt_tokens.inc(sum(len(prompts[index].ids) for index, _ in choices))
        if score_channel is None:
            return None, streams
        try:
            return await self._scores(prompts, score_channel), streams
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise

    # -- a request's rows and results ------------------------------------------------------------
    def _score_seats(
        self, texts: Sequence[EncodedText], channel: Channel[Scored], top_n: int, cache: bool
    ) -> list[Seat]:
        eos = self.vocab.eos_id
        return [
            (ScoreRow(text.ids, eos, i, top_n, self.runner.new_cache(cache)), channel)
            for i, text in enumerate(texts)
        ]

    def _generate_row(
        self, prompt: EncodedText, options: SamplingOptions, channel: Channel[object]
    ) -> GenerateRow:
        if options.seed is None:  # a random one, returned with the text so it can be replayed
            options = replace(options, seed=random.randrange(SEED_SPACE))
        eos, tokenizer = self.vocab.eos_id, self.encoder.tokenizer
        decoding = Decoding(prompt.ids, prompt.tokens, options, eos, tokenizer, channel.deadline)
        return GenerateRow(decoding, len(prompt.ids), self.runner.new_cache(options.cache))

    async def _scores(
        self, texts: Sequence[EncodedText], channel: Channel[Scored]
    ) -> list[TextScore]:
        """Each text's score as its rows finish, in the order given; counted in the
        scored-tokens metric."""
        try:
            scores = await collect_scores(channel, texts)
        finally:
            channel.cancelled = True
        self.metrics.scored_tokens.inc(sum(len(score.logprobs) for score in scores))
        return scores
