"""`python -m model.generate` runs the service's own step: the same options and seed give the
text `POST /generate` gives, for a prompt of several lines and with the cache on or off."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.checkpoint import load_checkpoint
from model.generate import generate, main
from model.runner import Runner
from model.sampling import SamplingOptions
from model.tokenizers import TextEncoder, build_tokenizer

TWO_LINES = "新华社北京一月一日电\n今天"
SAMPLED = ["--temperature", "0.9", "--top-k", "40", "--top-p", "0.95", "--max-new-tokens", "30",
           "--ignore-eos"]  # fmt: skip


def _cli_text(checkpoint: Path, prompt: str, capsys, *flags: str) -> tuple[str, str]:
    """(printed text after the prompt, the summary line) of one run of the command line."""
    main(["--checkpoint", str(checkpoint), "--prompt", prompt, *flags])
    text, summary = capsys.readouterr().out.rsplit("\n", 2)[:2]
    assert text.startswith(prompt)
    return text[len(prompt) :], summary


@pytest.mark.parametrize("cache", [True, False])
def test_command_line_and_post_generate_give_the_same_text(tuned_checkpoint, capsys, cache):
    """On a checkpoint that reads documents with a cache pointer, a two-line prompt."""
    flag = "--cache" if cache else "--no-cache"
    cli_text, summary = _cli_text(
        tuned_checkpoint, TWO_LINES, capsys, *SAMPLED, "--seed", "7", flag
    )
    request = {"prompt": TWO_LINES, "seed": 7, "temperature": 0.9, "top_k": 40, "top_p": 0.95,
               "max_new_tokens": 30, "ignore_eos": True, "cache": cache}  # fmt: skip
    settings = Settings(model_dir=tuned_checkpoint, threads=1)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as client:
        answer = client.post("/generate", json=request).json()
    assert cli_text == answer["generated_text"] and cli_text
    assert f"finish_reason={answer['finish_reason']} seed=7" in summary


def test_the_cache_changes_what_a_seed_generates(tuned_checkpoint, capsys) -> None:
    """The flag reaches the step: with the same seed, the mixture samples another text."""
    prompt = "中国人民银行今天宣布。" * 3
    texts = {
        _cli_text(tuned_checkpoint, prompt, capsys, *SAMPLED, "--seed", str(seed), flag)[0]
        for seed in range(3)
        for flag in ("--cache", "--no-cache")
    }
    assert len(texts) > 3


def test_the_same_seed_prints_the_same_text(tiny_checkpoint, capsys) -> None:
    args = ["--checkpoint", str(tiny_checkpoint), "--prompt", "我爱", *SAMPLED, "--seed", "1"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first
    assert first.startswith("我爱") and "seed=1" in first


def test_ignore_eos_generates_exactly_max_new_tokens(tiny_checkpoint) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    encoder = TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)
    options = SamplingOptions(temperature=1.5, max_new_tokens=40, seed=3, ignore_eos=True)
    result = generate(Runner(checkpoint), encoder, "", options)
    ids = [token.id for token in result.tokens]
    assert result.finish.finish_reason == "length" and len(ids) == 40
    assert checkpoint.vocab.eos_id not in ids and checkpoint.vocab.unk_id not in ids


def test_command_line_refuses_bad_options_in_one_line(tiny_checkpoint, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tiny_checkpoint), "--top-p", "0"])
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
