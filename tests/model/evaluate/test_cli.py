"""`python -m model.evaluate` on the tiny real checkpoint: the benchmark's figure, the other
readings beside it, the corpus it reads by default, and its refusals."""

import json
import shutil
from pathlib import Path

import pytest

from model.checkpoint import load_checkpoint
from model.evaluate import cli as evaluate_cli
from model.evaluate.cli import evaluate, split_ids
from model.pointer_cache import CacheConfig
from model.quantize import quantize_int8


def test_perplexity_does_not_depend_on_batch_size_or_read_window(tiny_checkpoint):
    one = evaluate(str(tiny_checkpoint), split="valid", batch_size=1, window=7)
    many = evaluate(str(tiny_checkpoint), split="valid", batch_size=64)
    assert one["num_tokens"] == many["num_tokens"] > 1000
    assert one["perplexity"] == pytest.approx(many["perplexity"], rel=1e-4)


def test_evaluate_json_matches_training_test_figure(tiny_checkpoint, capsys):
    evaluate_cli.main(["--checkpoint", str(tiny_checkpoint), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"perplexity", "num_tokens", "vocab_size", "unk_rate"}
    recorded = json.loads((tiny_checkpoint / "config.json").read_text())["training"]["test_ppl"]
    assert result["perplexity"] == pytest.approx(recorded, rel=1e-9)  # one formula, both sides
    assert 0 < result["unk_rate"] < 0.5


def test_quantize_int8_gives_the_figure_of_the_int8_weights_the_service_serves(
    tiny_checkpoint, capsys
):
    evaluate_cli.main(["--checkpoint", str(tiny_checkpoint), "--json", "--quantize", "int8"])
    int8 = json.loads(capsys.readouterr().out)["perplexity"]
    served = load_checkpoint(tiny_checkpoint)
    served.model = quantize_int8(served.model)
    assert int8 == pytest.approx(evaluate(served)["perplexity"], rel=1e-9)
    recorded = json.loads((tiny_checkpoint / "config.json").read_text())["training"]["test_ppl"]
    assert int8 != recorded and int8 == pytest.approx(recorded, rel=0.01)


def test_the_default_corpus_is_the_one_the_checkpoint_was_trained_on(
    tiny_checkpoint, tiny_corpus_file, tmp_path
):
    checkpoint = load_checkpoint(tiny_checkpoint)
    source, ids = split_ids(checkpoint, None, "valid", None)
    assert source == str(tiny_corpus_file) and len(ids) == 30  # 5% of its 600 lines
    # the same text as explicit files: the result names the file of the split it read
    for split in ("train", "valid", "test"):
        shutil.copy(tiny_corpus_file, tmp_path / f"{split}.txt")
    files = {split: str(tmp_path / f"{split}.txt") for split in ("train", "valid", "test")}
    source, all_lines = split_ids(checkpoint, None, "valid", files)
    assert source == files["valid"] and len(all_lines) == 600


def test_every_context_scores_the_same_count_and_line_mode_is_unchanged(tiny_checkpoint):
    plain = evaluate(str(tiny_checkpoint), split="valid")
    cache = CacheConfig(50, 0.3, 0.2)
    document = evaluate(str(tiny_checkpoint), split="valid", context="document", cache=cache)
    line = evaluate(str(tiny_checkpoint), split="valid", context="line", cache=cache)
    assert plain["num_tokens"] == document["num_tokens"] == line["num_tokens"] > 1000
    assert line["perplexity_model"] == pytest.approx(plain["perplexity"], rel=1e-9)
    assert document["perplexity"] == document["perplexity_cache"]
    assert document["perplexity"] != document["perplexity_model"]


def test_a_document_wide_cache_over_line_states_keeps_the_line_model(tiny_checkpoint):
    cache = CacheConfig(200, 0.3, 0.2)
    per_line = evaluate(str(tiny_checkpoint), split="valid", cache=cache)
    across = evaluate(str(tiny_checkpoint), split="valid", cache=cache, cache_scope="document")
    assert across["perplexity_model"] == per_line["perplexity_model"]
    assert across["perplexity_cache"] != per_line["perplexity_cache"]
    assert across["cache_scope"] == "document" and across["context"] == "line"


def test_evaluate_cli_prints_every_figure_of_a_cached_document(tiny_checkpoint, capsys):
    flags = ["--cache-window", "40", "--cache-theta", "0.3", "--cache-lambda", "0.1",
             "--cache-half-fill", "5", "--cache-min-fill", "3"]  # fmt: skip
    evaluate_cli.main(
        ["--checkpoint", str(tiny_checkpoint), "--context", "document", "--cache", *flags]
    )
    out = capsys.readouterr().out
    assert "document context" in out and "<unk> takes cache mass" in out and "tokens/s" in out
    evaluate_cli.main(
        ["--checkpoint", str(tiny_checkpoint), "--context", "document", "--json", "--cache"] + flags
    )
    result = json.loads(capsys.readouterr().out)
    settings = {"window": 40, "theta": 0.3, "lam": 0.1, "unk_takes_mass": False, "half_fill": 5,
                "min_fill": 3}  # fmt: skip
    assert result["cache"] == settings


def test_evaluate_cli_adapts_as_it_reads_with_dynamic(tiny_checkpoint, capsys):
    flags = ["--dynamic", "--dynamic-lr", "0.1", "--dynamic-decay", "0", "--dynamic-segment", "20"]
    evaluate_cli.main(["--checkpoint", str(tiny_checkpoint), "--context", "document", *flags])
    out = capsys.readouterr().out
    assert "document context, dynamic" in out and "dynamic lr 0.1, decay 0.0, segment 20" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cache"], "model.evaluate.tune_cache"),
        (["--cache", "--cache-window", "100"], "--cache-theta"),
        (["--cache", "--cache-window", "0", "--cache-theta", "1", "--cache-lambda", "0.1"], "≥ 1"),
        (["--dynamic", "--dynamic-lr", "0.1", "--dynamic-decay", "0"], "--context document"),
        (["--dynamic", "--context", "document"], "--dynamic-lr"),
        (["--corpus", "/nonexistent/corpus.txt"], "is neither 'peoples-daily'"),
        (["--test-file", "/nonexistent/test.txt"], "missing ['train', 'valid']"),
        (
            [
                "--context",
                "document",
                "--dynamic",
                "--dynamic-lr",
                "0.1",
                "--dynamic-decay",
                "0",
                "--quantize",
                "int8",
            ],
            "int8 weights cannot",
        ),
    ],
)
def test_evaluate_cli_refuses_missing_settings_in_one_line(tiny_checkpoint, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--checkpoint", str(tiny_checkpoint), *flags])
    text = str(exit_info.value.code)
    assert text.startswith("error: ") and message in text and "\n" not in text


def test_the_corpus_flags_are_model_trains(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per flag
    with pytest.raises(SystemExit):
        evaluate_cli.build_parser().parse_args(["--help"])
    help_text = capsys.readouterr().out
    for flag in ("--corpus", "--train-file", "--valid-file", "--test-file", "--read-window"):
        assert flag in help_text
    assert "a directory with train/valid/test.txt" in help_text  # model.train's own help


def test_a_missing_checkpoint_is_one_line(tmp_path: Path):
    with pytest.raises(SystemExit, match="^error: .*does not exist"):
        evaluate_cli.main(["--checkpoint", str(tmp_path / "none")])
