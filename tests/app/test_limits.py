"""The request limits a deployment sets (app/limits.py): each check, called with a Settings,
raises the right error naming the field and the NEXTWORD_* setting; prompts are encoded under
the same limits; and the limits hold through the routes, /v1 included."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from app.errors import InvalidRequest, TooLarge
from app.limits import (
    check_generation_limits,
    check_text_count,
    encode_prompts,
    encode_texts,
    from_ids,
)
from app.main import create_app
from model.sampling import SamplingOptions
from model.tokenizers import TextEncoder, build_tokenizer
from tests.app.support import error_of, openai_error_of


@pytest.fixture(scope="module")
def encoder(checkpoint) -> TextEncoder:
    return TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)


# -- each check on its own ----------------------------------------------------------------------
def test_text_count_over_nextword_max_texts_is_too_large_naming_the_field(make_settings):
    settings = make_settings(max_texts=2)
    check_text_count(2, "texts", settings)
    with pytest.raises(TooLarge) as refused:
        check_text_count(3, "prompt (times n)", settings)
    assert refused.value.status_code == 413
    assert refused.value.message == (
        "prompt (times n) holds 3 texts; the limit is 2 (NEXTWORD_MAX_TEXTS)"
    )


@pytest.mark.parametrize(
    ("options", "param", "setting"),
    [
        (SamplingOptions(max_new_tokens=11), "max_tokens", "NEXTWORD_MAX_NEW_TOKENS"),
        (
            SamplingOptions(max_new_tokens=10, stop=("a", "b", "c")),
            "stop",
            "NEXTWORD_MAX_STOP_STRINGS",
        ),
        (SamplingOptions(max_new_tokens=10, stop=("a", "abcd")), "stop", "NEXTWORD_MAX_STOP_CHARS"),
    ],
)
def test_generation_over_a_limit_is_invalid_naming_the_field_and_the_setting(
    make_settings, options, param, setting
) -> None:
    settings = make_settings(max_new_tokens=10, max_stop_strings=2, max_stop_chars=3)
    check_generation_limits(SamplingOptions(max_new_tokens=10, stop=("a", "abc")), settings)
    with pytest.raises(InvalidRequest) as refused:
        check_generation_limits(options, settings, length_field="max_tokens")
    error = refused.value
    assert (error.status_code, error.param) == (422, param)
    assert error.message.startswith(f"{param}: ") and setting in error.message


def test_texts_over_the_character_or_token_limit_are_too_large(make_settings, encoder) -> None:
    settings = make_settings(max_text_chars=10, max_text_tokens=3)
    (encoded,) = asyncio.run(encode_texts(encoder, ["我爱北京"], settings))
    assert encoded == encoder.encode("我爱北京")
    with pytest.raises(TooLarge, match="11 characters long; the limit is 10 .NEXTWORD_MAX_TEXT_CH"):
        asyncio.run(encode_texts(encoder, ["我", "我" * 11], settings))
    with pytest.raises(TooLarge, match="the limit is 3 .NEXTWORD_MAX_TEXT_TOKENS"):
        asyncio.run(encode_texts(encoder, ["我爱北京天安门"], settings))


def test_prompt_ids_outside_the_vocabulary_are_invalid_naming_prompt(make_settings, encoder):
    size = len(encoder.vocab)
    with pytest.raises(InvalidRequest) as refused:
        asyncio.run(encode_prompts(encoder, ["我", [1, size]], make_settings()))
    error = refused.value
    assert (error.status_code, error.param) == (422, "prompt")
    assert error.message.startswith("prompt: ") and f"token id {size} " in error.message
    with pytest.raises(InvalidRequest) as detokenized:
        from_ids(encoder, [-1], "tokens")
    assert detokenized.value.param == "tokens"


def test_prompts_keep_their_order_read_specials_and_count_ids_too(make_settings, encoder):
    eos = encoder.vocab.eos_id
    ids = encoder.encode("人民日报").ids
    texts_then_ids = ["我爱<eos>北京", ids, "今天"]
    first, second, third = asyncio.run(encode_prompts(encoder, texts_then_ids, make_settings()))
    assert first.ids == [*encoder.encode("我爱").ids, eos, *encoder.encode("北京").ids]
    assert second.ids == ids and third == encoder.encode("今天")
    with pytest.raises(TooLarge, match="NEXTWORD_MAX_TEXT_TOKENS"):
        asyncio.run(encode_prompts(encoder, [[eos] * 4], make_settings(max_text_tokens=3)))


# -- through the routes -------------------------------------------------------------------------
def test_text_over_the_limits_is_413(make_settings) -> None:
    app = create_app(make_settings(max_text_chars=40, max_text_tokens=6, max_texts=2))
    with TestClient(app) as limited:
        cases = [
            ("/perplexity", {"text": "我" * 41}, "NEXTWORD_MAX_TEXT_CHARS"),
            (
                "/predict-next",
                {"text": "我爱北京天安门，天安门上太阳升"},
                "NEXTWORD_MAX_TEXT_TOKENS",
            ),
            ("/perplexity", {"texts": ["a", "b", "c"]}, "NEXTWORD_MAX_TEXTS"),
        ]
        for path, body, limit in cases:
            status, error_type, message = error_of(limited.post(path, json=body))
            assert (status, error_type) == (413, "too_large") and limit in message


def test_stop_string_limits_are_settings(make_settings) -> None:
    with TestClient(create_app(make_settings(max_stop_strings=1, max_stop_chars=2))) as narrow:
        many = narrow.post("/generate", json={"stop": ["a", "b"]}).json()
        long = narrow.post("/generate", json={"stop": ["abc"]}).json()
        fine = narrow.post("/generate", json={"stop": ["ab"], "max_new_tokens": 2})
    assert many["error"].startswith("stop: ") and "NEXTWORD_MAX_STOP_STRINGS" in many["error"]
    assert long["error"].startswith("stop: ") and "NEXTWORD_MAX_STOP_CHARS" in long["error"]
    assert fine.status_code == 200


def test_limits_apply_under_v1(make_settings) -> None:
    settings = make_settings(max_texts=3, max_text_chars=40, max_body_bytes=2048)
    with TestClient(create_app(settings)) as limited:
        cases = [
            ({"prompt": ["我"] * 2, "n": 2}, "NEXTWORD_MAX_TEXTS"),
            ({"prompt": "我" * 41}, "NEXTWORD_MAX_TEXT_CHARS"),
            ({"prompt": "x" * 4000}, "NEXTWORD_MAX_BODY_BYTES"),
        ]
        for body, limit in cases:
            status, error = openai_error_of(limited.post("/v1/completions", json=body))
            assert status == 413 and limit in error["message"]
        assert limited.get("/info").json()["limits"]["max_texts"] == 3


def test_a_backward_model_scores_text_and_refuses_to_continue_it(
    make_settings, backward_checkpoint
):
    """Served alone, a model trained right to left scores a text read right to left (the
    figure evaluate gives its reversed ids) and answers 400 to every route that continues one."""
    from model.checkpoint import load_checkpoint
    from model.direction import in_reading_order
    from model.scoring import perplexity_of, score_lines

    text = "我爱北京。\n天安门上太阳升。"
    settings = make_settings(model_dir=backward_checkpoint, quantize="none")  # float: exact
    with TestClient(create_app(settings)) as client:
        for path, body in (("/generate", {"prompt": "我们"}),
                           ("/predict-next", {"text": "我们"})):  # fmt: skip
            status, error_type, message = error_of(client.post(path, json=body))
            assert (status, error_type) == (400, "unsupported_by_model") and path in message
        status, error = openai_error_of(client.post("/v1/completions", json={"prompt": "我"}))
        assert status == 400 and "right to left" in error["message"]
        (result,) = client.post("/perplexity", json={"text": text, "details": True}).json()[
            "results"
        ]
        assert client.get("/info").json()["serving"]["direction"] == "backward"
    checkpoint = load_checkpoint(backward_checkpoint)
    encoder = TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)
    lines = in_reading_order([encoder.encode(line).ids for line in text.splitlines()], "backward")
    scores = score_lines(checkpoint.model, lines, checkpoint.vocab.eos_id)  # each line afresh
    assert result["perplexity"] == pytest.approx(perplexity_of(scores)[0], rel=1e-5)
    reversed_tokens = encoder.encode(text).tokens[::-1]  # the last line first, each reversed
    assert [t["token"] for t in result["tokens"]] == [*reversed_tokens, "<eos>"]
