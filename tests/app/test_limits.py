"""Configured limits: reported by /info and the OpenAPI schema, and the per-request deadline (a
generation that produced tokens ends with finish_reason "time_limit"; a request with nothing to
show gets 504)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.support import sse_events


def test_info_and_openapi_report_the_configured_limits(make_settings) -> None:
    limits = {"max_new_tokens": 50, "max_stop_strings": 3, "max_stop_chars": 9, "max_texts": 4}
    settings = make_settings(**limits, max_text_chars=300, request_timeout_seconds=7.5)
    with TestClient(create_app(settings)) as limited:
        limits = limited.get("/info").json()["limits"]
        schemas = limited.get("/openapi.json").json()["components"]["schemas"]
    assert limits == settings.limits()
    assert limits["request_timeout_seconds"] == 7.5 and limits["max_stop_strings"] == 3
    generate = schemas["GenerateRequest"]["properties"]
    assert generate["max_new_tokens"]["maximum"] == 50
    assert (generate["stop"]["maxItems"], generate["stop"]["items"]["maxLength"]) == (3, 9)
    assert schemas["PerplexityRequest"]["properties"]["texts"]["maxItems"] == 4
    assert schemas["PredictRequest"]["properties"]["text"]["maxLength"] == 300


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


def test_stop_string_limits_are_settings(make_settings) -> None:
    with TestClient(create_app(make_settings(max_stop_strings=1, max_stop_chars=2))) as narrow:
        many = narrow.post("/generate", json={"stop": ["a", "b"]}).json()
        long = narrow.post("/generate", json={"stop": ["abc"]}).json()
        fine = narrow.post("/generate", json={"stop": ["ab"], "max_new_tokens": 2})
    assert many["error"].startswith("stop: ") and "NEXTWORD_MAX_STOP_STRINGS" in many["error"]
    assert long["error"].startswith("stop: ") and "NEXTWORD_MAX_STOP_CHARS" in long["error"]
    assert fine.status_code == 200
