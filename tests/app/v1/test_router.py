"""The OpenAI-compatible routes (app/v1/router.py): the tokenizer routes at the root and under
/v1, /v1/models, an unknown model and chat completions (not served)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.app.support import openai_error_of


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_tokenize_detokenize_round_trip_and_specials(client: TestClient, prefix: str) -> None:
    info = client.get(f"{prefix}/tokenizer_info").json()
    assert info["eos_token"] == "<eos>" and info["bos_token"] is None
    (eos,) = client.post(f"{prefix}/tokenize", json={"prompt": info["eos_token"]}).json()["tokens"]
    answer = client.post(
        f"{prefix}/tokenize",
        json={"prompt": "我爱北京<eos>", "add_special_tokens": False, "return_token_strs": True},
    ).json()
    assert answer["tokens"][-1] == eos and answer["count"] == len(answer["tokens"]) == 4
    assert answer["token_strs"] == ["我", "爱", "北京", "<eos>"]
    assert answer["max_model_len"] == info["model_max_length"]
    text = client.post(f"{prefix}/detokenize", json={"tokens": answer["tokens"]}).json()
    assert text == {"prompt": "我爱北京<eos>"}


def test_tokenizer_routes_refuse_ids_outside_the_vocabulary_and_other_models(client) -> None:
    size = client.get("/tokenizer_info").json()["vocab_size"]
    status, error = openai_error_of(client.post("/detokenize", json={"tokens": [0, size]}))
    assert (status, error["param"]) == (400, "tokens") and f"token id {size} " in error["message"]
    other = {"model": "gpt-4", "prompt": "我"}
    status, error = openai_error_of(client.post("/v1/tokenize", json=other))
    assert (status, error["code"], error["param"]) == (400, "model_not_found", "model")


def test_models_lists_the_served_model(client: TestClient) -> None:
    answer = client.get("/v1/models").json()
    assert answer["object"] == "list"
    assert [m["id"] for m in answer["data"]] == ["nextword"]


def test_unknown_model_is_400_and_chat_is_not_served(client: TestClient) -> None:
    status, error = openai_error_of(
        client.post("/v1/completions", json={"model": "gpt-4", "prompt": "我"})
    )
    assert (status, error["code"], error["param"]) == (400, "model_not_found", "model")
    status, error = openai_error_of(client.post("/v1/chat/completions", json={}))
    assert status == 404 and "/v1/completions" in error["message"]
    assert openai_error_of(client.get("/v1/nowhere"))[0] == 404
