"""The sequences of a batch: what each kind reads, in which chunks, and what it produces."""

from __future__ import annotations

import torch

from model.decoding import Decoding
from model.rows import FinishEvent, GenerateRow, ScoreRow, Ticket, TokenEvent
from model.sampling import SamplingOptions
from model.tokenizers import TokenizerSpec, build_tokenizer

EOS = 0


def test_a_score_row_reads_eos_then_its_text_and_targets_each_next_token() -> None:
    row = ScoreRow([5, 6, 7], EOS, index=2, channel=Ticket())
    assert row.tokens == [EOS, 5, 6, 7] and row.targets == [5, 6, 7, EOS]
    assert row.next_chunk(3) == [EOS, 5, 6] and not row.caught_up
    assert not row.add_scores(torch.zeros(3))
    assert row.next_chunk(3) == [7] and row.add_scores(torch.zeros(1)) and row.finished


def test_line_by_line_chunks_stop_where_each_later_line_begins() -> None:
    row = ScoreRow([5, 6, EOS, 7, 8, EOS, 9], EOS, index=0, channel=Ticket())
    row.read_line_by_line(EOS)
    chunks, starts = [], []
    while not row.caught_up:
        starts.append(row.at_line_start)
        chunks.append(row.next_chunk(10))
    assert chunks == [[EOS, 5, 6], [EOS, 7, 8], [EOS, 9]]
    assert starts == [False, True, True]


def test_a_cancelled_ticket_lets_the_row_go() -> None:
    ticket = Ticket()
    row = ScoreRow([5], EOS, index=0, channel=ticket)
    assert not row.gone
    ticket.cancelled = True
    assert row.gone


def test_a_generate_row_reads_what_it_sampled_and_ends_with_a_finish_event() -> None:
    tokenizer = build_tokenizer(TokenizerSpec(name="whitespace"))
    options = SamplingOptions(max_new_tokens=2, seed=1)
    decoding = Decoding([5], ["a"], options, EOS, tokenizer)
    row = GenerateRow(decoding, prompt_tokens=1, channel=Ticket())
    assert row.tokens == [EOS, 5]
    (event,) = row.accept(6, "b", -1.5)
    assert isinstance(event, TokenEvent) and (event.id, event.text, event.logprob) == (
        6,
        " b",
        -1.5,
    )
    assert row.tokens == [EOS, 5, 6] and not row.finished and row.produced
    token, finish = row.accept(7, "c", -0.5)
    assert isinstance(token, TokenEvent) and isinstance(finish, FinishEvent)
    assert (finish.generated_text, finish.finish_reason, finish.generated_tokens) == (
        " b c",
        "length",
        2,
    )
    assert row.finished and row.tokens == [EOS, 5, 6]  # the last token is never read


def test_an_eos_ends_the_text_without_a_token_event() -> None:
    tokenizer = build_tokenizer(TokenizerSpec(name="whitespace"))
    decoding = Decoding([], [], SamplingOptions(seed=1), EOS, tokenizer)
    row = GenerateRow(decoding, prompt_tokens=0, channel=Ticket())
    (finish,) = row.accept(EOS, "<eos>", -0.1)
    assert isinstance(finish, FinishEvent) and finish.finish_reason == "eos_token"
    assert finish.end is not None and finish.end.logprob == -0.1
