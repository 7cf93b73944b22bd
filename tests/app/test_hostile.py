"""Hostile input, one table: every case against every endpoint it concerns is a clear 4xx with
the one error body (or a correct 200), never a 5xx, and the service answers normally after it.

A case is (name, path, body, content type, expected status); the body is raw bytes, or an
object sent as JSON. Text cases run against the text field of every model endpoint."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

JSON = "application/json"
MB = 1 << 20
TEXT_FIELDS = {"/predict-next": "text", "/generate": "prompt", "/perplexity": "text"}

# (name, text or raw JSON string literal, expected status, phrase the error must contain)
TEXTS: list[tuple[str, str | bytes, int, str]] = [
    ("empty", "", 200, ""),
    ("whitespace only", " \t\n\u3000 ", 200, ""),
    ("1 MB of text", "a" * MB, 413, "NEXTWORD_MAX_BODY_BYTES"),
    ("NUL and control characters", "我\x00爱\x01\x07\x1b[31m北京\x7f\x9f\r\n", 200, ""),
    ("lone surrogate", b'"\\ud800 alone"', 422, "surrogate"),
    ("emoji, combining, RTL, mixed", "😀👍🏽 e\u0301 مرحبا שלום 我爱NLP 2024年5月", 200, ""),
    ("10,000-token text", "我爱" * 5000, 413, "NEXTWORD_MAX_TEXT_TOKENS"),
]


def text_cases() -> list[tuple[str, str, bytes | dict, str, int, str]]:
    cases = []
    for name, text, status, phrase in TEXTS:
        for path, field in TEXT_FIELDS.items():
            extra = ', "max_new_tokens": 3' if path == "/generate" else ""
            literal = text if isinstance(text, bytes) else json.dumps(text).encode()
            body = b'{"' + field.encode() + b'": ' + literal + extra.encode() + b"}"
            cases.append((f"{name} {path}", path, body, JSON, status, phrase))
    return cases


FIELD_CASES: list[tuple[str, str, bytes | dict, str, int, str]] = [
    ("top_k zero", "/predict-next", {"top_k": 0}, JSON, 422, "top_k"),
    ("huge top_k", "/predict-next", {"top_k": 10**9}, JSON, 422, "top_k"),
    ("huge top_k beyond the vocabulary", "/generate",
     {"top_k": 10**6, "max_new_tokens": 3}, JSON, 200, ""),
    ("top_k beyond its cap", "/generate", {"top_k": 10**12}, JSON, 422, "top_k"),
    ("negative temperature", "/generate", {"temperature": -1}, JSON, 422, "temperature"),
    ("top_p above 1", "/generate", {"top_p": 1.5}, JSON, 422, "top_p"),
    ("max_new_tokens 0", "/generate", {"max_new_tokens": 0}, JSON, 422, "max_new_tokens"),
    ("max_new_tokens 10**30", "/generate", {"max_new_tokens": 10**30}, JSON, 422,
     "max_new_tokens"),
    ("seed 2**64", "/generate", {"seed": 2**64}, JSON, 422, "seed"),
    ("seed 2**200", "/generate", {"seed": 2**200}, JSON, 422, "seed"),
    ("negative seed", "/generate", {"seed": -1}, JSON, 422, "seed"),
    ("largest seed", "/generate", {"seed": 2**64 - 1, "max_new_tokens": 3}, JSON, 200, ""),
    ("NaN temperature", "/generate", b'{"temperature": NaN}', JSON, 422, "temperature"),
    ("Infinity top_p", "/generate", b'{"top_p": Infinity}', JSON, 422, "top_p"),
    ("-Infinity penalty", "/generate", b'{"repetition_penalty": -Infinity}', JSON, 422,
     "repetition_penalty"),
    ("NaN top_k", "/predict-next", b'{"top_k": NaN}', JSON, 422, "top_k"),
    ("text is a number", "/predict-next", {"text": 5}, JSON, 422, "text"),
    ("text is a list", "/perplexity", {"text": ["a"]}, JSON, 422, "text"),
    ("top_k is a word", "/predict-next", {"top_k": "ten"}, JSON, 422, "top_k"),
    ("stop is a string", "/generate", {"stop": "。"}, JSON, 422, "stop"),
    ("details is not a boolean", "/perplexity", {"text": "a", "details": "maybe"}, JSON, 422,
     "details"),
    ("texts hold a null", "/perplexity", {"texts": ["a", None]}, JSON, 422, "texts.1"),
    ("text is null", "/perplexity", {"text": None}, JSON, 422, "text"),
    ("too many texts", "/perplexity", {"texts": ["a"] * 65}, JSON, 413, "NEXTWORD_MAX_TEXTS"),
    ("too many stop strings", "/generate", {"stop": ["a"] * 9}, JSON, 422,
     "NEXTWORD_MAX_STOP_STRINGS"),
    ("stop string too long", "/generate", {"stop": ["a" * 65]}, JSON, 422,
     "NEXTWORD_MAX_STOP_CHARS"),
    ("extra field /predict-next", "/predict-next", {"text": "a", "k": 1}, JSON, 422, "k"),
    ("extra field /generate", "/generate", {"prompt": "a", "n": 1}, JSON, 422, "n"),
    ("extra field /perplexity", "/perplexity", {"text": "a", "x": 1}, JSON, 422, "x"),
    ("missing text and texts", "/perplexity", {}, JSON, 422, "one of text"),
    ("missing fields take defaults /predict-next", "/predict-next", {}, JSON, 200, ""),
    ("missing fields take defaults /generate", "/generate", {"max_new_tokens": 2}, JSON, 200,
     ""),
    ("body is an array", "/generate", b"[]", JSON, 422, "body"),
    ("body is a string", "/predict-next", b'"text"', JSON, 422, "body"),
    ("invalid JSON", "/generate", b'{"prompt": "a",', JSON, 422, "body"),
    ("not UTF-8", "/predict-next", b'{"text": "\xff\xfe"}', JSON, 422, "UTF-8"),
    ("empty body", "/perplexity", b"", JSON, 422, "body"),
    ("deeply nested JSON", "/perplexity", b"[" * 10_000 + b"]" * 10_000, JSON, 422, "body"),
    ("wrong content type", "/predict-next", b'{"text": "a"}', "text/plain", 422, "body"),
    ("form content type", "/generate", b"prompt=a", "application/x-www-form-urlencoded", 422,
     "body"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "path", "body", "content_type", "status", "phrase"),
    [*text_cases(), *FIELD_CASES],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_hostile_input_is_a_clear_4xx_or_a_correct_200(
    client: TestClient, name, path, body, content_type, status, phrase
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=raw, headers={"content-type": content_type})
    assert response.status_code == status, (name, response.text[:300])
    answer = response.json()
    if status == 200:
        assert "error" not in answer
    else:
        assert set(answer) == {"error", "error_type"}
        assert phrase in answer["error"], (name, answer)
        assert "Traceback" not in answer["error"] and "/" not in answer["error"].split(" ")[0]
    assert client.get("/health").status_code == 200


def test_service_answers_normally_after_hostile_input(client: TestClient) -> None:
    for _, path, body, content_type, _, _ in [*text_cases(), *FIELD_CASES]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        assert (
            client.post(path, content=raw, headers={"content-type": content_type}).status_code < 500
        )
    answer = client.post("/generate", json={"prompt": "我爱", "max_new_tokens": 3, "seed": 1})
    assert answer.status_code == 200 and answer.json()["usage"]["prompt_tokens"] == 2
    assert client.get("/ready").json()["ready"] is True
