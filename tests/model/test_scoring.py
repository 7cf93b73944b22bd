"""The one reading of a split (lines or one document, a cache, a learning hook) and the one
perplexity formula, on the tiny real checkpoint."""

import math

import pytest
import torch

from model import scoring
from model.pointer_cache import CacheConfig
from model.scoring import (
    chunk_target_log_probs,
    lines_log_likelihood,
    log_likelihood,
    perplexity,
    perplexity_of,
    read_document,
    read_lines,
    read_split,
    score_lines,
    score_with_cache,
)


def test_perplexity_is_exp_of_the_mean_nll_pooled_over_every_target():
    scores = [torch.tensor([-1.0, -2.0]), torch.tensor([-3.0]), torch.empty(0)]
    assert log_likelihood(scores) == (-6.0, 3)
    assert perplexity(2.0) == math.exp(2.0)
    assert perplexity_of(scores) == (math.exp(2.0), 3)  # targets pooled, not lines averaged
    assert perplexity_of([]) == (1.0, 0)


def test_a_readings_perplexity_is_perplexity_of_its_scores(checkpoint, lines):
    reading = read_lines(checkpoint.model, lines, checkpoint.vocab.eos_id)
    assert reading.perplexity() == perplexity_of([reading.log_probs])[0]
    halved = reading.log_probs / 2
    assert reading.perplexity(halved) == pytest.approx(math.sqrt(reading.perplexity()))


def test_read_lines_scores_what_score_lines_scores(checkpoint, lines):
    reading = read_lines(checkpoint.model, lines, checkpoint.vocab.eos_id, batch_size=5, window=7)
    expected = torch.cat(score_lines(checkpoint.model, lines, checkpoint.vocab.eos_id))
    assert torch.allclose(reading.log_probs, expected, atol=1e-5)
    assert reading.features.shape == (len(expected), checkpoint.model.config.feature_size)
    assert reading.segment_starts[1] == len(lines[0]) + 1


def test_lines_log_likelihood_sums_what_score_lines_scores(checkpoint, lines):
    eos = checkpoint.vocab.eos_id
    total, count = lines_log_likelihood(checkpoint.model, lines, eos, batch_size=3, window=5)
    expected_total, expected_count = log_likelihood(score_lines(checkpoint.model, lines, eos))
    assert count == expected_count == sum(len(line) + 1 for line in lines)
    assert total == pytest.approx(expected_total, rel=1e-9)


def test_a_document_read_without_features_scores_alike_and_keeps_no_keys(checkpoint, lines):
    eos = checkpoint.vocab.eos_id
    kept = read_document(checkpoint.model, lines, eos, window=9)
    scores_only = read_document(checkpoint.model, lines, eos, window=9, keep_features=False)
    assert torch.equal(scores_only.log_probs, kept.log_probs)
    assert torch.equal(scores_only.targets, kept.targets)
    assert kept.features.shape == (kept.targets.numel(), checkpoint.model.config.feature_size)
    assert scores_only.features.numel() == 0


def test_document_reads_the_same_targets_and_its_first_line_as_line_mode(checkpoint, lines):
    eos = checkpoint.vocab.eos_id
    by_line = read_lines(checkpoint.model, lines, eos)
    document = read_document(checkpoint.model, lines, eos, window=9)
    assert torch.equal(document.targets, by_line.targets)
    first = len(lines[0]) + 1  # from the same start state, the first line reads alike
    assert torch.allclose(document.log_probs[:first], by_line.log_probs[:first], atol=1e-5)
    assert not torch.allclose(document.log_probs[first:], by_line.log_probs[first:], atol=1e-3)
    longer = read_document(checkpoint.model, lines, eos, window=256)  # windows change nothing
    assert torch.allclose(document.log_probs, longer.log_probs, atol=1e-5)


def test_read_split_is_either_reading_and_refuses_another_context(checkpoint, lines):
    eos = checkpoint.vocab.eos_id
    document = read_split(checkpoint.model, lines, eos, "document")
    assert document.segment_starts == [0]
    assert torch.equal(document.log_probs, read_document(checkpoint.model, lines, eos).log_probs)
    assert len(read_split(checkpoint.model, lines, eos, "line").segment_starts) == len(lines)
    with pytest.raises(ValueError, match="unknown context 'paragraph'"):
        read_split(checkpoint.model, lines, eos, "paragraph")


def test_a_learning_hook_sees_each_window_after_it_is_scored(checkpoint, lines):
    eos, model = checkpoint.vocab.eos_id, checkpoint.model
    seen: list[torch.Tensor] = []

    def learn(log_probs: torch.Tensor) -> None:
        assert log_probs.requires_grad  # a graph to learn from: not inference mode
        seen.append(log_probs.detach())

    reading = read_document(model, lines, eos, window=9, learn=learn)
    assert [len(s) for s in seen] == [len(w) for w in reading.targets.split(9)]
    assert torch.allclose(torch.cat(seen), reading.log_probs)
    plain = read_document(model, lines, eos, window=9)  # a hook that changes nothing
    assert torch.allclose(reading.log_probs, plain.log_probs, atol=1e-6)
    assert not plain.log_probs.requires_grad


def test_a_line_cache_never_reaches_into_the_previous_line(checkpoint, lines):
    reading = read_lines(checkpoint.model, lines, checkpoint.vocab.eos_id)
    mixed = score_with_cache(reading, CacheConfig(100, 0.5, 0.3), checkpoint.vocab.unk_id)
    for start in reading.segment_starts:  # every line's first target has an empty cache
        assert mixed[start] == reading.log_probs[start]
    assert not torch.equal(mixed, reading.log_probs)


def test_chunk_target_log_probs_of_a_ragged_batch_are_each_lines_own_scores(checkpoint, lines):
    model, eos = checkpoint.model, checkpoint.vocab.eos_id
    rows = lines[:4]
    width = max(len(line) for line in rows) + 1
    tokens = torch.full((len(rows), width), eos, dtype=torch.long)  # (B, T), padded after
    for row, line in enumerate(rows):
        tokens[row, : len(line) + 1] = torch.tensor([eos, *line])
    with torch.inference_mode():
        features, _ = model(tokens)
        values = chunk_target_log_probs(model, features, [[*line, eos] for line in rows])
    for got, expected in zip(values, score_lines(model, rows, eos), strict=True):
        assert torch.allclose(got, expected, atol=1e-5)


def test_a_wide_batch_is_read_in_passes_of_bounded_positions_with_the_same_scores(
    checkpoint, lines, monkeypatch
):
    model, eos_id = checkpoint.model, checkpoint.vocab.eos_id
    long_lines = [list(line) * 6 for line in lines[:12]]  # 12 rows, each over 24 steps
    whole = score_lines(model, long_lines, eos_id, batch_size=12, window=64)
    shapes = []
    original = type(model).forward

    def record(self, tokens, state=None):
        shapes.append(tuple(tokens.shape))
        return original(self, tokens, state)

    monkeypatch.setattr(scoring, "READ_POSITIONS", 12 * 8)  # 8 steps a pass for 12 rows
    monkeypatch.setattr(type(model), "forward", record)
    bounded = score_lines(model, long_lines, eos_id, batch_size=12, window=64)
    assert max(rows * steps for rows, steps in shapes) <= 12 * 8 and len(shapes) > 3
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(whole, bounded, strict=True))
