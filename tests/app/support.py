"""Helpers for the service tests: the error bodies, completions, server-sent events, Prometheus
scrapes, and calls into the engine with texts encoded as the routes encode them."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

RARE = "魑魅魍魉"  # not in the tiny vocabulary


def error_of(response) -> tuple[int, str, str]:
    """(status, error_type, message) of an answer with the service's one error body (checked)."""
    body = response.json()
    assert set(body) == {"error", "error_type"}
    return response.status_code, body["error_type"], body["error"]


def openai_error_of(response) -> tuple[int, dict]:
    """(status, error) of an answer with OpenAI's error body (its shape checked)."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return response.status_code, body["error"]


def complete(client: TestClient, **body) -> dict:
    """The JSON answer of a /v1/completions request that must succeed."""
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sse_events(lines: Iterable[str]) -> list[object]:
    """The `data:` payloads of an event stream, JSON-decoded, up to and including "[DONE]"
    (kept as that string)."""
    events: list[object] = []
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            events.append(data)
            break
        events.append(json.loads(data))
    return events


def metric(scrape: str, sample_name: str, **labels: str) -> float:
    """Sum of the samples called sample_name whose labels include `labels` (0 if none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == sample_name and labels.items() <= sample.labels.items()
    )


async def score_texts(engine, texts: list[str], cache: bool = True) -> list:
    """engine.score of texts encoded as the routes encode them."""
    return await engine.score([engine.encoder.encode(t) for t in texts], cache=cache)


async def start_generation(engine, prompt: str, options):
    """engine.generate of one prompt, encoded as the routes encode it: its event stream."""
    _, (stream,) = await engine.generate([engine.encoder.encode(prompt)], [(0, options)])
    return stream


async def generation_events(engine, prompt: str, options) -> list:
    """The TokenEvents of a generation of prompt, then its FinishEvent, in order."""
    events: list = []
    async for step in await start_generation(engine, prompt, options):
        events += [e for e in (step.token, step.finish) if e is not None]
    return events


async def predict_next(engine, text: str, top_k: int, cache: bool = True) -> list:
    """engine.predict_next of a text encoded as the routes encode it: its candidates."""
    prediction = await engine.predict_next(engine.encoder.encode(text), top_k, cache)
    return prediction.candidates
