"""What the engine answers with (app/engine/results.py): a scored text pooled exactly as
model.scoring pools a split, and a generation's events until its FinishEvent."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch

from app.engine.channels import Channel
from app.engine.results import GenerationStream, collect_scores, text_score
from app.errors import NotReady
from model.rows import FinishEvent, Generated, Scored, TokenEvent
from model.scoring import perplexity_of
from model.tokenizers import EncodedText


def test_text_score_pools_as_perplexity_of() -> None:
    text = EncodedText(["我", "爱", "魑魅"], [5, 6, 1], [False, False, True])
    logprobs = -torch.rand(4, generator=torch.Generator().manual_seed(3)) * 8  # float32
    score = text_score(text, logprobs, ())
    expected, count = perplexity_of([logprobs])
    assert count == 4 and score.perplexity == expected
    assert score.mean_nll == pytest.approx(-float(logprobs.double().mean()), rel=1e-12)
    assert score.perplexity == pytest.approx(math.exp(score.mean_nll), rel=1e-12)
    assert score.logprobs == logprobs.tolist() and score.tops == ()
    assert score.targets == [("我", False), ("爱", False), ("魑魅", True), ("<eos>", False)]


def test_generation_stream_yields_steps_until_the_finish_then_stops() -> None:
    first = Generated(TokenEvent(7, "我", "我", -1.5))
    last = Generated(None, FinishEvent("我", "length", 1, 2, 1))

    async def run() -> tuple[list[Generated], Channel[Generated]]:
        channel: Channel[Generated] = Channel(asyncio.get_running_loop(), 60.0)
        after = Generated(TokenEvent(8, "爱", "爱", -1.0))  # nothing after the finish
        for item in (first, last, after):
            channel.queue.put_nowait(item)
        return [step async for step in GenerationStream(channel)], channel

    steps, channel = asyncio.run(run())
    assert steps == [first, last] and channel.cancelled is False


def test_collect_scores_puts_each_text_at_its_index_whatever_the_order() -> None:
    texts = [EncodedText([t], [i], [False]) for i, t in enumerate(["我", "爱", "你"])]

    async def run() -> list:
        channel: Channel[Scored] = Channel(asyncio.get_running_loop(), 60.0)
        for index in (2, 0, 1):  # rows finish in any order
            channel.queue.put_nowait(Scored(index, torch.full((2,), -float(index + 1)), []))
        return await collect_scores(channel, texts)

    scores = asyncio.run(run())
    assert [s.text for s in scores] == texts
    assert [s.logprobs for s in scores] == [[-1.0, -1.0], [-2.0, -2.0], [-3.0, -3.0]]


def test_generation_stream_raises_an_error_sent_and_leaves_the_batch() -> None:
    async def run() -> tuple[Channel, Channel]:
        failed, left = (Channel(asyncio.get_running_loop(), 60.0) for _ in range(2))
        failed.queue.put_nowait(NotReady("the server is shutting down"))
        stream = GenerationStream(failed)
        with pytest.raises(NotReady):
            await anext(stream)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        GenerationStream(left).cancel()  # the client went away
        return failed, left

    failed, left = asyncio.run(run())
    assert failed.cancelled is True and left.cancelled is True
