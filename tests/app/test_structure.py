"""The structural claims docs/architecture.md and the README make, checked: each route makes
one call into the engine per request; one place loads a served model; the model's modules the
service imports read none of the service's NEXTWORD_* settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app

ROOT = Path(__file__).resolve().parents[2]
ENGINE_CALLS = ("predict_next", "score", "generate", "fill_lines")
REQUESTS = {  # a route, one request to it, and the one engine call it makes
    "/predict-next": ({"text": "我们", "top_k": 3}, "predict_next"),
    "/perplexity": ({"texts": ["我们", "人民日报"]}, "score"),
    "/generate": ({"prompt": "我们", "max_new_tokens": 3, "seed": 1}, "generate"),
    "/v1/completions": ({"prompt": ["我们", "你们"], "max_tokens": 3, "n": 2}, "generate"),
    "/fill-blank": ({"text": "我们___北京。", "top_k": 3}, "fill_lines"),
}


@pytest.fixture(scope="module")
def client(make_settings) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(quantize="none"))) as served:
        yield served


@pytest.mark.parametrize("path", list(REQUESTS))
def test_each_route_makes_one_call_into_the_engine_per_request(client, monkeypatch, path):
    (engine,) = client.app.state.engines.values()  # type: ignore[attr-defined]
    calls: list[str] = []
    for name in ENGINE_CALLS:
        real = getattr(engine, name)

        async def counted(*args, _name=name, _real=real, **kwargs):
            calls.append(_name)
            return await _real(*args, **kwargs)

        monkeypatch.setattr(engine, name, counted)
    body, call = REQUESTS[path]
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert calls == [call]


def _calls(pattern: str, folders: tuple[str, ...]) -> dict[str, int]:
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            count = len(re.findall(pattern, path.read_text(encoding="utf-8")))
            if count:
                found[str(path.relative_to(ROOT))] = count
    return found


def test_one_place_loads_a_served_model():
    """Quantizing is part of loading a served model: only model/served.py does both."""
    assert _calls(r"\bquantize_int8\(", ("app", "model", "bench")) == {
        "model/quantize.py": 1,  # its definition
        "model/served.py": 1,
    }
    users = _calls(r"\bload_served_model\(", ("app", "model", "bench"))
    assert {"app/engine/engine.py", "model/generate.py", "model/evaluate/cli.py"} <= set(users)
    assert {"bench/serve.py", "bench/bandwidth.py"} <= set(users)


def test_the_models_modules_name_no_setting_of_the_service():
    served = sorted((ROOT / "model").glob("*.py"))  # train/ and evaluate/ are not served
    assert served and [p.name for p in served if "NEXTWORD_" in p.read_text("utf-8")] == []
