"""Faults and security at the service level, against live servers: SIGTERM drains requests in
flight and exits 0; every request has an id, echoed and written to the JSON access log; a
damaged checkpoint leaves the server up and not ready, saying why; a pickle planted in the
checkpoint directory is never loaded."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from bench.serve import live_server
from tests.app.support import metric

GRACE_SECONDS = 10
LONG = {"prompt": "我", "max_new_tokens": 4000, "ignore_eos": True, "seed": 1}


def wait_for_a_running_sequence(url: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while metric(httpx.get(f"{url}/metrics").text, "nextword_batch_size") < 1:
        assert time.monotonic() < deadline, "the generation never started"
        time.sleep(0.02)


def refused_within(url: str, seconds: float) -> bool:
    """Whether a new connection is refused within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.ConnectError:
            return True
        time.sleep(0.05)
    return False


def access_log(path: Path) -> list[dict]:
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_sigterm_completes_requests_in_flight_refuses_new_ones_and_exits_0(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    env = {"threads": "1", "max_new_tokens": "4000", "shutdown_grace_seconds": str(GRACE_SECONDS)}
    with live_server(tiny_checkpoint, tmp_path, entry="app", **env) as server:
        echoed = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "trace-42"})
        generated = httpx.get(f"{server.url}/health").headers["x-request-id"]
        answers: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/generate", json=LONG, timeout=GRACE_SECONDS + 20)
            )
        )
        thread.start()
        wait_for_a_running_sequence(server.url)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        refused = refused_within(server.url, 3)
        still_running = thread.is_alive()
        code = server.process.wait(timeout=GRACE_SECONDS + 10)
        elapsed = time.monotonic() - stopped_at
        thread.join(5)
    assert echoed.headers["x-request-id"] == "trace-42" and len(generated) == 32
    assert refused and still_running  # new connections refused while the generation ran on
    assert answers[0].status_code == 200
    assert answers[0].json()["usage"]["generated_tokens"] == 4000
    assert code == 0 and elapsed < GRACE_SECONDS + 5
    entries = access_log(server.log)
    traced = [e for e in entries if e.get("request_id") == "trace-42"]
    assert len(traced) == 1 and traced[0]["path"] == "/health" and traced[0]["status"] == 200
    assert any(e.get("path") == "/generate" and e.get("status") == 200 for e in entries)
    assert {e["request_id"] for e in entries if "request_id" in e} >= {"trace-42", generated}


def test_hostile_request_id_is_replaced_not_echoed(client: TestClient) -> None:
    for hostile in (b"a b", b"x" * 200, "id\u00e9".encode(), b"<script>", b"a\tb"):
        given = client.get("/health", headers={"X-Request-ID": hostile}).headers["x-request-id"]
        assert given.encode() != hostile and len(given) == 32
    error = client.post("/generate", json={"temperature": -1})
    assert len(error.headers["x-request-id"]) == 32  # errors carry an id too


@pytest.mark.parametrize("damage", ["truncated weights", "invalid config", "missing vocab"])
def test_damaged_checkpoint_leaves_the_server_up_and_not_ready(
    tiny_checkpoint: Path, tmp_path: Path, make_settings, damage: str
) -> None:
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
