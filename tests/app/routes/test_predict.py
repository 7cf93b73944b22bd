"""POST /predict-next (app/routes/predict.py): the input as the model read it and the most
probable next tokens, through an in-process client on the tiny real checkpoint."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from tests.app.support import RARE
from tests.oracles import read_prompt


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
    candidates = answer["candidates"]
    assert answer["tokens"] == []
    assert [c["token"] for c in candidates] == checkpoint.vocab.decode(ids.tolist())
    assert [c["logprob"] for c in candidates] == pytest.approx(values.tolist(), abs=1e-5)
    # end_of_text marks <eos>, and only it
    assert [c["end_of_text"] for c in candidates] == [c["token"] == "<eos>" for c in candidates]


def test_predict_next_reports_eos_as_end_of_text(client: TestClient) -> None:
    # after a full stop, the end of the text is among the likely continuations
    answer = client.post("/predict-next", json={"text": "我们去北京。", "top_k": 100}).json()
    eos = [c for c in answer["candidates"] if c["token"] == "<eos>"]
    assert len(eos) == 1 and eos[0]["end_of_text"] is True
