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

from app import metrics
from app.engine import Engine, Generation
from app.errors import NotFound, ServiceError
from app.sequences import FinishEvent, TokenEvent, TopTokens
from app.settings import Settings
from app.v1.choices import ChoiceText, Delta, PromptScores, echo_delta
from app.v1.errors import openai_error
from app.v1.protocol import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
)

if TYPE_CHECKING:
    from model.tokenizers import EncodedText

log = logging.getLogger(__name__)
SEED_SPACE = 2**64


def check_model(name: str | None, settings: Settings) -> None:
    """NotFound unless name is null or the served model's."""
    served = settings.served_model_name
    if name is not None and name != served:
        raise NotFound(
            f"model: {name!r} is not served here; this server serves {served!r} (GET /v1/models)",
            error_type="model_not_found",
            param="model",
        )


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
    generations: list[Generation] = field(default_factory=list)
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


def _prompt_list(prompt: object) -> list[str | list[int]]:
    """The request's prompts: one text, texts, one list of ids, or lists of ids."""
    if isinstance(prompt, str):
        return [prompt]
    assert isinstance(prompt, list)
    if not prompt or isinstance(prompt[0], int):
        return [prompt]
    return list(prompt)


async def _prepare(body: CompletionRequest, engine: Engine) -> list[_Prompt]:
    """Encode the prompts (limits as everywhere) and score them when echo wants logprobs."""
    given = _prompt_list(body.prompt)
    engine.check_text_count(len(given) * body.n, "prompt (times n)")
    encoded = await engine.encode_prompts(given)
    eos = engine.vocab.eos_id
    reads = [e.after_start(eos) for e in encoded]
    scores: list[PromptScores | None] = [None] * len(given)
    if body.echo and body.logprobs is not None:
        scored = await engine.score_encoded(reads, top_n=body.logprobs)
        for i, (full, read, score) in enumerate(zip(encoded, reads, scored, strict=True)):
            leading = len(full.ids) - len(read.ids)  # 1 with a leading <eos>, else 0
            count = len(read.ids)  # the score's last target, the closing <eos>, is not echoed
            no_top: TopTokens = ()
            tops = list(score.tops[:count]) if score.tops else [no_top] * count
            logprobs: list[float | None] = [None] * leading
            logprobs.extend(score.logprobs[:count])
            scores[i] = PromptScores(logprobs, [no_top] * leading + tops)
    return [
        _Prompt(p if isinstance(p, str) else engine.detokenize(p), full, read, score)
        for p, full, read, score in zip(given, encoded, reads, scores, strict=True)
    ]


async def start_completion(
    body: CompletionRequest, engine: Engine, settings: Settings
) -> _Completion:
    """Check, encode and (with echo and logprobs) score the prompts, then start every choice's
    generation; raises a plain error before anything is answered."""
    check_model(body.model, settings)
    options = body.to_sampling_options()
    engine.check_generation_limits(options, length_field="max_tokens")
    prompts = await _prepare(body, engine)
    completion = _Completion(body, prompts, tuple(options.stop), settings.served_model_name)
    if options.max_new_tokens == 0:
        return completion
    try:
        for prompt in prompts:
            for j in range(body.n):
                seed = None if options.seed is None else (options.seed + j) % SEED_SPACE
                generation = engine.generate_encoded(prompt.read, replace(options, seed=seed))
                completion.generations.append(generation)
    except BaseException:
        completion.cancel()
        raise
    return completion


async def _merge(generations: Sequence[Generation]) -> AsyncIterator[tuple[int, object]]:
    """(choice index, event) of every generation as they come, until each has finished; an
    error of any raises here."""
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue()

    async def pump(index: int, generation: Generation) -> None:
        try:
            async for event in generation:
                await queue.put((index, event))
        except Exception as error:  # noqa: BLE001 - handed to the consumer, who raises it
            await queue.put((index, error))

    tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(generations)]
    try:
        remaining = len(generations)
        while remaining:
            index, item = await queue.get()
            if isinstance(item, Exception):
                raise item
            remaining -= isinstance(item, FinishEvent)
            yield index, item
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
    async for index, event in _merge(completion.generations):
        if isinstance(event, TokenEvent):
            yield index, texts[index].add(event)
        else:
            assert isinstance(event, FinishEvent)
            completion.completion_tokens += event.generated_tokens + (event.end is not None)
            yield index, texts[index].finish(event)


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


async def stream(completion: _Completion) -> AsyncIterator[str]:
    """The completion as server-sent events: a chunk per delta that holds something, the usage
    chunk if asked for, then [DONE]; an error mid-stream is an event of OpenAI's error body. A
    client that leaves cancels this iterator, and so the generations."""
    body = completion.body
    try:
        async for index, delta in _deltas(completion):
            if delta.text or delta.finish_reason or (delta.logprobs and delta.logprobs.tokens):
                yield _event(_response(completion, [_choice(index, delta)]))
        if body.stream_options is not None and body.stream_options.include_usage:
            chunk = _response(completion, [])
            chunk.usage = _usage(completion)
            yield _event(chunk)
    except ServiceError as error:
        metrics.ERRORS.labels(error.error_type).inc()
        yield f"data: {json.dumps(openai_error(error)[1])}\n\n"
    except Exception:
        log.exception("completion failed mid-stream")
        failure = ServiceError("internal error while generating (see server log)")
        metrics.ERRORS.labels(failure.error_type).inc()
        yield f"data: {json.dumps(openai_error(failure)[1])}\n\n"
    finally:
        completion.cancel()
    yield "data: [DONE]\n\n"


def _event(chunk: CompletionResponse) -> str:
    return f"data: {chunk.model_dump_json()}\n\n"
