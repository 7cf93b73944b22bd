"""The one generation loop: stop rules of a Decoding, and the command line running it."""

from __future__ import annotations

import pytest

from model.checkpoint import load_checkpoint
from model.decoding import Decoding, generate
from model.generate import main
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


def test_ignore_eos_generates_exactly_max_new_tokens(loaded) -> None:
    checkpoint, tokenizer = loaded
    options = SamplingOptions(temperature=1.5, max_new_tokens=40, seed=3, ignore_eos=True)
    result = generate(checkpoint.model, tokenizer, checkpoint.vocab, "", options)
    assert result.finish_reason == "length" and len(result.token_ids) == 40
    assert checkpoint.vocab.eos_id not in result.token_ids
    assert checkpoint.vocab.unk_id not in result.token_ids


def test_command_line_prints_prompt_text_and_finish(loaded, tiny_checkpoint, capsys) -> None:
    checkpoint, tokenizer = loaded
    options = SamplingOptions(temperature=0.8, top_k=20, max_new_tokens=12, seed=5)
    expected = generate(checkpoint.model, tokenizer, checkpoint.vocab, "我们", options)
    main(["--checkpoint", str(tiny_checkpoint), "--prompt", "我们", "--temperature", "0.8",
          "--top-k", "20", "--max-new-tokens", "12", "--seed", "5"])  # fmt: skip
    text, summary = capsys.readouterr().out.splitlines()
    assert text == "我们" + expected.text
    assert f"finish_reason={expected.finish_reason} seed=5" in summary


def test_command_line_refuses_bad_options_in_one_line(tiny_checkpoint, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tiny_checkpoint), "--top-p", "0"])
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
