"""The application factory and its lifespan (app/main.py): settings from NEXTWORD_* variables,
the model loaded at start-up (a missing or damaged checkpoint leaves the server up and not
ready, saying why; a planted pickle is never loaded), the playground behind the API, and CORS."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import STATIC_DIR, create_app
from tests.app.support import error_of


def test_create_app_reads_its_settings_from_nextword_variables(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("NEXTWORD_MODEL_DIR", str(tiny_checkpoint))
    monkeypatch.setenv("NEXTWORD_THREADS", "1")
    monkeypatch.setenv("NEXTWORD_MAX_TEXTS", "3")
    app = create_app()
    with TestClient(app) as served:
        assert served.get("/ready").json()["ready"] is True
        assert served.get("/info").json()["limits"]["max_texts"] == 3
    # the lifespan stops the engine when the server stops
    assert app.state.engines["nextword"].running is False
    assert app.state.not_ready_reason == "the server is shutting down"


def test_not_ready_without_a_model(tmp_path, make_settings) -> None:
    app = create_app(make_settings(model_dir=tmp_path / "missing"))
    with TestClient(app) as no_model:
        assert no_model.get("/health").status_code == 200
        ready = no_model.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "could not be loaded" in ready.json()["reason"]
        for path, body in (("/predict-next", {"text": "我"}), ("/generate", {}),
                           ("/perplexity", {"text": "我"})):  # fmt: skip
            status, error_type, message = error_of(no_model.post(path, json=body))
            assert (status, error_type) == (503, "not_ready")
            assert str(tmp_path) not in message


def test_a_model_that_cannot_be_loaded_leaves_the_others_serving_and_names_itself(
    tiny_checkpoint: Path, tmp_path: Path, make_settings
) -> None:
    models = {"good": tiny_checkpoint, "lost": tmp_path / "missing"}
    with TestClient(create_app(make_settings(models=models))) as partial:
        ready = partial.get("/ready")
        good = partial.post("/predict-next", json={"text": "我", "model": "good"})
        status, error_type, message = error_of(
            partial.post("/predict-next", json={"text": "我", "model": "lost"})
        )
    assert ready.status_code == 503
    assert ready.json()["reason"] == "the model 'lost' could not be loaded; the server log says why"
    assert good.status_code == 200
    assert (status, error_type) == (503, "not_ready") and "'lost' could not be loaded" in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize("damage", ["truncated weights", "invalid config", "missing vocab"])
def test_damaged_checkpoint_leaves_the_server_up_and_not_ready(
    tiny_checkpoint: Path, tmp_path: Path, make_settings, damage: str
) -> None:
    """A damaged checkpoint: /health answers, /ready and the model routes say 503 and why,
    without a path, so an orchestrator sees an unready pod rather than a crash loop."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    if damage == "truncated weights":
        weights = next(broken.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "invalid config":
        (broken / "config.json").write_text("{not json")
    else:
        (broken / "vocab.json").unlink()
    with TestClient(create_app(make_settings(model_dir=broken))) as not_ready:
        assert not_ready.get("/health").status_code == 200
        ready = not_ready.get("/ready")
        answer = not_ready.post("/predict-next", json={"text": "我"})
    assert ready.status_code == 503 and "could not be loaded" in ready.json()["reason"]
    assert answer.status_code == 503 and str(tmp_path) not in answer.text


class _Planted:
    """Unpickling this writes a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_pickle_planted_in_the_checkpoint_is_never_loaded(
    tiny_checkpoint: Path, tmp_path: Path, make_settings
) -> None:
    """Pickles planted beside the weights are never unpickled: loading one runs its code."""
    planted = tmp_path / "planted"
    shutil.copytree(tiny_checkpoint, planted)
    marker = tmp_path / "marker"
    for name in ("model.pt", "pytorch_model.bin", "checkpoint.pkl", "model.ckpt"):
        (planted / name).write_bytes(pickle.dumps(_Planted(marker)))
    with TestClient(create_app(make_settings(model_dir=planted))) as served:
        assert served.get("/ready").status_code == 200
        assert served.post("/predict-next", json={"text": "我"}).status_code == 200
    assert not marker.exists()
    assert os.listdir(planted)  # the planted files are still there, untouched


def test_static_playground_at_root_and_api_first(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert client.get("/health").json() == {"status": "ok"}  # the API's routes come first


def test_cors_off_by_default_on_when_configured(client, make_settings) -> None:
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with TestClient(create_app(make_settings(cors_origins=["https://example.org"]))) as cors:
        allowed = cors.get("/health", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "https://example.org"
