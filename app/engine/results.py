"""What the engine answers a request with: a scored text, and a generation's events as they
come. Plain Python values: the routes that shape them into HTTP answers see no tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from app.engine.channels import Channel
from model.rows import Candidate, FinishEvent, TokenEvent, TopTokens
from model.scoring import log_likelihood, perplexity
from model.tokenizers import EncodedText
from model.vocab import EOS


@dataclass(frozen=True)
class TextScore:
    """How well the model predicts a text: one log-probability per target (its tokens, then the
    closing <eos>), pooled as model.evaluate pools a split."""

    text: EncodedText
    logprobs: list[float]
    perplexity: float
    mean_nll: float
    tops: Sequence[TopTokens] = ()  # per target, when asked for

    @property
    def targets(self) -> list[tuple[str, bool]]:
        """(token, out of vocabulary) of each target, in order: the text's tokens, then <eos>."""
        return [*zip(self.text.tokens, self.text.oov, strict=True), (EOS, False)]


def text_score(text: EncodedText, logprobs: torch.Tensor, tops: Sequence[TopTokens]) -> TextScore:
    """The figures of one scored text, pooled exactly as model.evaluate pools a split."""
    total, count = log_likelihood([logprobs])
    mean_nll = -total / count
    return TextScore(text, logprobs.tolist(), perplexity(mean_nll), mean_nll, tops)


@dataclass(frozen=True)
class BlankLines:
    """A blank as one model filled it: the words it proposed there (best first), and the
    log-probability of every target of each line it scored, line i filled with the i-th word
    its proposer chose."""

    proposed: list[Candidate]
    logprobs: list[list[float]]


class GenerationStream:
    """The events of one generation as they come: TokenEvents, then one FinishEvent. cancel()
    (or a cancelled await) takes the sequence out of the batch at the next step."""

    def __init__(self, channel: Channel):
        self._channel = channel
        self._done = False

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> TokenEvent | FinishEvent:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._channel.get()
        except BaseException:
            self.cancel()
            raise
        assert isinstance(event, TokenEvent | FinishEvent)
        self._done = isinstance(event, FinishEvent)
        return event

    def cancel(self) -> None:
        """Leave the batch (no-op once finished)."""
        self._done = True
        self._channel.cancelled = True
