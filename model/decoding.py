"""One sequence's generation: what a sampled token does to it (its text, its stop rules and
finish reasons), and how the next token of every generating sequence in a batch is chosen. The
runner (model/runner.py) applies both to its generating rows, for the service and for
`python -m model.generate` alike.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from model.distribution import NextWordDistribution
from model.sampling import SamplingOptions, make_generator, sample_rows
from model.tokenizers import Tokenizer

# Why a generation ends: its length reached max_new_tokens, it sampled <eos>, its text reached a
# stop string, or its deadline passed after at least one token.
FinishReason = Literal["length", "eos_token", "stop_sequence", "time_limit"]
FINISH_REASONS: tuple[str, ...] = typing.get_args(FinishReason)


@dataclass(frozen=True)
class Step:
    """What one sampled token did: the text it adds ("" for <eos>) and, when the sequence
    ends with it, why (one of FINISH_REASONS)."""

    piece: str
    finish_reason: FinishReason | None


class Decoding:
    """One sequence being generated: its seeded generator, the ids the repetition penalty looks
    at, the text so far, and when it stops (<eos>, a stop string, max_new_tokens, deadline)."""

    def __init__(
        self,
        prompt_ids: Sequence[int],
        prompt_tokens: Sequence[str],
        options: SamplingOptions,
        eos_id: int,
        tokenizer: Tokenizer,
        deadline: float | None = None,
    ):
        if options.seed is None:
            raise ValueError("a Decoding needs a seed: resolve it before generating")
        self.options = options
        self.seed: int = options.seed
        self.eos_id = eos_id
        self.tokenizer = tokenizer
        self.deadline = deadline  # a time.monotonic() value, or None
        self.generator = make_generator(options.seed)
        self.history = list(prompt_ids)
        self.previous = prompt_tokens[-1] if prompt_tokens else None
        self.pieces: list[str] = []
        self.steps = 0  # tokens accepted, a closing <eos> included
        # a stop string not seen before must end in the newest piece, so only the last
        # characters it could begin in are kept: no step rereads the whole text
        self.stop_keep = max((len(s) for s in options.stop), default=1) - 1
        self.stop_tail = ""

    @property
    def text(self) -> str:
        """The generated text so far (with a space before it where the language puts one
        after the prompt)."""
        return "".join(self.pieces)

    def _piece(self, token: str) -> str:
        """The text a token adds after the previous one (a space before it or not)."""
        if self.previous is None:
            return self.tokenizer.detokenize([token])
        joined = self.tokenizer.detokenize([self.previous, token])
        return joined[len(self.tokenizer.detokenize([self.previous])) :]

    def accept(self, token_id: int, token: str) -> Step:
        """Take the sampled token (vocabulary entry `token`): its text and whether the
        sequence ends with it. Unless it ends, the caller's model reads it next."""
        self.steps += 1
        if token_id == self.eos_id:
            return Step("", "eos_token")
        piece = self._piece(token)
        window = self.stop_tail + piece
        self.stop_tail = window[-self.stop_keep :] if self.stop_keep else ""
        self.pieces.append(piece)
        self.previous = token
        self.history.append(token_id)
        return Step(piece, self._finish_reason(window))

    def _finish_reason(self, window: str) -> FinishReason | None:
        if any(s in window for s in self.options.stop):
            return "stop_sequence"
        if self.steps >= self.options.max_new_tokens:
            return "length"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "time_limit"
        return None


def next_tokens(
    distribution: NextWordDistribution,
    index: Sequence[int],
    decodings: Sequence[Decoding],
    unk_id: int,
    prune: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token id (n,) of every sequence (sequence j reads row index[j] of the
    distribution) and its model log-probability, on the distribution's device: each samples
    with its own options and generator, so its tokens do not depend on the rest of the batch.
    <unk> is never chosen; <eos> not for sequences that ignore it."""
    positions = list(range(len(decodings)))
    words = [unk_id] * len(decodings)
    for j, decoding in enumerate(decodings):
        if decoding.options.ignore_eos:
            positions.append(j)
            words.append(decoding.eos_id)
    device = distribution.device
    banned = (torch.tensor(positions, device=device), torch.tensor(words, device=device))
    return sample_rows(
        distribution,
        index,
        [d.options for d in decodings],
        [d.generator for d in decodings],
        [d.history for d in decodings],
        banned,
        prune,
    )
