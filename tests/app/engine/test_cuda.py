"""The engine on a CUDA GPU: float weights, a batch limit sized from the GPU's memory, the
next-word distribution kept on the device (only chosen ids and the logprobs a response carries
come back), and the same answers as the whole distribution gives. These tests run where
torch.cuda.is_available(); elsewhere (CI included: it has no GPU) they skip, saying why."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import torch
from fastapi.testclient import TestClient

from app.engine import Engine
from app.main import create_app
from model.checkpoint import load_checkpoint
from model.distribution import NextWordDistribution
from model.hardware import default_batch_size
from model.rows import FinishEvent, TokenEvent
from model.sampling import SamplingOptions, make_generator, sample_rows
from model.scoring import perplexity_of, score_lines
from tests.app.support import generation_events, score_texts

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (none here): these tests run the engine on one",
)

TEXTS = ["我爱北京天安门。", "今天的天气很好，我们去公园散步吧", "人民日报社论", "经济"]


def test_settings_on_cuda_serve_float_weights_and_size_the_batch_from_the_gpu(make_settings):
    settings = make_settings(device="cuda")
    memory = torch.cuda.get_device_properties(0).total_memory
    assert settings.quantize == "none"
    assert settings.max_batch_size == default_batch_size("cuda")
    assert settings.max_batch_size == max(32, min(1024, memory // 2**27))
    assert settings.max_waiting == 2 * settings.max_batch_size


@pytest.fixture(scope="module")
def engine(make_settings):
    running = Engine.load(make_settings(device="cuda"))
    running.start()
    yield running
    running.stop()


def test_scores_on_cuda_are_the_cpu_figures_alone_and_batched(engine, tiny_checkpoint):
    float_cpu = load_checkpoint(tiny_checkpoint)
    ids = [engine.encoder.encode(t).ids for t in TEXTS]
    expected = score_lines(float_cpu.model, ids, engine.vocab.eos_id)

    async def run():
        alone = [(await score_texts(engine, [text]))[0] for text in TEXTS]
        together = await score_texts(engine, TEXTS)
        return alone, together

    alone, together = asyncio.run(run())
    for one, batched, line in zip(alone, together, expected, strict=True):
        assert one.perplexity == pytest.approx(batched.perplexity, rel=1e-5)
        assert one.perplexity == pytest.approx(perplexity_of([line])[0], rel=1e-4)


def test_a_seeded_generation_on_cuda_is_the_same_alone_and_beside_others(engine):
    options = SamplingOptions(temperature=0.9, top_k=50, max_new_tokens=12, seed=7)

    async def run(prompt: str):
        return await generation_events(engine, prompt, options)

    async def beside_others():
        others = [run_with(replace(options, seed=seed)) for seed in range(6)]
        results = await asyncio.gather(run("我们"), *others)
        return results[0]

    async def run_with(other: SamplingOptions):
        return await generation_events(engine, "经济", other)

    alone = asyncio.run(run("我们"))
    assert [e.token for e in alone if isinstance(e, TokenEvent)] == [
        e.token for e in asyncio.run(beside_others()) if isinstance(e, TokenEvent)
    ]
    assert isinstance(alone[-1], FinishEvent)


def test_pruned_draws_on_the_gpu_follow_the_whole_distribution(tiny_checkpoint):
    """On the device, the pruned routes and the whole distribution draw the same words with
    the same uniforms (cuBLAS may round a product of a few rows differently from one of all
    rows, so a word on a boundary may rarely flip: at most 0.5% of draws)."""
    checkpoint = load_checkpoint(tiny_checkpoint, "cuda")
    model = checkpoint.model
    tokens = torch.randint(0, len(checkpoint.vocab), (512, 1), device="cuda")
    with torch.inference_mode():
        features = model(tokens)[0][:, 0]
        full = model.log_probs(features)
    n = features.size(0)
    for options in (
        SamplingOptions(1.0),
        SamplingOptions(0.8, top_k=40),
        SamplingOptions(0.9, top_k=50, top_p=0.95),
        SamplingOptions(0.0),
    ):
        draws = []
        for prune in (True, False):
            with torch.inference_mode():
                distribution = (
                    NextWordDistribution.of(model, features)
                    if prune
                    else NextWordDistribution.known(full)
                )
                chosen, logprobs = sample_rows(
                    distribution,
                    range(n),
                    [options] * n,
                    [make_generator(i) for i in range(n)],
                    [[]] * n,
                    prune=prune,
                )
            assert chosen.device == features.device and logprobs.device == features.device
            draws.append(chosen)
        assert float((draws[0] == draws[1]).float().mean()) >= 0.995


def test_the_service_on_cuda_answers_every_model_route(make_settings):
    with TestClient(create_app(make_settings(device="cuda"))) as client:
        info = client.get("/info").json()
        assert info["serving"]["device"] == "cuda" and info["serving"]["quantize"] == "none"
        assert info["limits"]["max_batch_size"] == default_batch_size("cuda")
        generated = client.post(
            "/generate", json={"prompt": "我们", "max_new_tokens": 8, "seed": 1, "top_logprobs": 3}
        )
        assert generated.status_code == 200, generated.text
        assert generated.json()["usage"]["generated_tokens"] >= 1
        predicted = client.post("/predict-next", json={"text": "我们", "top_k": 5})
        assert predicted.status_code == 200 and len(predicted.json()["candidates"]) == 5
        scored = client.post("/perplexity", json={"text": "我爱北京天安门。"})
        assert scored.status_code == 200 and scored.json()["results"][0]["perplexity"] > 1
        filled = client.post("/fill-blank", json={"text": "我爱___天安门。", "top_k": 4})
        assert filled.status_code == 200 and len(filled.json()["candidates"]) == 4
