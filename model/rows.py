"""The sequences the runner batches, one row of the recurrent state each, and what they produce.

Every row reads `<eos>` and then its text, as scoring's line reading does, so it starts from the
same state as training and evaluation. What it wants from a step differs by kind (four):

- ScoreRow: the log-probability of each target (the next token; `<eos>` after the last).
- BlankRow: reads a line's left side once; at the blank its next words are proposed, and each
  line filled with a chosen word goes on from that state as a ScoreRow (fill-blank); the blank
  answers once every line is scored.
- PredictRow: the next-token distribution once its text is read.
- GenerateRow: a sampled token after its prompt and after each token it generated, which it
  then reads itself; it stops on a finish reason.

A row knows nothing of who waits for its results: a scheduler (the service's app/engine/)
keeps that, by each row's `origin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from model.decoding import Decoding
from model.pointer_cache import PointerCache

TopTokens = tuple[tuple[str, float], ...]  # (vocabulary entry, logprob), most probable first


@dataclass(frozen=True)
class TokenEvent:
    """One generated token: id, vocabulary entry, the text it adds (with any space before it),
    its log-probability under the model and, when asked for, the most probable tokens at its
    place."""

    id: int
    token: str
    text: str
    logprob: float
    top: TopTokens = ()


@dataclass(frozen=True)
class FinishEvent:
    """The end of a generation."""

    generated_text: str
    finish_reason: str
    seed: int
    prompt_tokens: int
    generated_tokens: int
    end: TokenEvent | None = None  # the <eos> that ended the text (its text is "")


@dataclass(frozen=True)
class Candidate:
    """A possible next token; end_of_text marks <eos>."""

    token: str
    logprob: float
    end_of_text: bool


@dataclass(frozen=True)
class Generated:
    """What a GenerateRow produced in one step: its token (None when the token is the <eos>
    that ends the text), and its finish once generation ends (None before)."""

    token: TokenEvent | None
    finish: FinishEvent | None = None


@dataclass(frozen=True)
class Scored:
    """A ScoreRow's answer once its text is read: its index in the request, the
    log-probability of every target (T,) and, where asked for, the top tokens at each."""

    index: int
    logprobs: torch.Tensor
    tops: list[TopTokens]


@dataclass(frozen=True)
class BlankLines:
    """A BlankRow's answer once every line is scored: the words its model proposed at the
    blank (best first), the words its chooser filled lines with, and the log-probability of
    every target of each line, line i filled with words[i]."""

    proposed: list[Candidate]
    words: list[int]
    logprobs: list[list[float]]


@dataclass(frozen=True)
class Prediction:
    """A PredictRow's answer: the most probable next tokens, best first, and where the row
    asked for it, the log-probability of every vocabulary entry (by id)."""

    candidates: list[Candidate]
    every_word: list[float] | None = None


class Row:
    """A sequence in the batch: the tokens it reads, in order, and, when the request uses it,
    its cache of recent (feature, next token) pairs, which lives as long as the row's recurrent
    state does."""

    def __init__(self, tokens: list[int], cache: PointerCache | None = None):
        self.tokens = tokens
        self.position = 0  # tokens read so far
        self.finished = False
        # the row submitted that this one continues: itself, or a blank's line's BlankRow
        self.origin: Row = self
        self.cache = cache
        self._pending: torch.Tensor | None = None  # the last feature, its next token unknown
        # where the lines after the first begin (their <eos>), when the row must stop there:
        # set by the runner for a checkpoint that reads each line from the start state, or
        # whose cache starts empty at each line
        self.line_starts: list[int] = []

    def read_line_by_line(self, eos_id: int) -> None:
        """Stop every chunk at the next line's start, so that the runner can give the line
        the start state (and an empty cache) first."""
        self.line_starts = [i for i, t in enumerate(self.tokens) if t == eos_id and i > 0]

    @property
    def at_line_start(self) -> bool:
        """Whether the next token to read begins a line after the first."""
        return self.position in self.line_starts

    def start_line(self, clear_cache: bool) -> None:
        """A new line begins: its cache starts empty when clear_cache."""
        if clear_cache and self.cache is not None:
            self.cache.clear()
            self._pending = None

    def remember(self, features: torch.Tensor, chunk: Sequence[int]) -> None:
        """Store in the cache the features (T, D) of the chunk just read, each with the token
        that followed it; the last one waits for the token read next."""
        if self.cache is None:
            return
        if self._pending is not None:
            self.cache.append(self._pending, chunk[0])
        if len(chunk) > 1:
            self.cache.extend(features[:-1], torch.tensor(chunk[1:]))
        self._pending = features[-1].clone()

    def next_chunk(self, limit: int) -> list[int]:
        """The next tokens to read (at most limit, never past a line start), counted as read."""
        end = self.position + limit
        end = min([end, *(i for i in self.line_starts if i > self.position)])
        chunk = self.tokens[self.position : end]
        self.position += len(chunk)
        return chunk

    @property
    def caught_up(self) -> bool:
        """Whether every token given so far has been read."""
        return self.position == len(self.tokens)


class ScoreRow(Row):
    """Scores one text of a request (index: its place in the request); with top_n, also the
    top_n most probable tokens at each target's place."""

    def __init__(
        self,
        ids: list[int],
        eos_id: int,
        index: int,
        top_n: int = 0,
        cache: PointerCache | None = None,
    ):
        super().__init__([eos_id, *ids], cache)
        self.targets = [*ids, eos_id]  # targets[i] follows tokens[i]
        self.index = index
        self.top_n = top_n
        self.scores: list[torch.Tensor] = []
        self.tops: list[TopTokens] = []

    def add_scores(self, scores: torch.Tensor, tops: Sequence[TopTokens] = ()) -> Scored | None:
        """Record the log-probabilities (and top tokens) of the last chunk's targets; the
        row's answer once the text is read (None before)."""
        self.scores.append(scores)
        self.tops.extend(tops)
        self.finished = self.caught_up
        if not self.finished:
            return None
        return Scored(self.index, torch.cat(self.scores), self.tops)


class BlankChooser(Protocol):
    """What picks the words a BlankRow's lines are filled with (model/fill_blank.py's
    Proposer): it sees the `ask` most probable words at the blank and names at most
    `most_words` of them or others."""

    @property
    def ask(self) -> int:
        """How many of the most probable words at the blank it wants to see."""
        ...

    @property
    def most_words(self) -> int:
        """The most words it ever names."""
        ...

    def __call__(self, proposed: list[Candidate]) -> list[int]:
        """The words (ids) to fill the blank with, given the proposed ones, best first."""
        ...


class BlankRow(ScoreRow):
    """Fills the one blank of a line (fill-blank's lines differ only from the blank on, so they
    share everything before it): reads <eos> and the left side once, scoring it. At the blank
    the runner hands its chooser the `ask` most probable words there, best first (<unk>
    never), and the chooser names the words to try; each filled line then goes on in a ScoreRow
    of its own from a copy of this row's state (lines()), reading its word and the right side
    and carrying the left side's scores and its word's. So every line gets the figures of its
    own ScoreRow, for one reading of the left side and one proposal; the row answers once the
    last line is scored (line_scored). It may become chooser.most_words rows."""

    def __init__(
        self, left: Sequence[int], right: Sequence[int], eos_id: int, chooser: BlankChooser
    ):
        super().__init__(list(left), eos_id, index=-1)
        self.targets = list(left)  # after the left side comes the word in the blank: per line
        self.right = list(right)
        self.chooser = chooser
        self.eos_id = eos_id
        self.proposed: list[Candidate] = []
        self.words: list[int] = []
        self._line_scores: dict[int, list[float]] = {}

    def lines(
        self, proposed: list[Candidate], words: Sequence[int], word_logprobs: Sequence[float]
    ) -> list[ScoreRow]:
        """One row per word in the blank (the chooser's words among proposed), reading it and
        the right side from this row's state; line i answers as index i with the left side's
        scores and its word's before its own."""
        self.proposed, self.words = proposed, list(words)
        rows = []
        for index, (word, logprob) in enumerate(zip(words, word_logprobs, strict=True)):
            row = ScoreRow(self.right, self.eos_id, index)
            row.tokens[0] = word  # it reads its word after the left side, not <eos>
            row.scores = [*self.scores, torch.tensor([logprob])]
            row.origin = self
            rows.append(row)
        return rows

    def line_scored(self, line: Scored) -> BlankLines | None:
        """Record a line's answer; the row's own answer once every line is scored (None
        before)."""
        self._line_scores[line.index] = line.logprobs.tolist()
        return self.answer() if len(self._line_scores) == len(self.words) else None

    def answer(self) -> BlankLines:
        """The proposed words, the words filled in and each filled line's scores."""
        logprobs = [self._line_scores[i] for i in range(len(self.words))]
        return BlankLines(self.proposed, self.words, logprobs)


class PredictRow(Row):
    """Reads one text and reports the most probable next tokens and, with every_word, the
    exact log-probability of every vocabulary entry there."""

    def __init__(
        self,
        ids: list[int],
        eos_id: int,
        top_k: int,
        cache: PointerCache | None = None,
        every_word: bool = False,
    ):
        super().__init__([eos_id, *ids], cache)
        self.top_k = top_k
        self.every_word = every_word


class GenerateRow(Row):
    """Continues a prompt, one sampled token per step, carrying its state: a token costs the
    same however many came before it. What a token does (its text, the stop rules) is
    model.decoding's Decoding."""

    def __init__(self, decoding: Decoding, prompt_tokens: int, cache: PointerCache | None = None):
        super().__init__([decoding.eos_id, *decoding.history], cache)
        self.decoding = decoding
        self.options = decoding.options
        self.prompt_tokens = prompt_tokens

    def accept(self, token_id: int, token: str, logprob: float, top: TopTokens = ()) -> Generated:
        """Take the sampled token: what it produces (its TokenEvent unless it is <eos>, and a
        FinishEvent if generation ends with it). Otherwise the row reads it next."""
        step = self.decoding.accept(token_id, token)
        event = TokenEvent(token_id, token, step.piece, logprob, top)
        ends_text = token_id == self.decoding.eos_id
        if step.finish_reason is None:
            self.tokens.append(token_id)
            return Generated(None if ends_text else event)
        self.finished = True
        finish = FinishEvent(
            self.decoding.text,
            step.finish_reason,
            self.decoding.seed,
            self.prompt_tokens,
            len(self.decoding.pieces),
            event if ends_text else None,
        )
        return Generated(None if ends_text else event, finish)
