"""Every endpoint and rule of the service through an in-process client (lifespan run), on the
tiny real checkpoint."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model.checkpoint import load_checkpoint
from model.decoding import FINISH_REASONS
from model.evaluate.cli import evaluate
from model.scoring import read_prompt
from model.tokenizers import build_tokenizer, encode_text
from tests.app.support import metric, sse_events

RARE = "魑魅魍魉"  # not in the tiny vocabulary


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def error_of(response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error", "error_type"}
    return response.status_code, body["error_type"], body["error"]


# -- /predict-next ---------------------------------------------------------------------------
def test_predict_next_shows_tokens_and_ranked_candidates(client: TestClient) -> None:
    answer = client.post("/predict-next", json={"text": f"我爱{RARE}", "top_k": 7}).json()
    assert [t["token"] for t in answer["tokens"]][:2] == ["我", "爱"]
    assert answer["tokens"][0]["oov"] is False and any(t["oov"] for t in answer["tokens"])
    candidates = answer["candidates"]
    assert len(candidates) == 7
    logprobs = [c["logprob"] for c in candidates]
    assert logprobs == sorted(logprobs, reverse=True)
    assert all(math.isclose(c["prob"], math.exp(c["logprob"])) for c in candidates)
    assert "<unk>" not in [c["token"] for c in candidates]


def test_predict_next_from_the_start_state_matches_the_model(client, checkpoint) -> None:
    answer = client.post("/predict-next", json={"text": "", "top_k": 100}).json()
    log_probs = read_prompt(checkpoint.model, [], checkpoint.vocab.eos_id)[0].clone()
    log_probs[checkpoint.vocab.unk_id] = float("-inf")
    values, ids = log_probs.topk(100)
    assert answer["tokens"] == []
    assert [c["token"] for c in answer["candidates"]] == checkpoint.vocab.decode(ids.tolist())
    assert [c["logprob"] for c in answer["candidates"]] == pytest.approx(values.tolist(), abs=1e-5)
    flagged = [c["token"] for c in answer["candidates"] if c["end_of_text"]]
    assert flagged in ([], ["<eos>"])


def test_predict_next_reports_eos_as_end_of_text(client: TestClient) -> None:
    # after a full stop, the end of the text is among the likely continuations
    answer = client.post("/predict-next", json={"text": "我们去北京。", "top_k": 100}).json()
    eos = [c for c in answer["candidates"] if c["token"] == "<eos>"]
    assert len(eos) == 1 and eos[0]["end_of_text"] is True


# -- /generate -------------------------------------------------------------------------------
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


# -- /perplexity -----------------------------------------------------------------------------
def test_perplexity_equals_model_evaluate(client, tiny_checkpoint, tmp_path) -> None:
    texts = ["我爱北京天安门。", f"今天{RARE}的天气很好", "人民日报社论"]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    files = {"train": str(path), "valid": str(path), "test": str(path)}
    for text in texts:
        single = tmp_path / "one.txt"
        single.write_text(text + "\n", encoding="utf-8")
        one_file = {"train": str(single), "valid": str(single), "test": str(single)}
        expected = evaluate(str(tiny_checkpoint), split_files=one_file)
        (answer,) = client.post("/perplexity", json={"text": text}).json()["results"]
        assert answer["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-4)
        assert answer["num_tokens"] == expected["num_tokens"]
    pooled = evaluate(str(tiny_checkpoint), split_files=files)
    results = client.post("/perplexity", json={"texts": texts}).json()["results"]
    total_nll = sum(r["mean_nll"] * r["num_tokens"] for r in results)
    count = sum(r["num_tokens"] for r in results)
    assert math.exp(total_nll / count) == pytest.approx(pooled["perplexity"], rel=1e-4)


def test_perplexity_alone_equals_in_batch(client: TestClient) -> None:
    texts = ["我爱北京天安门。", "", "新华社北京电" * 10]
    batch = client.post("/perplexity", json={"texts": texts}).json()["results"]
    for text, batched in zip(texts, batch, strict=True):
        (alone,) = client.post("/perplexity", json={"text": text}).json()["results"]
        assert alone["perplexity"] == pytest.approx(batched["perplexity"], rel=1e-4)


def test_perplexity_details_flag_oov_and_end_with_eos(client, checkpoint) -> None:
    text = f"我爱{RARE}"
    (answer,) = client.post("/perplexity", json={"text": text, "details": True}).json()["results"]
    tokens = answer["tokens"]
    encoded = encode_text(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab, text)
    assert [t["token"] for t in tokens] == [*encoded.tokens, "<eos>"]
    assert [t["oov"] for t in tokens] == [*encoded.oov, False]
    assert answer["oov_count"] == sum(encoded.oov) >= 1
    assert answer["num_tokens"] == len(encoded.ids) + 1
    mean_nll = -sum(t["logprob"] for t in tokens) / len(tokens)
    assert answer["mean_nll"] == pytest.approx(mean_nll, rel=1e-5)
    assert answer["perplexity"] == pytest.approx(math.exp(mean_nll), rel=1e-4)


def test_empty_text_scores_its_end(client: TestClient) -> None:
    (answer,) = client.post("/perplexity", json={"text": ""}).json()["results"]
    assert answer["num_tokens"] == 1 and answer["perplexity"] > 1


# -- errors ----------------------------------------------------------------------------------
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


def test_nan_and_infinity_are_refused(client: TestClient) -> None:
    for literal in ("NaN", "Infinity"):
        body = '{"prompt": "我", "temperature": ' + literal + "}"
        response = client.post(
            "/generate", content=body, headers={"content-type": "application/json"}
        )
        assert error_of(response)[:2] == (422, "validation_error")


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/generate", content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    assert error_of(response)[:2] == (422, "invalid_json")


def test_lone_surrogate_is_422(client: TestClient) -> None:
    body = '{"text": "\\ud800"}'
    response = client.post(
        "/perplexity", content=body, headers={"content-type": "application/json"}
    )
    status, error_type, message = error_of(response)
    assert (status, error_type) == (422, "validation_error") and "surrogate" in message


def test_text_over_the_limits_is_413(make_settings) -> None:
    app = create_app(make_settings(max_text_chars=40, max_text_tokens=6, max_texts=2,
                                   max_body_bytes=2048))  # fmt: skip
    with TestClient(app) as limited:
        cases = [
            ("/perplexity", {"text": "我" * 41}, "NEXTWORD_MAX_TEXT_CHARS"),
            (
                "/predict-next",
                {"text": "我爱北京天安门，天安门上太阳升"},
                "NEXTWORD_MAX_TEXT_TOKENS",
            ),
            ("/perplexity", {"texts": ["a", "b", "c"]}, "NEXTWORD_MAX_TEXTS"),
            ("/generate", {"prompt": "x" * 4000}, "NEXTWORD_MAX_BODY_BYTES"),
        ]
        for path, body, limit in cases:
            status, error_type, message = error_of(limited.post(path, json=body))
            assert (status, error_type) == (413, "too_large") and limit in message


def test_unknown_route_and_method_use_the_error_body(client: TestClient) -> None:
    assert error_of(client.get("/nowhere"))[:2] == (404, "not_found")
    assert error_of(client.delete("/generate"))[:2] == (405, "method_not_allowed")


def test_not_ready_without_a_model(tmp_path, make_settings) -> None:
    app = create_app(make_settings(model_dir=tmp_path / "missing"))
    with TestClient(app) as no_model:
        assert no_model.get("/health").status_code == 200
        ready = no_model.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "could not be loaded" in ready.json()["reason"]
        for path, body in (("/predict-next", {"text": "我"}), ("/generate", {}),
                           ("/perplexity", {"text": "我"})):  # fmt: skip
            status, error_type, message = error_of(no_model.post(path, json=body))
            assert (status, error_type) == (503, "not_ready")
            assert str(tmp_path) not in message


def test_error_mid_stream_is_an_event_with_the_error_body(make_settings) -> None:
    app = create_app(make_settings(max_new_tokens=100_000))
    with TestClient(app) as stopping:
        request = {"prompt": "我", "max_new_tokens": 100_000, "ignore_eos": True, "stream": True}
        with stopping.stream("POST", "/generate", json=request) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert '"token"' in first
            app.state.engine.stop()  # the server shuts down mid-generation
            events = sse_events(lines)
    assert events[-1] == "[DONE]"
    assert events[-2] == {"error": "the server is shutting down", "error_type": "not_ready"}


# -- health, info, metrics, documentation, static files, CORS ----------------------------------
def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "reason": None}


def test_info_is_the_model_card(client, checkpoint) -> None:
    info = client.get("/info").json()
    config = checkpoint.model.config
    assert info["model"]["cell"] == config.cell
    assert info["model"]["hidden_size"] == config.hidden_size
    assert info["model"]["vocab_size"] == len(checkpoint.vocab)
    assert info["tokenizer"]["name"] == "jieba"
    assert info["checkpoint"]["weights_sha256"] == checkpoint.weights_sha256
    assert info["training"]["test_ppl"] == checkpoint.metadata["training"]["test_ppl"]
    assert info["limits"]["max_new_tokens"] == 1024
    assert {"python", "torch", "fastapi"} <= set(info["versions"])


def test_metrics_parse_and_counters_move(client: TestClient) -> None:
    before = client.get("/metrics").text
    client.post("/predict-next", json={"text": "我"})
    generated = client.post("/generate", json={"prompt": "我", "max_new_tokens": 7,
                                               "ignore_eos": True}).json()  # fmt: skip
    (scored,) = client.post("/perplexity", json={"text": "我爱北京"}).json()["results"]
    client.post("/predict-next", json={"top_k": 0})
    after = client.get("/metrics").text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("nextword_requests_total", route="/predict-next", status="200") == 1
    assert moved("nextword_requests_total", route="/predict-next", status="422") == 1
    assert moved("nextword_errors_total", error_type="validation_error") == 1
    assert moved("nextword_generated_tokens_total") == generated["usage"]["generated_tokens"]
    assert moved("nextword_scored_tokens_total") == scored["num_tokens"]
    assert moved("nextword_request_duration_seconds_count", route="/generate") == 1
    assert moved("nextword_time_to_first_token_seconds_count") == 1
    assert moved("nextword_time_per_output_token_seconds_count") == 6
    assert moved("nextword_step_batch_size_count") >= 7
    assert moved("nextword_queue_time_seconds_count") == 3
    assert metric(after, "nextword_model_info") == 1
    assert metric(after, "nextword_batch_size") == 0 and metric(after, "nextword_queue_size") == 0


def test_openapi_documents_examples_and_error_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("PredictRequest", "GenerateRequest", "PerplexityRequest"):
        assert components[name]["examples"], name
    responses = schema["paths"]["/generate"]["post"]["responses"]
    for code in ("413", "422", "429", "503"):
        ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert "text/event-stream" in responses["200"]["content"]


def test_static_playground_at_root_and_api_first(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/health").json() == {"status": "ok"}


def test_cors_off_by_default_on_when_configured(client, make_settings) -> None:
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with TestClient(create_app(make_settings(cors_origins=["https://example.org"]))) as cors:
        allowed = cors.get("/health", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "https://example.org"


def test_body_without_length_over_the_limit_is_413(make_settings) -> None:
    with TestClient(create_app(make_settings(max_body_bytes=1024))) as limited:
        chunks = iter([b'{"text": "', b"x" * 2000, b'"}'])  # streamed: no Content-Length
        response = limited.post(
            "/perplexity", content=chunks, headers={"content-type": "application/json"}
        )
        status, error_type, message = error_of(response)
        assert (status, error_type) == (413, "too_large") and "NEXTWORD_MAX_BODY_BYTES" in message
