"""The service with a checkpoint tuned for document context and a cache pointer: every row
keeps its own cache next to its state, so a text's figures equal the offline computation,
stay the same in any batch, and a request can turn the cache off."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.engine import Engine
from app.main import create_app
from model.checkpoint import load_checkpoint, load_inference_config, update_inference_config
from model.pointer_cache import PointerCache
from model.sampling import SamplingOptions
from tests.app.support import predict_next, score_texts, start_generation

REPEATING = "新华社北京一月一日电。新华社记者报道，北京一月一日。新华社北京电"
TEXTS = ["我爱北京天安门。", REPEATING, "", "人民日报" * 6]


@pytest.fixture(scope="module")
def engine(make_settings, tuned_checkpoint: Path) -> Iterator[Engine]:
    """Prompts read in chunks of 3 tokens, so that a text's cache spans several steps."""
    running = Engine.load(make_settings(model_dir=tuned_checkpoint, prefill_chunk=3))
    running.start()
    yield running
    running.stop()


def _offline(engine: Engine, ids: list[int]) -> torch.Tensor:
    """The mixed log-probability of every target of <eos> + ids, read in one forward."""
    model, eos = engine.checkpoint.model, engine.vocab.eos_id
    with torch.inference_mode():
        features, _ = model(torch.tensor([[eos, *ids]]))
        targets = torch.tensor([*ids, eos])
        model_logp = model.target_log_probs(features, targets[None])
        cache = PointerCache(engine.runner.cache_config, features.size(-1), engine.vocab.unk_id)
        return cache.score_targets(features[0].float(), model_logp.float(), targets)


def test_scores_equal_the_offline_cache_alone_and_in_any_batch(engine: Engine) -> None:
    async def run() -> tuple[list, list]:
        alone = [(await score_texts(engine, [t]))[0] for t in TEXTS]
        together = await asyncio.gather(
            score_texts(engine, TEXTS), score_texts(engine, TEXTS[::-1])
        )
        return alone, together[0]

    alone, batched = asyncio.run(run())
    for text, one, many in zip(TEXTS, alone, batched, strict=True):
        expected = _offline(engine, engine.encoder.encode(text).ids)
        assert torch.allclose(torch.tensor(one.logprobs), expected, atol=1e-4)
        assert torch.allclose(torch.tensor(many.logprobs), expected, atol=1e-4)


def test_the_cache_helps_a_text_that_repeats_itself_and_can_be_turned_off(engine) -> None:
    with_cache, without = asyncio.run(
        _both(score_texts(engine, [REPEATING]), score_texts(engine, [REPEATING], False))
    )
    assert with_cache[0].perplexity < without[0].perplexity
    plain = engine.checkpoint.model
    ids = engine.encoder.encode(REPEATING).ids
    with torch.inference_mode():
        features, _ = plain(torch.tensor([[engine.vocab.eos_id, *ids]]))
        reference = plain.target_log_probs(features, torch.tensor([[*ids, engine.vocab.eos_id]]))
    assert torch.allclose(torch.tensor(without[0].logprobs), reference, atol=1e-4)


async def _both(first, second):
    return await first, await second


def test_several_lines_are_one_document_and_one_line_is_unchanged(engine: Engine) -> None:
    lines = ["我爱北京天安门。", "天安门上太阳升。"]
    (document,) = asyncio.run(score_texts(engine, ["\n".join(lines)]))
    encoded = [engine.encoder.encode(line).ids for line in lines]
    joined = [*encoded[0], engine.vocab.eos_id, *encoded[1]]
    assert len(document.logprobs) == len(joined) + 1
    assert [t for t, _ in document.targets].count("<eos>") == 2
    expected = _offline(engine, joined)
    assert torch.allclose(torch.tensor(document.logprobs), expected, atol=1e-4)


def test_seeded_generation_with_cache_is_the_same_in_any_company(engine: Engine) -> None:
    options = SamplingOptions(temperature=1.0, top_k=50, max_new_tokens=30, seed=8,
                              ignore_eos=True, cache=True)  # fmt: skip

    async def tokens(prompt: str, opts: SamplingOptions) -> list[str]:
        generation = await start_generation(engine, prompt, opts)
        return [s.token.token async for s in generation if s.token is not None]

    async def run() -> tuple[list[str], list[list[str]]]:
        alone = await tokens(REPEATING, options)
        crowd = await asyncio.gather(
            tokens(REPEATING, options),
            *(tokens(t, replace(options, seed=i)) for i, t in enumerate(TEXTS)),
        )
        return alone, crowd

    alone, crowd = asyncio.run(run())
    assert len(alone) == 30 and crowd[0] == alone
    without = asyncio.run(tokens(REPEATING, replace(options, cache=False)))
    assert without != alone, "the cache changed no sampled token in 30"


def test_predictions_equal_the_offline_mix(engine: Engine) -> None:
    with_cache, without = asyncio.run(
        _both(predict_next(engine, REPEATING, 5), predict_next(engine, REPEATING, 5, cache=False))
    )
    assert with_cache != without
    tokens = [engine.vocab.eos_id, *engine.encoder.encode(REPEATING).ids]
    with torch.inference_mode():
        features, _ = engine.checkpoint.model(torch.tensor([tokens]))
        cache = PointerCache(engine.runner.cache_config, features.size(-1), engine.vocab.unk_id)
        cache.extend(features[0, :-1].float(), torch.tensor(tokens[1:]))
        mixed = cache.mix(
            features[0, -1].float(), engine.checkpoint.model.log_probs(features[0, -1:])[0]
        )
    mixed = mixed.clone()
    mixed[engine.vocab.unk_id] = float("-inf")
    values, ids = mixed.topk(5)
    assert [c.token for c in with_cache] == engine.vocab.decode(ids.tolist())
    got = torch.tensor([c.logprob for c in with_cache])
    assert torch.allclose(got, values, atol=1e-4)


def test_generation_leaves_the_cache_out_unless_asked(make_settings, tuned_checkpoint):
    body = {"prompt": REPEATING, "max_new_tokens": 30, "seed": 8, "ignore_eos": True}
    with TestClient(create_app(make_settings(model_dir=tuned_checkpoint))) as client:
        default = client.post("/generate", json=body).json()["generated_text"]
        off = client.post("/generate", json={**body, "cache": False}).json()["generated_text"]
        on = client.post("/generate", json={**body, "cache": True}).json()["generated_text"]
    assert default == off != on


def test_info_reports_the_context_and_the_cache_memory_bound(make_settings, tuned_checkpoint):
    with TestClient(create_app(make_settings(model_dir=tuned_checkpoint))) as client:
        serving = client.get("/info").json()["serving"]
        feature_size = client.get("/info").json()["model"]["hidden_size"]
        scored = client.post("/perplexity", json={"text": REPEATING, "cache": False}).json()
    assert serving["context"] == "document" and serving["cache"] is True
    tuned = load_inference_config(load_checkpoint(tuned_checkpoint))[1]
    assert serving["cache_window"] == tuned.window and serving["cache_lambda"] == tuned.lam
    assert serving["cache_half_fill"] == tuned.half_fill == 0.0  # tuned before the fill gate
    assert serving["cache_bytes_per_sequence"] == tuned.window * (feature_size * 4 + 12)
    assert len(scored["results"]) == 1


LINES = ["新华社北京一月一日电。", "新华社记者报道，北京一月一日。", "人民日报"]


@pytest.fixture(scope="module", params=[("line", "document"), ("line", "line")])
def line_engine(request, make_settings, tuned_checkpoint: Path, tmp_path_factory):
    """An engine on a checkpoint tuned to read each line from the start state, its cache
    kept across the lines of a text or emptied at each; prompts read in chunks of 4."""
    context, scope = request.param
    copy = tmp_path_factory.mktemp(f"{context}-{scope}") / "tiny"
    shutil.copytree(tuned_checkpoint, copy)
    update_inference_config(copy, {"context": context, "cache_scope": scope})
    running = Engine.load(make_settings(model_dir=copy, prefill_chunk=4))
    running.start()
    yield running
    running.stop()


def _offline_lines(engine: Engine, lines: list[str]) -> torch.Tensor:
    """Each line read from the start state; the cache across the lines or emptied at each."""
    eos, model = engine.vocab.eos_id, engine.checkpoint.model
    pieces = []
    cache = None
    with torch.inference_mode():
        for line in lines:
            ids = engine.encoder.encode(line).ids
            features, _ = model(torch.tensor([[eos, *ids]]))
            targets = torch.tensor([*ids, eos])
            model_logp = model.target_log_probs(features, targets[None]).float()
            if cache is None or engine.runner.cache_scope == "line":
                cache = PointerCache(
                    engine.runner.cache_config, features.size(-1), engine.vocab.unk_id
                )
            pieces.append(cache.score_targets(features[0].float(), model_logp, targets))
    return torch.cat(pieces)


def test_line_context_reads_each_line_from_the_start_state(line_engine: Engine) -> None:
    text = "\n".join(LINES)
    (scored,) = asyncio.run(score_texts(line_engine, [text]))
    expected = _offline_lines(line_engine, LINES)
    assert torch.allclose(torch.tensor(scored.logprobs), expected, atol=1e-4)
    several, last = asyncio.run(
        _both(
            predict_next(line_engine, text, 5, cache=False),
            predict_next(line_engine, LINES[-1], 5, cache=False),
        )
    )
    assert several == last  # the state was reset at the last line
