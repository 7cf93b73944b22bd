"""Fill in the blank through the engines: the one entry point that proposes words for a blank,
scores each filled line and ranks them, for POST /fill-blank and bench.fill_blank alike.

The backward model (where one is asked) reads the right side once: its top words before it
join the proposals, and its distribution there gives every word's right_logprob. The forward
model then reads the left side once, proposes its words at the blank and scores every filled
line from that state, all lines one batch (model/rows.py's BlankRow). One engine after the
other: on a few cores two engines stepping at once slowed each other (docs/experiments.md).
Both read without their cache pointer. What a blank is and how proposals merge and rank:
model/fill_blank.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.engine import Engine
from model.fill_blank import (
    FORWARD_ONLY_CANDIDATES,
    WITH_BACKWARD_CANDIDATES,
    Gap,
    Proposer,
    words_to_ask,
)
from model.rows import Prediction
from model.tokenizers import EncodedText
from model.vocab import Vocab


@dataclass(frozen=True)
class WordInBlank:
    """A word in the blank: the forward model's log-probability of the whole filled line
    (closing <eos> included: the ranking) and of the word given the left side, the backward
    model's given the right side (None without one, or for a word outside its vocabulary),
    and the directions of the models that proposed it."""

    token: str
    line_logprob: float
    left_logprob: float
    right_logprob: float | None
    proposed_by: tuple[str, ...]


async def fill_in_blank(
    forward: Engine,
    gap: Gap,
    top_k: int,
    candidates: int | None = None,
    backward: tuple[Engine, EncodedText] | None = None,
) -> list[WordInBlank]:
    """The top_k words for the blank (gap: in the forward model's vocabulary), best first by
    the forward model's log-probability of the whole filled line. Each model proposes
    `candidates` words, the forward model more until top_k distinct words are ranked; None:
    FORWARD_ONLY_CANDIDATES from the forward model alone, WITH_BACKWARD_CANDIDATES each with a
    backward model. backward: the backward engine and the right side as it reads it (right to
    left, in its vocabulary)."""
    if candidates is None:  # the one place the default is chosen, from the models asked
        candidates = WITH_BACKWARD_CANDIDATES if backward else FORWARD_ONLY_CANDIDATES
    behind: Prediction | None = None
    if backward is not None:
        reader, right_side = backward
        asked = words_to_ask(candidates)
        behind = await reader.predict_next(right_side, asked, cache=False, every_word=True)
    backward_words = () if behind is None else tuple(c.token for c in behind.candidates)
    proposer = Proposer(forward.vocab, candidates, top_k, backward_words)
    ranked = proposer.rank(gap, await forward.fill_lines(gap, proposer))[:top_k]
    itos, reader_vocab = forward.vocab.itos, None if backward is None else backward[0].vocab
    return [
        WordInBlank(
            itos[f.word],
            f.line_logprob,
            f.left_logprob,
            _right_logprob(itos[f.word], reader_vocab, behind),
            f.proposed_by,
        )
        for f in ranked
    ]


def _right_logprob(token: str, vocab: Vocab | None, behind: Prediction | None) -> float | None:
    """The backward model's log-probability of token before the right side, from its
    prediction there (None without one, or for a token outside its vocabulary)."""
    if vocab is None or behind is None or behind.every_word is None:
        return None
    index = vocab.stoi.get(token)
    return None if index is None else behind.every_word[index]
