"""Filling a blank: the text cut at its one marker (edges defined, bad blanks refused with the
fix), the proposals merged, the ranking by the whole line's log-probability, and on the tiny
real checkpoints (forward and backward) each filled line's figures equal to score_lines, in a
batch or alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model.checkpoint import Checkpoint, load_checkpoint
from model.fill_blank import (
    Blank,
    BlankError,
    Filled,
    Gap,
    Proposal,
    Proposer,
    find_blank,
    merge_proposals,
    rank,
    words_to_ask,
)
from model.quantize import quantize_int8
from model.rows import Candidate
from model.scoring import score_lines
from model.vocab import EOS, UNK, Vocab
from tests.model.blank_filler import BlankFiller
from tests.oracles import read_prompt


@pytest.mark.parametrize(
    ("text", "marker", "blank"),
    [
        ("今天___很好", "___", Blank("今天", "很好")),
        ("  今天 ___ 很好。 ", "___", Blank("今天", "很好。")),
        ("___很好", "___", Blank("", "很好")),  # at the start: no left side
        ("今天很___", "___", Blank("今天很", "")),  # at the end: the line ends with the word
        ("___", "___", Blank("", "")),  # a line of one word
        ("the [MASK] sat", "[MASK]", Blank("the", "sat")),
        ("今天___很好\n", "___", Blank("今天", "很好")),  # a trailing newline is one line
    ],
)
def test_find_blank_cuts_the_line_at_its_one_marker(text, marker, blank):
    assert find_blank(text, marker) == blank


@pytest.mark.parametrize(
    ("text", "marker", "reason"),
    [
        ("今天很好", "___", "holds no blank: write '___' where the missing word goes"),
        ("今天___很___", "___", "holds 2 blanks '___'; exactly one is filled at a time"),
        ("今天___\n很好", "___", "holds 2 lines; a blank is filled within one line"),
        ("今天 很好", " ", "the blank marker is empty or only spaces"),
        ("今天很好", "", "the blank marker is empty or only spaces"),
    ],
)
def test_find_blank_refuses_what_has_no_single_answer_and_says_how_to_fix_it(text, marker, reason):
    with pytest.raises(BlankError, match=reason.replace("[", r"\[")):
        find_blank(text, marker)


def test_a_gap_fills_left_to_right_and_each_model_reads_its_own_side_first():
    gap = Gap((1, 2), (3, 4))
    assert gap.line(9) == [1, 2, 9, 3, 4] and gap.place == 2
    assert gap.before("forward") == [1, 2]
    assert gap.before("backward") == [4, 3]  # the right side, read right to left


def test_proposals_merge_into_distinct_real_words_forward_first():
    vocab = Vocab([UNK, EOS, "我", "们", "好"])
    merged = merge_proposals(
        {"backward": ["好", "们", UNK, "他"], "forward": ["们", EOS, "我", "们"]}, vocab
    )
    assert merged == [
        Proposal(3, ("forward", "backward")),  # 们: both, listed where forward put it
        Proposal(2, ("forward",)),
        Proposal(4, ("backward",)),  # <unk>, <eos> and 他 (not in vocab) left out
    ]
    assert merge_proposals({}, vocab) == []
    # with a count, each model's first real words: <eos> and unknown words do not count
    two = merge_proposals({"forward": [EOS, "我", "们", "好"], "backward": ["他", "好"]}, vocab, 2)
    assert two == [Proposal(2, ("forward",)), Proposal(3, ("forward",)), Proposal(4, ("backward",))]
    assert words_to_ask(2) == 3  # room for the <eos> a model's list may hold
    # at_least: the forward model's next words until that many, never past its list
    forward = ["我", "们", EOS, "好"]
    assert [p.word for p in merge_proposals({"forward": forward}, vocab, 1, 3)] == [2, 3, 4]
    assert [p.word for p in merge_proposals({"forward": forward}, vocab, 1, 9)] == [2, 3, 4]
    both = {"forward": forward, "backward": ["好"]}
    assert [p.word for p in merge_proposals(both, vocab, 1, 2)] == [2, 4]  # already two


def test_a_proposer_asks_the_forward_model_for_enough_words_and_picks_their_ids():
    vocab = Vocab([UNK, EOS, "我", "们", "好", "他"])
    proposer = Proposer(vocab, count=1, at_least=3, backward=("他", "好"))
    assert proposer.ask == words_to_ask(3)
    proposed = [Candidate(t, -1.0, t == EOS) for t in ("们", EOS, "我", "好")]
    assert proposer(proposed) == [3, 5, 2]  # 们, then 他 (backward), then 我 up to three
    assert proposer.proposals(["们", EOS, "我"])[1] == Proposal(5, ("backward",))


def test_rank_orders_by_the_whole_lines_log_probability_ties_in_proposal_order():
    gap = Gap((7,), (8,))
    proposals = [Proposal(1, ("forward",)), Proposal(2, ("backward",)), Proposal(3, ("forward",))]
    scores = [[-1.0, -2.0, -3.0, -0.5], [-2.0, -0.1, -4.0, -0.5], [-1.0, -3.0, -2.0, -0.5]]
    assert rank(gap, proposals, scores) == [
        Filled(1, -6.5, -2.0, ("forward",)),  # the word's target sits at place 1
        Filled(3, -6.5, -3.0, ("forward",)),  # a tie keeps the proposal order
        Filled(2, -6.6, -0.1, ("backward",)),  # best given the left side, not the line
    ]


@pytest.fixture(scope="module")
def backward(backward_checkpoint: Path) -> Checkpoint:
    return load_checkpoint(backward_checkpoint)


@pytest.fixture(scope="module")
def filler(checkpoint: Checkpoint, backward: Checkpoint) -> BlankFiller:
    return BlankFiller(checkpoint, backward)


def _gap(filler: BlankFiller, line: list[int], position: int, direction: str) -> Gap:
    """The gap at position of a forward id line, in the vocabulary of direction's model."""
    itos = filler.runners["forward"].vocab.itos
    tokens = [itos[i] for i in line]
    return filler.gap(tokens[:position], tokens[position + 1 :], direction)


@pytest.mark.parametrize("where", ["middle", "start", "end"])
def test_each_filled_line_scores_what_score_lines_gives_it(filler, checkpoint, lines, where):
    line = lines[3]
    position = {"middle": len(line) // 2, "start": 0, "end": len(line) - 1}[where]
    gap = _gap(filler, line, position, "forward")
    backward = tuple(filler.propose(_gap(filler, line, position, "backward"), 6, "backward"))
    proposer = Proposer(checkpoint.vocab, 6, 10, backward)
    forward, filled = filler.fill(gap, proposer)
    assert forward == filler.propose(gap, 10, "forward")  # the same words as a plain read
    assert {f.word for f in filled} == {p.word for p in proposer.proposals(forward)}
    assert len(filled) >= 10
    eos = checkpoint.vocab.eos_id
    expected = score_lines(checkpoint.model, [gap.line(f.word) for f in filled], eos)
    for result, scores in zip(filled, expected, strict=True):
        assert len(scores) == len(line) + 1  # every token and the closing <eos>
        assert result.line_logprob == pytest.approx(float(scores.sum()), abs=1e-4)
        assert result.left_logprob == pytest.approx(float(scores[position]), abs=1e-5)
    assert [f.line_logprob for f in filled] == sorted(
        (f.line_logprob for f in filled), reverse=True
    )


@pytest.mark.parametrize("weights", ["float", "int8"])
def test_a_word_scores_the_same_in_the_batch_as_alone(tiny_checkpoint, lines, weights):
    checkpoint = load_checkpoint(tiny_checkpoint)
    if weights == "int8":
        checkpoint.model = quantize_int8(checkpoint.model)
    filler = BlankFiller(checkpoint)
    gap = _gap(filler, lines[5], 2, "forward")
    _, batched = filler.fill(gap, Proposer(checkpoint.vocab, 20))
    assert len(batched) == 20
    for word in batched:  # its line beside at most the forward model's first word's
        alone = Proposer(checkpoint.vocab, 1, backward=(checkpoint.vocab.itos[word.word],))
        (filled,) = [f for f in filler.fill(gap, alone)[1] if f.word == word.word]
        if weights == "int8":  # exact integer sums: bit for bit
            assert filled.line_logprob == word.line_logprob
        else:
            assert filled.line_logprob == pytest.approx(word.line_logprob, abs=1e-4)


@pytest.mark.parametrize(("direction", "position"), [("forward", 4), ("backward", 4)])
def test_each_model_proposes_its_top_words_given_the_side_it_reads(
    filler, checkpoint, backward, lines, direction, position
):
    source = {"forward": checkpoint, "backward": backward}[direction]
    gap = _gap(filler, lines[2], position, direction)
    log_probs, _ = read_prompt(source.model, gap.before(direction), source.vocab.eos_id)
    log_probs = log_probs.clone()
    log_probs[source.vocab.unk_id] = -math.inf
    expected = source.vocab.decode(torch.topk(log_probs, words_to_ask(8)).indices.tolist())
    assert filler.propose(gap, 8, direction) == expected


def test_only_the_backward_model_reads_the_right_side_when_proposing(filler, lines):
    itos = filler.runners["forward"].vocab.itos
    right = [itos[i] for i in lines[2][-4:]]
    proposed = {
        (direction, i): filler.propose(
            filler.gap([itos[j] for j in lines[i][:5]], right, direction), 40, direction
        )
        for i in (4, 7)
        for direction in ("forward", "backward")
    }
    assert proposed["backward", 4] == proposed["backward", 7]  # the same right side
    assert proposed["forward", 4] != proposed["forward", 7]  # another left side


def test_a_filler_refuses_models_of_the_wrong_direction(checkpoint, backward):
    with pytest.raises(ValueError, match="reads backward, but the forward model of a blank"):
        BlankFiller(backward)
    with pytest.raises(ValueError, match="reads forward, but the backward model of a blank"):
        BlankFiller(checkpoint, checkpoint)
