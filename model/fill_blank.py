"""Fill in the blank: the words that best fill the one gap in a line, ranked by the probability
of the whole line with each word in the gap.

    text        今天 ___ 很好                       (the marker: "___" unless named)
    proposals   backward model after <eos> 好 很       → its top words (where one is served)
                forward model after  <eos> 今天        → its top words
    lines       <eos> 今天 | w 很 好 <eos>              one per proposed word, scored in ONE batch
    ranking     log P(line) under the forward model, best first

The forward model reads the left side once (model/rows.py's BlankRow): its distribution at the
blank gives its words, and every line goes on from that state, so the left side is neither read
twice nor once per line.

The forward model's top words after the left side alone are what /predict-next offers; scoring
the whole line lets the right side vote, and the backward model proposes words that fit the
right side but that the left side alone ranks low.

Edges. A blank at the start has no left side: the forward model proposes the words that begin
a line (its distribution after <eos>, the start state). A blank at the end has no right side:
the line ends with the word, the backward model proposes the words that end a line, and each
filled line is scored with its closing <eos> like any other. A text that is only the blank is a
line of one word. A text of several lines is refused: a line is what the model reads from the
start state.

Each side is tokenized on its own, so a filled line is the left side's tokens, one vocabulary
word, then the right side's tokens. Cutting the text, merging the proposals and ranking happen
here; the engines run the models (app/engine/fill_blank.py, for POST /fill-blank and
bench.fill_blank alike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from model.direction import DIRECTIONS, in_reading_order
from model.rows import BlankLines, Candidate
from model.vocab import SPECIALS, Vocab

BLANK = "___"  # the marker of the gap unless a request names another
MOST_CANDIDATES = 32  # words each model may propose: both lists fill at most 64 lines
# words each model proposes unless told: with the forward model alone it must propose more, the
# right side voting only among the words it proposed (issue 33: top-1 1.24x left-only at 6, 1.52x
# at 32); a backward model proposes the words that fit the right side (docs/fill-blank.md)
FORWARD_ONLY_CANDIDATES = 32
WITH_BACKWARD_CANDIDATES = 8


class BlankError(ValueError):
    """A text whose blank cannot be filled; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Blank:
    """A line cut at its blank: the text before it and after it (either may be empty)."""

    left: str
    right: str


def find_blank(text: str, marker: str = BLANK) -> Blank:
    """The text cut at its one blank marker; BlankError for a text of several lines, without a
    blank or with more than one, and for an empty marker. Why: a request names one gap in one
    line, and anything else has no single answer."""
    if not marker.strip():
        raise BlankError("the blank marker is empty or only spaces: use a visible one, e.g. '___'")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        raise BlankError(
            f"the text holds {len(lines)} lines; a blank is filled within one line: send only "
            "the line with the blank"
        )
    count = text.count(marker)
    if count == 0:
        raise BlankError(f"the text holds no blank: write {marker!r} where the missing word goes")
    if count > 1:
        raise BlankError(
            f"the text holds {count} blanks {marker!r}; exactly one is filled at a time: write "
            "in the other words, or send one request per blank"
        )
    left, right = text.split(marker)
    return Blank(left.strip(), right.strip())


@dataclass(frozen=True)
class Gap:
    """A blank in one model's vocabulary: the ids left and right of it, left to right."""

    left: tuple[int, ...]
    right: tuple[int, ...]

    def line(self, word: int) -> list[int]:
        """The line with word in the gap, left to right: what the forward model scores."""
        return [*self.left, word, *self.right]

    def before(self, direction: str) -> list[int]:
        """What a model of direction reads before it reaches the gap, in its reading order:
        the left side (forward), or the right side reversed (backward)."""
        side = self.left if direction == "forward" else self.right
        return in_reading_order([side], direction)[0]

    @property
    def place(self) -> int:
        """Index, among a filled line's targets, of the word in the gap."""
        return len(self.left)


@dataclass(frozen=True)
class Proposal:
    """A word proposed for the gap (its id in the ranking model's vocabulary) and the
    directions of the models that proposed it, forward first."""

    word: int
    proposed_by: tuple[str, ...]


def words_to_ask(count: int) -> int:
    """How many next words to ask a model for so that count real words remain: one more, for
    the <eos> its list may hold (<unk> is never offered)."""
    return count + 1


def merge_proposals(
    proposals: Mapping[str, Sequence[str]],
    vocab: Vocab,
    count: int | None = None,
    at_least: int = 0,
) -> list[Proposal]:
    """Each model's proposed words (direction → words, best first) as one list of distinct
    words, in the order first proposed (the forward model's list first): <unk>, <eos> and
    words outside vocab (the ranking model's) are left out, since the gap holds one real word
    the ranking model can score; with count, each model's first count words that remain, and
    where those are fewer than at_least distinct words, the forward model's next ones until
    they are not."""
    merged: dict[int, list[str]] = {}

    def add(token: str, direction: str) -> None:
        sources = merged.setdefault(vocab.stoi[token], [])
        if direction not in sources:
            sources.append(direction)

    real = {
        direction: [t for t in proposals.get(direction, ()) if t not in SPECIALS and t in vocab]
        for direction in DIRECTIONS
    }
    for direction in DIRECTIONS:
        for token in real[direction][:count]:
            add(token, direction)
    for token in real["forward"][count:] if count is not None else ():
        if len(merged) >= at_least:
            break
        add(token, "forward")
    return [Proposal(word, tuple(sources)) for word, sources in merged.items()]


@dataclass(frozen=True)
class Proposer:
    """The words a blank's lines are filled with: each model's first `count` real words (the
    forward model's at the blank, the backward model's `backward`, read before), and more of
    the forward model's where they make fewer than `at_least` (merge_proposals). The runner's
    BlankRow calls it with the forward model's words at the blank (model/rows.py)."""

    vocab: Vocab
    count: int
    at_least: int = 0
    backward: tuple[str, ...] = ()

    @property
    def ask(self) -> int:
        """How many words to ask the forward model for at the blank."""
        return words_to_ask(max(self.count, self.at_least))

    @property
    def most_words(self) -> int:
        """The most words it fills a blank with: count of each model's, or at_least."""
        return max(self.count + min(self.count, len(self.backward)), self.at_least)

    def proposals(self, forward: Sequence[str]) -> list[Proposal]:
        """The proposals, given the forward model's words at the blank, best first."""
        merged = {"forward": forward, "backward": self.backward}
        return merge_proposals(merged, self.vocab, self.count, self.at_least)

    def __call__(self, proposed: list[Candidate]) -> list[int]:
        """The words to fill the blank with (ids), given the forward model's candidates."""
        return [p.word for p in self.proposals([c.token for c in proposed])]

    def rank(self, gap: Gap, lines: BlankLines) -> list[Filled]:
        """The words it filled the blank's lines with, best first by the log-probability of
        their line (rank), given what the forward model proposed and scored there."""
        return rank(gap, self.proposals([c.token for c in lines.proposed]), lines.logprobs)


@dataclass(frozen=True)
class Filled:
    """A proposed word in the gap: the log-probability (natural log) of the whole filled line
    under the forward model, closing <eos> included, and of the word given the left side
    alone (the line's target at the gap)."""

    word: int
    line_logprob: float
    left_logprob: float
    proposed_by: tuple[str, ...]


def rank(
    gap: Gap, proposals: Sequence[Proposal], line_scores: Sequence[Sequence[float]]
) -> list[Filled]:
    """The proposals best first by the log-probability of their filled line, given the
    log-probability of every target of each line (gap.line(word), in proposal order); ties
    keep the proposal order. The one ranking of the service and the bench."""
    filled = [
        Filled(p.word, math.fsum(scores), float(scores[gap.place]), p.proposed_by)
        for p, scores in zip(proposals, line_scores, strict=True)
    ]
    return sorted(filled, key=lambda f: -f.line_logprob)
