"""The sequences of a batch: what each kind reads, in which chunks, and what it produces."""

from __future__ import annotations

import torch

from model.decoding import Decoding
from model.rows import GenerateRow, ScoreRow
from model.sampling import SamplingOptions
from model.tokenizers import TokenizerSpec, build_tokenizer

EOS = 0


def test_a_score_row_reads_eos_then_its_text_and_targets_each_next_token() -> None:
    row = ScoreRow([5, 6, 7], EOS, index=2)
    assert row.tokens == [EOS, 5, 6, 7] and row.targets == [5, 6, 7, EOS]
    assert row.next_chunk(3) == [EOS, 5, 6] and not row.caught_up
    assert row.add_scores(-torch.ones(3)) is None and not row.finished
    assert row.next_chunk(3) == [7]
    scored = row.add_scores(torch.tensor([-2.0]))
    assert scored is not None and row.finished and scored.index == 2
    assert scored.logprobs.tolist() == [-1.0, -1.0, -1.0, -2.0]


def test_line_by_line_chunks_stop_where_each_later_line_begins() -> None:
    row = ScoreRow([5, 6, EOS, 7, 8, EOS, 9], EOS, index=0)
    row.read_line_by_line(EOS)
    chunks, starts = [], []
    while not row.caught_up:
        starts.append(row.at_line_start)
        chunks.append(row.next_chunk(10))
    assert chunks == [[EOS, 5, 6], [EOS, 7, 8], [EOS, 9]]
    assert starts == [False, True, True]


def test_a_generate_row_reads_what_it_sampled_and_ends_with_a_finish_event() -> None:
    tokenizer = build_tokenizer(TokenizerSpec(name="whitespace"))
    options = SamplingOptions(max_new_tokens=2, seed=1)
    decoding = Decoding([5], ["a"], options, EOS, tokenizer)
    row = GenerateRow(decoding, prompt_tokens=1)
    assert row.tokens == [EOS, 5]
    first = row.accept(6, "b", -1.5)
    assert first.finish is None and first.token is not None
    assert (first.token.id, first.token.text, first.token.logprob) == (6, " b", -1.5)
    assert row.tokens == [EOS, 5, 6] and not row.finished
    last = row.accept(7, "c", -0.5)
    assert last.token is not None and last.token.text == " c" and last.finish is not None
    assert (last.finish.generated_text, last.finish.finish_reason) == (" b c", "length")
    assert last.finish.generated_tokens == 2
    assert row.finished and row.tokens == [EOS, 5, 6]  # the last token is never read


def test_an_eos_ends_the_text_without_a_token() -> None:
    tokenizer = build_tokenizer(TokenizerSpec(name="whitespace"))
    decoding = Decoding([], [], SamplingOptions(seed=1), EOS, tokenizer)
    row = GenerateRow(decoding, prompt_tokens=0)
    step = row.accept(EOS, "<eos>", -0.1)
    assert step.token is None and step.finish is not None
    assert step.finish.finish_reason == "eos_token"
    assert step.finish.end is not None and step.finish.end.logprob == -0.1
