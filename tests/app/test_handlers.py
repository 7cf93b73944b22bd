"""Every failure answers with the one error body (app/handlers.py): invalid fields name the
field and the rule, invalid JSON and unknown routes have their error_type, and an unexpected
failure is a 500 with no trace in it (OpenAI's shape under /v1: tests/app/v1/test_errors.py)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.handlers import install_error_handlers
from tests.app.support import error_of, openai_error_of


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/predict-next", {"text": "我", "top_k": 0}, "top_k"),
        ("/predict-next", {"text": "我", "top_k": 101}, "top_k"),
        ("/predict-next", {"text": 5}, "text"),
        ("/generate", {"prompt": "我", "temperature": -1}, "temperature"),
        ("/generate", {"prompt": "我", "top_p": 0}, "top_p"),
        ("/generate", {"prompt": "我", "top_k": 0}, "top_k"),
        ("/generate", {"prompt": "我", "repetition_penalty": 0}, "repetition_penalty"),
        ("/generate", {"prompt": "我", "max_new_tokens": 0}, "max_new_tokens"),
        ("/generate", {"prompt": "我", "max_new_tokens": 10**6}, "max_new_tokens"),
        ("/generate", {"prompt": "我", "seed": 2**64}, "seed"),
        ("/generate", {"prompt": "我", "stop": ["。"] * 9}, "stop"),
        ("/generate", {"prompt": "我", "stop": [""]}, "stop.0"),
        ("/generate", {"prompt": "我", "max_tokens": 5}, "max_tokens"),
        ("/perplexity", {}, "body"),
        ("/perplexity", {"text": "a", "texts": ["b"]}, "body"),
        ("/perplexity", {"texts": []}, "texts"),
    ],
)
def test_invalid_field_is_422_naming_field_and_rule(client, path, body, field) -> None:
    status, error_type, message = error_of(client.post(path, json=body))
    assert (status, error_type) == (422, "validation_error")
    assert message.startswith(f"{field}: ") or f"; {field}: " in message


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/generate", content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    assert error_of(response)[:2] == (422, "invalid_json")


def test_unknown_route_and_method_use_the_error_body(client: TestClient) -> None:
    assert error_of(client.get("/nowhere"))[:2] == (404, "not_found")
    assert error_of(client.delete("/generate"))[:2] == (405, "method_not_allowed")


def test_unexpected_failure_is_500_internal_error_without_a_trace() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fails")
    @app.get("/v1/fails")
    async def fails() -> None:
        raise RuntimeError("secret detail in /srv/private/weights.bin")

    with TestClient(app, raise_server_exceptions=False) as failing:
        ours = failing.get("/fails")
        openai = failing.get("/v1/fails")
    assert error_of(ours) == (500, "internal_error", "internal error (see the server log)")
    status, error = openai_error_of(openai)
    assert (status, error["type"], error["code"]) == (500, "server_error", "internal_error")
    assert "secret" not in ours.text + openai.text and "Traceback" not in ours.text
