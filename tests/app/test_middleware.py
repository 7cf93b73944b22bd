"""The plain ASGI middleware (app/middleware.py): the request body limit, at once on a declared
Content-Length and as the bytes arrive without one, and the request metrics, which count every
answer by route template (413s and unknown paths included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.support import error_of, metric

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def limited(make_settings) -> Iterator[TestClient]:
    """An app that takes request bodies of at most 1024 bytes."""
    with TestClient(create_app(make_settings(max_body_bytes=1024))) as test_client:
        yield test_client


def test_body_with_a_declared_length_over_the_limit_is_413_at_once(limited) -> None:
    response = limited.post("/generate", json={"prompt": "x" * 2000})
    status, error_type, message = error_of(response)
    assert (status, error_type) == (413, "too_large") and "NEXTWORD_MAX_BODY_BYTES" in message
    assert "1024 bytes" in message


def test_body_without_length_over_the_limit_is_413(limited) -> None:
    chunks = iter([b'{"text": "', b"x" * 2000, b'"}'])  # streamed: no Content-Length
    response = limited.post("/perplexity", content=chunks, headers=JSON)
    status, error_type, message = error_of(response)
    assert (status, error_type) == (413, "too_large") and "NEXTWORD_MAX_BODY_BYTES" in message


def test_every_answer_is_counted_by_route_template(limited) -> None:
    before = limited.get("/metrics").text
    limited.post("/predict-next", json={"text": "我"})
    limited.get("/nowhere/at/all")
    limited.post("/generate", json={"prompt": "x" * 2000})  # refused before any route
    limited.post("/perplexity", content=iter([b'{"text": "', b"x" * 2000, b'"}']), headers=JSON)
    after = limited.get("/metrics").text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("nextword_requests_total", route="/predict-next", status="200") == 1
    assert moved("nextword_requests_total", route="unmatched", status="404") == 1
    assert moved("nextword_requests_total", route="unmatched", status="413") == 1
    assert moved("nextword_requests_total", route="/perplexity", status="413") == 1
    assert moved("nextword_request_duration_seconds_count", route="/predict-next") == 1
    assert moved("nextword_requests_in_flight") == 0  # each scrape sees itself only
