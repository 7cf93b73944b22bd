"""POST /perplexity (app/routes/perplexity.py): the figures of model.evaluate for each text,
alone or in a batch, with per-token details, through an in-process client on the tiny real
checkpoint."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from model.evaluate.cli import evaluate
from model.tokenizers import build_tokenizer, encode_text
from tests.app.support import RARE
from tests.oracles import read_prompt


def test_perplexity_equals_model_evaluate(client, checkpoint, tmp_path) -> None:
    texts = ["我爱北京天安门。", f"今天{RARE}的天气很好", "人民日报社论"]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    files = {"train": str(path), "valid": str(path), "test": str(path)}
    for text in texts:
        single = tmp_path / "one.txt"
        single.write_text(text + "\n", encoding="utf-8")
        one_file = {"train": str(single), "valid": str(single), "test": str(single)}
        expected = evaluate(checkpoint, split_files=one_file)
        (answer,) = client.post("/perplexity", json={"text": text}).json()["results"]
        assert answer["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-4)
        assert answer["num_tokens"] == expected["num_tokens"]
    pooled = evaluate(checkpoint, split_files=files)
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


def test_empty_text_scores_its_end(client, checkpoint) -> None:
    body = {"text": "", "details": True}
    (answer,) = client.post("/perplexity", json=body).json()["results"]
    assert answer["num_tokens"] == 1 and answer["perplexity"] > 1
    # its one target is the <eos> that ends it, right after the start state
    (end,) = answer["tokens"]
    eos = checkpoint.vocab.eos_id
    expected = float(read_prompt(checkpoint.model, [], eos)[0][eos])
    assert (end["token"], end["oov"]) == ("<eos>", False)
    assert end["logprob"] == pytest.approx(expected, abs=1e-5)
    assert answer["perplexity"] == pytest.approx(math.exp(-end["logprob"]), rel=1e-5)
