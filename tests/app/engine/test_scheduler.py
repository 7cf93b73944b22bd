"""The engine's scheduler (app/engine/scheduler.py): continuous batching gives every sequence the
figures it would get alone, reads each token once, lets abandoned sequences go, refuses work it
has no room for, and keeps every request's deadline (seen through the routes: a generation that
produced tokens ends with finish_reason "time_limit"; a request with nothing to show gets 504)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.engine import Engine
from app.errors import Overloaded
from app.main import create_app
from model.fill_blank import Gap, Proposer
from model.generate import generate
from model.quantize import Int8Recurrent
from model.rows import FinishEvent, TokenEvent
from model.runner import Runner
from model.sampling import SamplingOptions
from model.scoring import score_lines
from tests.app.support import generation_events, score_texts, sse_events, start_generation

TEXTS = [
    "",
    "我爱北京天安门。",
    "中国人民银行今天宣布，从明天起下调存款利率。" * 4,
    "人民日报",
    "新华社北京一月一日电",
]
SAMPLED = SamplingOptions(temperature=0.9, top_k=50, top_p=0.95, repetition_penalty=1.2)


@pytest.fixture(scope="module")
def engine(make_settings) -> Iterator[Engine]:
    """An engine that reads prompts in chunks of 3 tokens, so that steps mix row lengths."""
    running = Engine.load(make_settings(prefill_chunk=3, max_new_tokens=5000))
    running.start()
    yield running
    running.stop()


async def _generate(engine: Engine, prompt: str, options: SamplingOptions) -> list[object]:
    return await generation_events(engine, prompt, options)


def _tokens(events: list[object]) -> list[str]:
    return [e.token for e in events if isinstance(e, TokenEvent)]


def test_scores_equal_score_lines_alone_and_in_any_batch(engine: Engine) -> None:
    ids = [engine.encoder.encode(t).ids for t in TEXTS]
    expected = score_lines(engine.checkpoint.model, ids, engine.vocab.eos_id)

    async def run() -> tuple[list, list]:
        alone = [(await score_texts(engine, [text]))[0] for text in TEXTS]
        together = await asyncio.gather(
            score_texts(engine, TEXTS), *(score_texts(engine, [t]) for t in reversed(TEXTS))
        )
        return alone, together[0]

    alone, together = asyncio.run(run())
    for reference, one, batched in zip(expected, alone, together, strict=True):
        assert len(one.logprobs) == len(reference) == len(batched.logprobs)
        want = float(torch.exp(-reference.double().mean()))
        assert one.perplexity == pytest.approx(want, rel=1e-4)
        assert batched.perplexity == pytest.approx(want, rel=1e-4)
        assert one.logprobs == pytest.approx(reference.tolist(), rel=1e-4, abs=1e-5)


def test_generation_equals_the_unbatched_generate(engine: Engine) -> None:
    options = replace(SAMPLED, max_new_tokens=40, seed=11)
    events = asyncio.run(_generate(engine, "我爱", options))
    reference = generate(Runner(engine.checkpoint), engine.encoder, "我爱", options)
    assert _tokens(events) == [event.token for event in reference.tokens]
    assert events[-1] == reference.finish


def test_seeded_generation_is_the_same_alone_and_amid_15_others(engine: Engine) -> None:
    options = replace(SAMPLED, max_new_tokens=60, seed=2024)

    async def amid_others() -> list[object]:
        others = [
            _generate(engine, text, SamplingOptions(1.0, max_new_tokens=60 - i, seed=i))
            for i, text in enumerate(TEXTS * 3)
        ]
        results = await asyncio.gather(_generate(engine, "今天", options), *others)
        return results[0]

    alone = asyncio.run(_generate(engine, "今天", options))
    assert len(TEXTS * 3) == 15
    batched = asyncio.run(amid_others())
    assert [e.id for e in batched[:-1]] == [e.id for e in alone[:-1]]  # type: ignore[attr-defined]
    # the same text, finish reason and counts (the closing <eos>'s logprob only to rounding)
    finished, finished_alone = batched[-1], alone[-1]
    assert isinstance(finished, FinishEvent) and isinstance(finished_alone, FinishEvent)
    assert replace(finished, end=None) == replace(finished_alone, end=None)
    ends = [e.end.logprob if e.end else None for e in (finished, finished_alone)]
    assert ends[0] == pytest.approx(ends[1], abs=1e-5)
    assert (
        [e.logprob for e in batched[:-1]]
        == pytest.approx(  # type: ignore[attr-defined]
            [e.logprob for e in alone[:-1]],
            rel=1e-4,  # type: ignore[attr-defined]
        )
    )


def test_ignore_eos_and_length_finish(engine: Engine) -> None:
    options = SamplingOptions(1.0, max_new_tokens=300, seed=3, ignore_eos=True)
    events = asyncio.run(_generate(engine, "", options))
    final = events[-1]
    assert isinstance(final, FinishEvent)
    assert (final.finish_reason, final.generated_tokens) == ("length", 300)
    assert engine.vocab.unk_id not in [e.id for e in events if isinstance(e, TokenEvent)]


def test_stop_sequence_ends_the_text_with_it(engine: Engine) -> None:
    options = SamplingOptions(1.0, max_new_tokens=400, seed=5, stop=("。",), ignore_eos=True)
    final = asyncio.run(_generate(engine, "我们", options))[-1]
    assert isinstance(final, FinishEvent)
    assert final.finish_reason == "stop_sequence"
    assert final.generated_text.endswith("。") and final.generated_text.count("。") == 1


def test_abandoned_generation_leaves_the_batch(engine: Engine) -> None:
    async def start_and_leave() -> None:
        options = SamplingOptions(1.0, max_new_tokens=5000, seed=1, ignore_eos=True)
        generation = await start_generation(engine, "我", options)
        assert (await anext(generation)).token is not None
        generation.cancel()

    asyncio.run(start_and_leave())
    deadline = time.monotonic() + 5
    while engine.runner.rows and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.runner.rows == []
    assert engine.runner.state.size(2) == 0


def test_full_queue_is_refused_at_once(make_settings) -> None:
    narrow = Engine.load(make_settings(max_batch_size=1, max_waiting=1, max_new_tokens=100_000))
    narrow.start()
    endless = SamplingOptions(1.0, max_new_tokens=100_000, seed=1, ignore_eos=True)

    async def fill_then_overflow() -> Overloaded:
        running = await start_generation(narrow, "我", endless)
        await anext(running)  # admitted: the one slot is taken
        waiting = await start_generation(narrow, "你", endless)
        try:
            await start_generation(narrow, "他", endless)
        except Overloaded as error:
            return error
        finally:
            running.cancel()
            waiting.cancel()
        raise AssertionError("a third request was accepted")

    try:
        error = asyncio.run(fill_then_overflow())
    finally:
        narrow.stop()
    assert error.status_code == 429 and error.headers["Retry-After"] == "1"
    assert error.error_type == "overloaded"


def test_a_blank_is_admitted_for_the_lines_it_becomes_and_one_wider_runs_alone(
    make_settings, monkeypatch
) -> None:
    narrow = Engine.load(make_settings(max_batch_size=4, max_waiting=8, max_new_tokens=100))
    sizes: list[int] = []  # the rows of each step
    step = narrow.runner.step
    monkeypatch.setattr(
        narrow.runner, "step", lambda: sizes.append(len(narrow.runner.rows)) or step()
    )
    vocab, encode = narrow.vocab, narrow.encoder.encode
    gap = Gap(tuple(encode("中国 人民").ids), tuple(encode("今天 宣布 。").ids))
    rare = (vocab.itos[len(vocab) - 1],)  # never among the forward model's first words
    fitting = Proposer(vocab, 3, backward=rare)  # 4 lines: the whole batch
    wide = Proposer(vocab, 3, at_least=6)  # 6 lines: more than the batch
    options = SamplingOptions(0.0, max_new_tokens=30, seed=1, ignore_eos=True)

    async def beside_a_generation(proposer: Proposer) -> list[int]:
        """The rows of each step while a generation and then the blank run."""
        sizes.clear()
        stream = await start_generation(narrow, "我", options)
        await anext(stream)  # the generation holds a place
        lines = await narrow.fill_lines(gap, proposer)
        assert len(lines.logprobs) == proposer.most_words
        assert [e async for e in stream]  # the generation went on to its end
        return list(sizes)

    narrow.start()
    try:
        fits = asyncio.run(beside_a_generation(fitting))
        alone = asyncio.run(beside_a_generation(wide))
    finally:
        narrow.stop()
    # the blank waits for the generation to end (no step holds both), then fills the batch
    assert max(fits) == 4 and 2 not in fits
    assert max(alone) == 6 and 2 not in alone  # wider than the batch: alone


def test_int8_engine_scores_close_to_float(make_settings) -> None:
    quantized = Engine.load(make_settings(quantize="int8"))
    quantized.start()
    try:
        ids = [quantized.encoder.encode(t).ids for t in TEXTS]
        scores = asyncio.run(score_texts(quantized, TEXTS))
        options = SamplingOptions(0.0, max_new_tokens=20, seed=1, ignore_eos=True)
        events = asyncio.run(_generate(quantized, "我爱", options))
    finally:
        quantized.stop()
    assert isinstance(quantized.checkpoint.model.rnn, Int8Recurrent)
    reference = score_lines(
        Engine.load(make_settings(quantize="none")).checkpoint.model, ids, quantized.vocab.eos_id
    )
    for score, line in zip(scores, reference, strict=True):
        assert score.perplexity == pytest.approx(float(torch.exp(-line.mean())), rel=0.05)
    assert len(_tokens(events)) == 20


# -- deadlines, through the routes --------------------------------------------------------------
def test_generation_past_the_deadline_ends_with_time_limit(make_settings) -> None:
    settings = make_settings(max_new_tokens=1_000_000, request_timeout_seconds=0.3)
    request = {"prompt": "我", "max_new_tokens": 1_000_000, "ignore_eos": True}
    with TestClient(create_app(settings)) as slow:
        answer = slow.post("/generate", json=request).json()
        with slow.stream("POST", "/generate", json={**request, "stream": True}) as response:
            *tokens, final, done = sse_events(response.iter_lines())
    assert answer["finish_reason"] == "time_limit"
    assert 1 <= answer["usage"]["generated_tokens"] < 1_000_000
    assert final["finish_reason"] == "time_limit" and len(tokens) >= 1 and done == "[DONE]"


def test_request_with_nothing_to_show_at_the_deadline_is_504(make_settings) -> None:
    # one prompt token read per step: a long prompt is still being read at the deadline
    settings = make_settings(prefill_chunk=1, request_timeout_seconds=0.05)
    long_text = "我爱北京天安门" * 500
    with TestClient(create_app(settings)) as slow:
        for path, body in (
            ("/generate", {"prompt": long_text}),
            ("/predict-next", {"text": long_text}),
            ("/perplexity", {"texts": ["我", long_text]}),
        ):
            response = slow.post(path, json=body)
            assert response.status_code == 504, (path, response.text)
            answer = response.json()
            assert answer["error_type"] == "timeout"
            assert "NEXTWORD_REQUEST_TIMEOUT_SECONDS" in answer["error"]
        with slow.stream("POST", "/generate", json={"prompt": long_text, "stream": True}) as r:
            events = sse_events(r.iter_lines())
        assert events[-2]["error_type"] == "timeout" and events[-1] == "[DONE]"
        assert slow.post("/predict-next", json={"text": "我"}).status_code == 200


def test_the_engine_imports_no_http_framework() -> None:
    """The engine (and the errors it raises) load without FastAPI or Starlette."""
    code = (
        "import sys, app.engine, app.errors; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}))"
    )
    root = Path(__file__).resolve().parents[3]
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
