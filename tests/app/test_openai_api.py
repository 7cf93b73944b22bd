"""The OpenAI-compatible surface through an in-process client on the tiny real checkpoint:
completions against /generate and /perplexity, streaming, stop strings, echo logprobs, the
tokenizer routes, OpenAI's error body and the optional API key."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.support import metric, sse_events

GENERATE = {"prompt": "我爱", "seed": 5, "temperature": 0.8, "top_p": 0.9, "max_tokens": 12}


def openai_error_of(response) -> tuple[int, dict]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return response.status_code, body["error"]


def complete(client: TestClient, **body) -> dict:
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_completion_equals_generate_with_the_same_seed(client: TestClient) -> None:
    answer = complete(client, **GENERATE)
    generated = client.post(
        "/generate",
        json={"prompt": "我爱", "seed": 5, "temperature": 0.8, "top_p": 0.9, "max_new_tokens": 12},
    ).json()
    assert answer["object"] == "text_completion" and answer["id"].startswith("cmpl-")
    (choice,) = answer["choices"]
    assert choice["text"] == generated["generated_text"] and choice["index"] == 0
    expected = {"length": "length", "eos_token": "stop"}[generated["finish_reason"]]
    assert choice["finish_reason"] == expected
    usage = answer["usage"]
    assert usage["prompt_tokens"] == generated["usage"]["prompt_tokens"]
    ended_at_eos = generated["finish_reason"] == "eos_token"
    assert usage["completion_tokens"] == generated["usage"]["generated_tokens"] + ended_at_eos
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_choices_are_prompt_major_and_choice_j_uses_seed_plus_j(client: TestClient) -> None:
    prompts = ["我爱", "今天", "人民日报"]
    answer = complete(client, prompt=prompts, n=2, seed=11, max_tokens=6, ignore_eos=True)
    assert [c["index"] for c in answer["choices"]] == list(range(6))
    for i, prompt in enumerate(prompts):
        for j in range(2):
            alone = complete(client, prompt=prompt, seed=11 + j, max_tokens=6, ignore_eos=True)
            assert answer["choices"][i * 2 + j]["text"] == alone["choices"][0]["text"]


def test_stream_chunks_add_up_to_the_answer_then_usage_and_done(client: TestClient) -> None:
    body = {**GENERATE, "n": 2, "logprobs": 2, "max_tokens": 20}
    whole = complete(client, **body)
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/completions", json=stream) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        *chunks, usage, done = sse_events(response.iter_lines())
    assert done == "[DONE]" and usage["choices"] == [] and usage["usage"] == whole["usage"]
    for index, choice in enumerate(whole["choices"]):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert "".join(c["text"] for c in mine) == choice["text"]
        assert [t for c in mine if c["logprobs"] for t in c["logprobs"]["tokens"]] == choice[
            "logprobs"
        ]["tokens"]
        assert mine[-1]["finish_reason"] == choice["finish_reason"]
        assert all(c["finish_reason"] is None for c in mine[:-1])
    assert all(c["usage"] is None and c["id"] == chunks[0]["id"] for c in chunks)


def test_logprobs_hold_the_top_tokens_and_the_chosen_one(client: TestClient) -> None:
    answer = complete(client, prompt="今天", max_tokens=10, logprobs=3, seed=2, ignore_eos=True)
    logprobs = answer["choices"][0]["logprobs"]
    text = answer["choices"][0]["text"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == 10
    for token, logprob, top, offset in zip(*logprobs.values(), strict=True):
        assert top[token] == logprob and 3 <= len(top) <= 4
        assert max(top.values()) >= logprob
        assert text[offset:].lstrip().startswith(token)


def test_echo_scores_the_prompt_as_perplexity_does(client: TestClient) -> None:
    text = "我爱北京天安门。"
    (scored,) = client.post("/perplexity", json={"text": text, "details": True}).json()["results"]
    answer = complete(client, prompt=text, echo=True, logprobs=1, max_tokens=0)
    (choice,) = answer["choices"]
    logprobs = choice["logprobs"]
    assert choice["text"] == text and choice["finish_reason"] == "length"
    tokens = scored["tokens"][:-1]  # /perplexity's last target is the closing <eos>
    assert logprobs["tokens"] == [t["token"] if not t["oov"] else "<unk>" for t in tokens]
    assert logprobs["token_logprobs"] == pytest.approx([t["logprob"] for t in tokens], abs=1e-4)
    offsets = zip(logprobs["text_offset"], logprobs["tokens"], strict=True)
    assert all(text[o:].startswith(t) for o, t in offsets if t != "<unk>")
    assert answer["usage"] == {"prompt_tokens": len(tokens), "completion_tokens": 0,
                               "total_tokens": len(tokens)}  # fmt: skip


def test_prompt_ids_opening_with_eos_start_there_and_its_entry_is_null(client) -> None:
    ids = client.post("/tokenize", json={"prompt": "我爱北京"}).json()["tokens"]
    eos = client.post("/tokenize", json={"prompt": "<eos>"}).json()["tokens"]
    plain = complete(client, prompt=ids, echo=True, logprobs=0, max_tokens=0)
    opened = complete(client, prompt=[eos + ids], echo=True, logprobs=0, max_tokens=0)
    plain_lp = plain["choices"][0]["logprobs"]["token_logprobs"]
    opened_lp = opened["choices"][0]["logprobs"]["token_logprobs"]
    assert opened_lp[0] is None and opened_lp[1:] == pytest.approx(plain_lp, abs=1e-6)
    assert opened["choices"][0]["text"].startswith("<eos>")


def test_echo_with_generation_covers_prompt_and_completion(client: TestClient) -> None:
    answer = complete(client, prompt="我爱", echo=True, logprobs=1, max_tokens=5, seed=3,
                      ignore_eos=True)  # fmt: skip
    plain = complete(client, prompt="我爱", max_tokens=5, seed=3, ignore_eos=True)
    choice = answer["choices"][0]
    assert choice["text"] == "我爱" + plain["choices"][0]["text"]
    assert len(choice["logprobs"]["tokens"]) == 2 + 5


def test_stop_string_is_left_out_of_the_text(client: TestClient) -> None:
    base = {"prompt": "我们", "max_tokens": 60, "seed": 4, "ignore_eos": True}
    full = complete(client, **base)["choices"][0]["text"]
    stop = full[5:7]  # two characters the text is known to reach
    cut = complete(client, **base, stop=stop, logprobs=0)["choices"][0]
    assert cut["text"] == full[: full.find(stop)] and cut["finish_reason"] == "stop"
    with client.stream(
        "POST", "/v1/completions", json={**base, "stop": [stop], "stream": True}
    ) as r:
        chunks = sse_events(r.iter_lines())[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks) == cut["text"]


def test_end_of_text_is_stop_with_its_eos_entry(client: TestClient) -> None:
    for seed in range(40):  # a seed whose text ends at <eos> within 40 tokens
        answer = complete(client, prompt="我们去北京。", max_tokens=40, seed=seed, logprobs=0)
        if answer["choices"][0]["finish_reason"] == "stop":
            break
    logprobs = answer["choices"][0]["logprobs"]
    assert logprobs["tokens"][-1] == "<eos>"
    assert logprobs["text_offset"][-1] == len(answer["choices"][0]["text"])
    assert answer["usage"]["completion_tokens"] == len(logprobs["tokens"])


# -- tokenizer routes and models --------------------------------------------------------------
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


def test_models_lists_the_served_model(client: TestClient) -> None:
    answer = client.get("/v1/models").json()
    assert answer["object"] == "list"
    assert [m["id"] for m in answer["data"]] == ["nextword"]


# -- errors -----------------------------------------------------------------------------------
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


def test_no_op_penalties_and_user_are_accepted(client: TestClient) -> None:
    no_ops = {"presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "best_of": 1,
              "suffix": "", "user": "someone", "seed": None, "logprobs": None}  # fmt: skip
    answer = complete(client, prompt="我", max_tokens=2, **no_ops)
    assert len(answer["choices"]) == 1
    empty = complete(client, prompt="我", max_tokens=0)["choices"][0]
    assert (empty["text"], empty["finish_reason"]) == ("", "length")


def test_unknown_model_is_404_and_chat_is_not_served(client: TestClient) -> None:
    status, error = openai_error_of(
        client.post("/v1/completions", json={"model": "gpt-4", "prompt": "我"})
    )
    assert (status, error["code"], error["param"]) == (404, "model_not_found", "model")
    status, error = openai_error_of(client.post("/v1/chat/completions", json={}))
    assert status == 404 and "/v1/completions" in error["message"]
    assert openai_error_of(client.get("/v1/nowhere"))[0] == 404


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


def test_v1_traffic_is_counted(client: TestClient) -> None:
    before = client.get("/metrics").text
    answer = complete(client, prompt="我", max_tokens=4, ignore_eos=True)
    client.post("/v1/completions", json={"prompt": "我", "n": 0})
    after = client.get("/metrics").text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("nextword_requests_total", route="/v1/completions", status="200") == 1
    assert moved("nextword_requests_total", route="/v1/completions", status="400") == 1
    assert moved("nextword_generated_tokens_total") == answer["usage"]["completion_tokens"]


# -- the API key ------------------------------------------------------------------------------
def test_api_key_guards_model_routes_v1_and_info_only(make_settings, tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("second-key\n\nthird-key\n", encoding="utf-8")
    settings = make_settings(api_key="first-key", api_key_file=keys)
    with TestClient(create_app(settings)) as guarded:
        for path in ("/health", "/ready", "/metrics", "/", "/openapi.json"):
            assert guarded.get(path).status_code == 200, path
        ours = guarded.post("/generate", json={"max_new_tokens": 2})
        assert ours.status_code == 401 and ours.json()["error_type"] == "invalid_api_key"
        assert ours.headers["www-authenticate"] == "Bearer"
        assert guarded.get("/info").status_code == 401
        for path in ("/v1/models", "/tokenizer_info"):
            status, error = openai_error_of(guarded.get(path))
            assert (status, error["type"]) == (401, "authentication_error")
        wrong = {"Authorization": "Bearer first-kez"}
        assert guarded.post("/perplexity", json={"text": "我"}, headers=wrong).status_code == 401
        for key in ("first-key", "second-key", "third-key"):
            headers = {"Authorization": f"Bearer {key}"}
            assert guarded.post("/predict-next", json={"text": "我"}, headers=headers).is_success
            assert guarded.get("/v1/models", headers=headers).is_success


def test_api_key_is_off_by_default(client: TestClient) -> None:
    assert client.get("/info").status_code == 200


def test_deadline_applies_under_v1(make_settings) -> None:
    settings = make_settings(max_new_tokens=1_000_000, request_timeout_seconds=0.3)
    with TestClient(create_app(settings)) as slow:
        answer = complete(slow, prompt="我", max_tokens=1_000_000, ignore_eos=True)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length" and choice["text"]
    assert 1 <= answer["usage"]["completion_tokens"] < 1_000_000
    reading = make_settings(prefill_chunk=1, request_timeout_seconds=0.05)
    with TestClient(create_app(reading)) as slow:
        response = slow.post("/v1/completions", json={"prompt": "我爱北京天安门" * 500})
    status, error = openai_error_of(response)
    assert (status, error["code"]) == (504, "timeout")
