"""POST /generate (app/routes/generate.py): seeded sampling, details, and the event stream
(tokens, the final answer, [DONE]; an error mid-stream as an event), through an in-process
client on the tiny real checkpoint."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app
from model.decoding import FINISH_REASONS
from tests.app.support import RARE, sse_events


def test_generate_same_seed_same_text(client: TestClient) -> None:
    request = {"prompt": "我爱", "seed": 42, "max_new_tokens": 25, "temperature": 0.9,
               "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.3}  # fmt: skip
    first = client.post("/generate", json=request).json()
    second = client.post("/generate", json=request).json()
    assert first == second
    assert first["seed"] == 42 and first["finish_reason"] in FINISH_REASONS
    assert first["usage"]["prompt_tokens"] == 2


def test_generate_without_seed_returns_the_one_used(client: TestClient) -> None:
    first = client.post("/generate", json={"prompt": "我", "max_new_tokens": 15}).json()
    replay = {"prompt": "我", "max_new_tokens": 15, "seed": first["seed"]}
    assert client.post("/generate", json=replay).json() == first


def test_generate_details_never_unk_and_length_finish(client, checkpoint) -> None:
    request = {"prompt": RARE, "seed": 1, "max_new_tokens": 200, "ignore_eos": True,
               "details": True}  # fmt: skip
    answer = client.post("/generate", json=request).json()
    assert answer["finish_reason"] == "length"
    assert answer["usage"]["generated_tokens"] == len(answer["details"]) == 200
    assert checkpoint.vocab.unk_id not in [d["id"] for d in answer["details"]]
    assert "".join(d["text"] for d in answer["details"]) == answer["generated_text"]
    assert all(d["logprob"] <= 0 for d in answer["details"])


def test_generate_without_details_has_no_details(client: TestClient) -> None:
    answer = client.post("/generate", json={"prompt": "我", "max_new_tokens": 3}).json()
    assert "details" not in answer


def test_generate_stream_sends_tokens_final_event_and_done(client: TestClient) -> None:
    request = {"prompt": "我爱", "seed": 3, "max_new_tokens": 20, "details": True}
    plain = client.post("/generate", json=request).json()
    with client.stream("POST", "/generate", json={**request, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
    *tokens, final, done = events
    assert done == "[DONE]"
    assert [{k: t[k] for k in ("id", "token", "text")} for t in tokens] == [
        {k: d[k] for k in ("id", "token", "text")} for d in plain["details"]
    ]
    assert final == {k: v for k, v in plain.items() if k != "details"}


def test_error_mid_stream_is_an_event_with_the_error_body(make_settings) -> None:
    app = create_app(make_settings(max_new_tokens=100_000))
    with TestClient(app) as stopping:
        request = {"prompt": "我", "max_new_tokens": 100_000, "ignore_eos": True, "stream": True}
        with stopping.stream("POST", "/generate", json=request) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert '"token"' in first
            app.state.engines["nextword"].stop()  # the server shuts down mid-generation
            events = sse_events(lines)
    assert events[-1] == "[DONE]"
    assert events[-2] == {"error": "the server is shutting down", "error_type": "not_ready"}
