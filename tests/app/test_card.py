"""The model card /info shows (app/card.py): the network, tokenizer, checkpoint, training
figures and versions from the checkpoint, the configured limits, and no file path."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app


def test_info_is_the_model_card(client, checkpoint, tiny_checkpoint) -> None:
    answer = client.get("/info")
    info = answer.json()
    config = checkpoint.model.config
    assert info["model"]["cell"] == config.cell
    assert info["model"]["hidden_size"] == config.hidden_size
    assert info["model"]["vocab_size"] == len(checkpoint.vocab)
    assert info["tokenizer"]["name"] == "jieba"
    assert info["checkpoint"]["weights_sha256"] == checkpoint.weights_sha256
    assert info["training"]["test_ppl"] == checkpoint.metadata["training"]["test_ppl"]
    assert info["limits"]["max_new_tokens"] == 1024
    assert {"python", "torch", "fastapi"} <= set(info["versions"])
    assert str(tiny_checkpoint.parent) not in answer.text  # no path leaves the server


def test_info_reports_the_configured_limits(make_settings) -> None:
    limits = {"max_new_tokens": 50, "max_stop_strings": 3, "max_stop_chars": 9, "max_texts": 4}
    settings = make_settings(**limits, max_text_chars=300, request_timeout_seconds=7.5)
    with TestClient(create_app(settings)) as limited:
        reported = limited.get("/info").json()["limits"]
    assert reported == settings.limits()
    assert reported["request_timeout_seconds"] == 7.5 and reported["max_stop_strings"] == 3


def test_info_of_one_model_is_its_card_also_under_its_name(client) -> None:
    info = client.get("/info").json()
    assert info["default_model"] == "nextword" and list(info["models"]) == ["nextword"]
    assert info["models"]["nextword"] == {k: info[k] for k in info["models"]["nextword"]}
    assert set(info) - set(info["models"]["nextword"]) == {"limits", "default_model", "models"}
