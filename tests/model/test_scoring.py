"""Reading a split as lines or as one document, with a cache and with dynamic evaluation, on the
tiny real checkpoint; the evaluate command's new flags and their errors."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from model.batching import document_stream
from model.checkpoint import Checkpoint, load_checkpoint
from model.evaluate import cli as evaluate_cli
from model.evaluate.cli import evaluate, split_ids
from model.evaluate.dynamic import DynamicConfig, read_document_dynamic
from model.pointer_cache import CacheConfig
from model.scoring import read_document, read_lines, score_lines, score_with_cache


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Checkpoint:
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def lines(checkpoint: Checkpoint) -> list[list[int]]:
    return split_ids(checkpoint, None, "valid", None)[1][:12]


def test_document_stream_has_the_line_targets_each_closed_by_eos():
    inputs, targets = document_stream([[5, 6], [], [7]], eos_id=1)
    assert targets.tolist() == [5, 6, 1, 1, 7, 1]
    assert inputs.tolist() == [1, 5, 6, 1, 1, 7]


def test_read_lines_scores_what_score_lines_scores(checkpoint, lines):
    reading = read_lines(checkpoint.model, lines, checkpoint.vocab.eos_id, batch_size=5, bptt=7)
    expected = torch.cat(score_lines(checkpoint.model, lines, checkpoint.vocab.eos_id))
    assert torch.allclose(reading.log_probs, expected, atol=1e-5)
    assert reading.features.shape == (len(expected), checkpoint.model.config.feature_size)
    assert reading.segment_starts[1] == len(lines[0]) + 1


def test_document_reads_the_same_targets_and_its_first_line_as_line_mode(checkpoint, lines):
    eos = checkpoint.vocab.eos_id
    by_line = read_lines(checkpoint.model, lines, eos)
    document = read_document(checkpoint.model, lines, eos, bptt=9)
    assert torch.equal(document.targets, by_line.targets)
    first = len(lines[0]) + 1  # from the same start state, the first line reads alike
    assert torch.allclose(document.log_probs[:first], by_line.log_probs[:first], atol=1e-5)
    assert not torch.allclose(document.log_probs[first:], by_line.log_probs[first:], atol=1e-3)
    longer = read_document(checkpoint.model, lines, eos, bptt=256)  # windows change nothing
    assert torch.allclose(document.log_probs, longer.log_probs, atol=1e-5)


def test_a_line_cache_never_reaches_into_the_previous_line(checkpoint, lines):
    reading = read_lines(checkpoint.model, lines, checkpoint.vocab.eos_id)
    mixed = score_with_cache(reading, CacheConfig(100, 0.5, 0.3), checkpoint.vocab.unk_id)
    for start in reading.segment_starts:  # every line's first target has an empty cache
        assert mixed[start] == reading.log_probs[start]


def test_dynamic_evaluation_adapts_a_copy_and_without_steps_is_the_plain_document(
    checkpoint, lines, tiny_checkpoint
):
    eos, model = checkpoint.vocab.eos_id, checkpoint.model
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    on_disk = hashlib.sha256((tiny_checkpoint / "model.safetensors").read_bytes()).hexdigest()
    still = read_document_dynamic(model, lines, eos, DynamicConfig(lr=0.0, decay=0.0, segment=9))
    plain = read_document(model, lines, eos)
    assert torch.allclose(still.log_probs, plain.log_probs, atol=1e-5)
    moving = read_document_dynamic(model, lines, eos, DynamicConfig(lr=0.5, decay=0.01, segment=9))
    assert torch.equal(moving.log_probs[:9], still.log_probs[:9])  # scored before any step
    assert not torch.allclose(moving.log_probs[9:], still.log_probs[9:], atol=1e-3)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert hashlib.sha256((tiny_checkpoint / "model.safetensors").read_bytes()).hexdigest() == (
        on_disk
    )


def test_every_context_scores_the_same_count_and_line_mode_is_unchanged(tiny_checkpoint):
    plain = evaluate(str(tiny_checkpoint), split="valid")
    cache = CacheConfig(50, 0.3, 0.2)
    document = evaluate(str(tiny_checkpoint), split="valid", context="document", cache=cache)
    line = evaluate(str(tiny_checkpoint), split="valid", context="line", cache=cache)
    assert plain["num_tokens"] == document["num_tokens"] == line["num_tokens"] > 1000
    assert line["perplexity_model"] == pytest.approx(plain["perplexity"], rel=1e-5)
    assert document["perplexity"] == document["perplexity_cache"]
    assert document["perplexity"] != document["perplexity_model"]


def test_evaluate_cli_prints_every_figure_of_a_cached_document(tiny_checkpoint, capsys):
    flags = ["--cache-window", "40", "--cache-theta", "0.3", "--cache-lambda", "0.1"]
    evaluate_cli.main(
        ["--checkpoint", str(tiny_checkpoint), "--context", "document", "--cache", *flags]
    )
    out = capsys.readouterr().out
    assert "document context" in out and "<unk> takes cache mass" in out and "tokens/s" in out
    evaluate_cli.main(
        ["--checkpoint", str(tiny_checkpoint), "--context", "document", "--json", "--cache"] + flags
    )
    result = json.loads(capsys.readouterr().out)
    assert result["cache"] == {"window": 40, "theta": 0.3, "lam": 0.1, "unk_takes_mass": False}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cache"], "model.evaluate.tune_cache"),
        (["--cache", "--cache-window", "100"], "--cache-theta"),
        (["--cache", "--cache-window", "0", "--cache-theta", "1", "--cache-lambda", "0.1"], "≥ 1"),
        (["--dynamic-eval", "--dynamic-lr", "0.1", "--dynamic-decay", "0"], "--context document"),
        (["--dynamic-eval", "--context", "document"], "--dynamic-lr"),
    ],
)
def test_evaluate_cli_refuses_missing_settings_in_one_line(tiny_checkpoint, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--checkpoint", str(tiny_checkpoint), *flags])
    text = str(exit_info.value.code)
    assert text.startswith("error: ") and message in text and "\n" not in text


def test_a_document_wide_cache_over_line_states_keeps_the_line_model(tiny_checkpoint):
    cache = CacheConfig(200, 0.3, 0.2)
    per_line = evaluate(str(tiny_checkpoint), split="valid", cache=cache)
    across = evaluate(str(tiny_checkpoint), split="valid", cache=cache, cache_scope="document")
    assert across["perplexity_model"] == per_line["perplexity_model"]
    assert across["perplexity_cache"] != per_line["perplexity_cache"]
    assert across["cache_scope"] == "document" and across["context"] == "line"
