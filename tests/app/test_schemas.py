"""The request bodies' fixed rules and conversions (app/schemas.py): no NaN or infinity, no lone
surrogate, exactly one of text and texts, and a /generate body's sampling options."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.schemas import GenerateRequest, PerplexityRequest
from app.v1.protocol import CompletionRequest
from model.sampling import SEED_SPACE, SamplingOptions
from tests.app.support import error_of


def test_nan_and_infinity_are_refused(client: TestClient) -> None:
    for literal in ("NaN", "Infinity"):
        body = '{"prompt": "我", "temperature": ' + literal + "}"
        response = client.post(
            "/generate", content=body, headers={"content-type": "application/json"}
        )
        assert error_of(response)[:2] == (422, "validation_error")


def test_lone_surrogate_is_422(client: TestClient) -> None:
    body = '{"text": "\\ud800"}'
    response = client.post(
        "/perplexity", content=body, headers={"content-type": "application/json"}
    )
    status, error_type, message = error_of(response)
    assert (status, error_type) == (422, "validation_error") and "surrogate" in message


def test_generate_request_gives_the_engine_every_sampling_field() -> None:
    body = GenerateRequest(prompt="我", max_new_tokens=5, temperature=0.5, top_k=3, top_p=0.9,
                           repetition_penalty=1.2, seed=9, stop=["。", "！"], ignore_eos=True,
                           cache=True)  # fmt: skip
    assert body.to_sampling_options() == SamplingOptions(
        temperature=0.5, top_k=3, top_p=0.9, repetition_penalty=1.2, max_new_tokens=5, seed=9,
        stop=("。", "！"), ignore_eos=True, cache=True,
    )  # fmt: skip
    assert GenerateRequest().to_sampling_options().cache is False  # the cache only when asked


def test_a_request_that_names_no_option_samples_with_the_options_defaults() -> None:
    assert GenerateRequest().to_sampling_options() == SamplingOptions()
    schema = GenerateRequest.model_json_schema()["properties"]
    defaults = SamplingOptions()
    for name in ("temperature", "top_p", "repetition_penalty", "max_new_tokens", "ignore_eos"):
        assert schema[name]["default"] == getattr(defaults, name), name


@pytest.mark.parametrize("body", [GenerateRequest, CompletionRequest])
def test_a_seed_is_bounded_by_the_seed_space_the_engine_draws_from(body) -> None:
    assert body(prompt="我", seed=SEED_SPACE - 1).seed == SEED_SPACE - 1
    with pytest.raises(ValidationError, match="seed"):
        body(prompt="我", seed=SEED_SPACE)


def test_perplexity_request_takes_exactly_one_of_text_and_texts() -> None:
    assert PerplexityRequest(text="我").all_texts() == ["我"]
    assert PerplexityRequest(texts=["我", ""]).all_texts() == ["我", ""]
    for fields in ({}, {"text": "a", "texts": ["b"]}, {"text": None}, {"texts": None}):
        with pytest.raises(ValidationError, match="exactly one of text"):
            PerplexityRequest(**fields)
