"""OpenAI's error body under /v1 and the tokenizer routes (app/v1/errors.py): a bad parameter
is a 400 naming it, and each status has OpenAI's error type."""

from __future__ import annotations

import pytest

from app.errors import (
    DeadlineExceeded,
    InvalidRequest,
    NotFound,
    NotReady,
    Overloaded,
    TooLarge,
    Unauthorized,
)
from app.v1.errors import openai_error, speaks_openai
from tests.app.support import openai_error_of


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "我", "presence_penalty": 0.5}, "presence_penalty"),
        ({"prompt": "我", "frequency_penalty": -1}, "frequency_penalty"),
        ({"prompt": "我", "logit_bias": {"5": 10}}, "logit_bias"),
        ({"prompt": "我", "suffix": "。"}, "suffix"),
        ({"prompt": "我", "best_of": 3}, "best_of"),
        ({"prompt": "我", "n": 2, "best_of": 2}, "best_of"),
        ({"prompt": "我", "max_tokens": 10**6}, "max_tokens"),
        ({"prompt": "我", "temperature": -1}, "temperature"),
        ({"prompt": "我", "logprobs": 21}, "logprobs"),
        ({"prompt": "我", "n": 0}, "n"),
        ({"prompt": [10**9]}, "prompt"),
        ({"prompt": "我", "frobnicate": 1}, "frobnicate"),
        ({}, "prompt"),
    ],
)
def test_bad_parameter_is_400_in_openai_shape_naming_it(client, body, param) -> None:
    status, error = openai_error_of(client.post("/v1/completions", json=body))
    assert status == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param and param in error["message"]


@pytest.mark.parametrize(
    ("error", "status", "error_class"),
    [
        (InvalidRequest("n: too many", param="n"), 400, "invalid_request_error"),
        (Unauthorized("no key"), 401, "authentication_error"),
        (NotFound("no such model"), 404, "invalid_request_error"),
        (TooLarge("too long"), 413, "invalid_request_error"),
        (Overloaded("busy"), 429, "rate_limit_error"),
        (NotReady("loading"), 503, "server_error"),
        (DeadlineExceeded("late"), 504, "server_error"),
    ],
    ids=[
        "InvalidRequest",
        "Unauthorized",
        "NotFound",
        "TooLarge",
        "Overloaded",
        "NotReady",
        "DeadlineExceeded",
    ],
)
def test_each_status_has_openais_error_type_and_the_code_is_ours(error, status, error_class):
    answered, body = openai_error(error)
    assert answered == status
    assert body == {"error": {"message": error.message, "type": error_class,
                              "param": error.param, "code": error.error_type}}  # fmt: skip


def test_openai_shape_is_for_v1_and_the_root_tokenizer_routes_only() -> None:
    for path in ("/v1", "/v1/completions", "/v1/nowhere", "/tokenize", "/detokenize",
                 "/tokenizer_info"):  # fmt: skip
        assert speaks_openai(path), path
    for path in ("/generate", "/v1x", "/v10/models", "/tokenize/more", "/info", "/"):
        assert not speaks_openai(path), path
