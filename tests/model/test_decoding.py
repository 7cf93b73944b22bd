"""One sequence's generation: the stop rules and finish reasons of a Decoding."""

from __future__ import annotations

import pytest

from app.schemas import GenerateResponse
from model.checkpoint import load_checkpoint
from model.decoding import FINISH_REASONS, Decoding
from model.sampling import SamplingOptions
from model.tokenizers import build_tokenizer


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    return checkpoint, build_tokenizer(checkpoint.tokenizer_spec)


def _decoding(loaded, **options) -> Decoding:
    checkpoint, tokenizer = loaded
    vocab = checkpoint.vocab
    return Decoding([], [], SamplingOptions(seed=1, **options), vocab.eos_id, tokenizer)


def test_each_finish_reason(loaded) -> None:
    vocab = loaded[0].vocab
    word = next(t for t in vocab.itos if t not in ("<eos>", "<unk>"))
    eos = _decoding(loaded)
    assert eos.accept(vocab.eos_id, "<eos>").finish_reason == "eos_token" and eos.text == ""
    two = _decoding(loaded, max_new_tokens=2)
    assert two.accept(vocab.stoi[word], word).finish_reason is None
    assert two.accept(vocab.stoi[word], word).finish_reason == "length"
    assert two.text == word * 2 or two.text == f"{word} {word}"
    late = _decoding(loaded)
    late.deadline = 0.0
    assert late.accept(vocab.stoi[word], word).finish_reason == "time_limit"


def test_a_stop_string_across_two_tokens_ends_the_text(loaded) -> None:
    vocab = loaded[0].vocab
    first, second = [t for t in vocab.itos if len(t) == 1 and "\u4e00" <= t <= "\u9fff"][:2]
    decoding = _decoding(loaded, stop=(first + second,), max_new_tokens=50)
    assert decoding.accept(vocab.stoi[first], first).finish_reason is None
    assert decoding.accept(vocab.stoi[second], second).finish_reason == "stop_sequence"


def test_the_finish_reasons_a_generation_ends_with_are_those_the_api_declares(loaded) -> None:
    vocab = loaded[0].vocab
    word = next(t for t in vocab.itos if t not in ("<eos>", "<unk>"))
    late = _decoding(loaded)
    late.deadline = 0.0
    endings = [
        (_decoding(loaded, max_new_tokens=1), vocab.stoi[word], word),
        (_decoding(loaded), vocab.eos_id, "<eos>"),
        (_decoding(loaded, stop=(word,)), vocab.stoi[word], word),
        (late, vocab.stoi[word], word),
    ]
    produced = [decoding.accept(i, token).finish_reason for decoding, i, token in endings]
    assert sorted(produced) == sorted(FINISH_REASONS)  # each declared one, each once
    schema = GenerateResponse.model_json_schema()["properties"]["finish_reason"]
    assert sorted(schema["enum"]) == sorted(produced)
