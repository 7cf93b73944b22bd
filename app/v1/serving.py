"""/v1/completions between the HTTP layer and the engine: prompts to encoded texts, parameters
to generation options, the engine's events to choices (whole, or as stream chunks).

Every text is read from the start state, the state after <eos>, as in training. With echo and
logprobs, a prompt token's entry is its log-probability after what precedes it (the first one
after that start state), scored by the engine as /perplexity scores a text; a prompt that
itself begins with <eos> (as lm-evaluation-harness's rolling windows do) begins at that start
state, and that <eos> entry is null. Scoring and generating read the prompt separately: an
RNN reads a prompt in a few batched steps, so this costs little and keeps each path simple.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from app.engine import Engine, GenerationStream, TextScore
from app.errors import ServiceError
from app.streaming import event_stream
from app.v1.choices import ChoiceText, Delta, PromptScores, echo_delta
from app.v1.errors import openai_error
from app.v1.protocol import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
)
from model.rows import Generated, TopTokens
from model.sampling import SEED_SPACE, SamplingOptions

if TYPE_CHECKING:
    from model.tokenizers import EncodedText

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prompt:
    """A prompt ready to complete: the text echo returns, what the model reads after its start
    state, and the echo's logprobs when asked for."""

    text: str
    full: EncodedText  # every token the client gave (a leading <eos> included)
    read: EncodedText  # what follows the start state
    scores: PromptScores | None


@dataclass
class _Completion:
    """A completion request in progress: its prompts and each choice's generation."""

    body: CompletionRequest
    prompts: list[_Prompt]
    stop: tuple[str, ...]
    model: str
    generations: list[GenerationStream] = field(default_factory=list)
    id: str = ""
    created: int = 0
    completion_tokens: int = 0  # so far, a closing <eos> counted as a token

    def __post_init__(self) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    @property
    def n(self) -> int:
        return self.body.n

    def cancel(self) -> None:
        """Take every choice's sequence out of the batch (no-op for finished ones)."""
        for generation in self.generations:
            generation.cancel()


def _echo_scores(full: EncodedText, read: EncodedText, score: TextScore) -> PromptScores:
    """The echoed prompt's logprobs: null for a leading <eos> (the start state), then each
    token's; the score's last target, the closing <eos>, is not echoed."""
    leading = len(full.ids) - len(read.ids)  # 1 with a leading <eos>, else 0
    count = len(read.ids)
    no_top: TopTokens = ()
    tops = list(score.tops[:count]) if score.tops else [no_top] * count
    logprobs: list[float | None] = [None] * leading
    logprobs.extend(score.logprobs[:count])
    return PromptScores(logprobs, [no_top] * leading + tops)


async def start_completion(
    body: CompletionRequest,
    engine: Engine,
    options: SamplingOptions,
    given: Sequence[str | list[int]],
    encoded: Sequence[EncodedText],
) -> _Completion:
    """Hand the engine (of the model body.model names) every choice's generation of the
    prompts given (checked and encoded by the router) with options, and with echo and
    logprobs the prompts' scoring, in one call; raises a plain error before anything is
    answered."""
    reads = [e.after_start(engine.vocab.eos_id) for e in encoded]
    seeds = [
        None if options.seed is None else (options.seed + j) % SEED_SPACE for j in range(body.n)
    ]
    choices = [
        (i, replace(options, seed=seed))
        for i in range(len(given))
        for seed in (seeds if options.max_new_tokens else [])
    ]
    echo_top_n = body.logprobs if body.echo and body.logprobs is not None else None
    scored, generations = await engine.generate(reads, choices, echo_top_n)
    prompts = [
        _Prompt(
            p if isinstance(p, str) else engine.encoder.tokenizer.detokenize(full.tokens),
            full,
            read,
            None if scored is None else _echo_scores(full, read, scored[i]),
        )
        for i, (p, full, read) in enumerate(zip(given, encoded, reads, strict=True))
    ]
    completion = _Completion(body, prompts, tuple(options.stop), engine.name)
    completion.generations.extend(generations)
    return completion


async def _merge(generations: Sequence[GenerationStream]) -> AsyncIterator[tuple[int, Generated]]:
    """(choice index, step) of every generation as they come, until each has finished; an
    error of any raises here."""
    queue: asyncio.Queue[tuple[int, Generated] | Exception] = asyncio.Queue()

    async def pump(index: int, generation: GenerationStream) -> None:
        try:
            async for step in generation:
                await queue.put((index, step))
        except Exception as error:  # noqa: BLE001 - handed to the consumer, who raises it
            await queue.put(error)

    tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(generations)]
    try:
        remaining = len(generations)
        while remaining:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            remaining -= item[1].finish is not None
            yield item
    finally:
        for task in tasks:
            task.cancel()


async def _deltas(completion: _Completion) -> AsyncIterator[tuple[int, Delta]]:
    """(choice index, delta) of every choice: the echoed prompt first, then what the engine
    generates, each choice's last delta carrying its finish reason."""
    body = completion.body
    with_logprobs = body.logprobs is not None
    texts: list[ChoiceText] = []
    for index in range(len(completion.prompts) * completion.n):
        prompt = completion.prompts[index // completion.n]
        if body.echo:
            entries = prompt.full.entries()
            yield index, echo_delta(prompt.text, prompt.full.tokens, entries, prompt.scores)
        offset = len(prompt.text) if body.echo else 0
        texts.append(ChoiceText(completion.stop, offset, with_logprobs))
    if not completion.generations:  # max_tokens 0: the prompt was all there is
        for index in range(len(texts)):
            yield index, Delta(finish_reason="length")
        return
    async for index, step in _merge(completion.generations):
        if step.token is not None:
            yield index, texts[index].add(step.token)
        if step.finish is not None:
            finish = step.finish
            completion.completion_tokens += finish.generated_tokens + (finish.end is not None)
            yield index, texts[index].finish(finish)


def _usage(completion: _Completion) -> CompletionUsage:
    prompt_tokens = sum(len(p.full.ids) for p in completion.prompts)
    return CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion.completion_tokens,
        total_tokens=prompt_tokens + completion.completion_tokens,
    )


def _response(completion: _Completion, choices: list[CompletionChoice]) -> CompletionResponse:
    return CompletionResponse(
        id=completion.id,
        created=completion.created,
        model=completion.model,
        choices=choices,
        usage=None,
    )


def _choice(index: int, delta: Delta) -> CompletionChoice:
    return CompletionChoice(
        index=index,
        text=delta.text,
        logprobs=delta.logprobs,
        finish_reason=delta.finish_reason,  # type: ignore[arg-type]
    )


async def collect(completion: _Completion) -> CompletionResponse:
    """The whole completion as one answer, choices in index order."""
    try:
        wholes = [Delta() for _ in range(len(completion.prompts) * completion.n)]
        async for index, delta in _deltas(completion):
            wholes[index].extend(delta)
    finally:
        completion.cancel()
    response = _response(completion, [_choice(i, d) for i, d in enumerate(wholes)])
    response.usage = _usage(completion)
    return response


def stream(completion: _Completion) -> AsyncIterator[str]:
    """The completion as server-sent events: a chunk per delta that holds something, the usage
    chunk if asked for, then [DONE]; an error mid-stream is an event of OpenAI's error body
    (app/streaming.py). A client that leaves cancels it, and so the generations."""
    return event_stream(_chunks(completion), _error_data, completion.cancel)


async def _chunks(completion: _Completion) -> AsyncIterator[str]:
    body = completion.body
    async for index, delta in _deltas(completion):
        if delta.text or delta.finish_reason or (delta.logprobs and delta.logprobs.tokens):
            yield _event(_response(completion, [_choice(index, delta)]))
    if body.stream_options is not None and body.stream_options.include_usage:
        chunk = _response(completion, [])
        chunk.usage = _usage(completion)
        yield _event(chunk)


def _error_data(error: ServiceError) -> str:
    return json.dumps(openai_error(error)[1])


def _event(chunk: CompletionResponse) -> str:
    return f"data: {chunk.model_dump_json()}\n\n"
