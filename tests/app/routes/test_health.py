"""Liveness, readiness, the model card's route and Prometheus' (app/routes/health.py), through
an in-process client on the tiny real checkpoint. What the card says: tests/app/test_card.py."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.support import error_of

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "reason": None}


def test_info_needs_a_loaded_model(tmp_path, make_settings) -> None:
    with TestClient(create_app(make_settings(model_dir=tmp_path / "missing"))) as no_model:
        status, error_type, message = error_of(no_model.get("/info"))
    assert (status, error_type) == (503, "not_ready") and "could not be loaded" in message


def test_metrics_speak_openmetrics_when_the_scraper_asks(client: TestClient) -> None:
    plain = client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    openmetrics = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n") and "nextword_requests" in openmetrics.text
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
