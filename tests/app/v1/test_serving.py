"""/v1/completions between the HTTP layer and the engine (app/v1/serving.py): the same text as
/generate for the same seed, choices prompt-major with seed + j, the stream adding up to the
answer, echo scored as /perplexity scores, and the deadline; through an in-process client on the
tiny real checkpoint."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.support import complete, openai_error_of, sse_events

GENERATE = {"prompt": "我爱", "seed": 5, "temperature": 0.8, "top_p": 0.9, "max_tokens": 12}


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
