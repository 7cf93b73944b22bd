"""What the engine answers a request with, and collecting it from a request's channel: a scored
text, and a generation's steps as they come. Plain Python values: the routes that shape them
into HTTP answers see no tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from app.engine.channels import Channel
from model.rows import Generated, Scored, TopTokens
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


async def collect_scores(channel: Channel[Scored], texts: Sequence[EncodedText]) -> list[TextScore]:
    """The score of each of a request's texts as its row finishes (in any order), text i at
    index i: the one place a request's scored texts are collected."""
    found: dict[int, Scored] = {}
    while len(found) < len(texts):
        scored = await channel.get()
        found[scored.index] = scored
    return [text_score(text, found[i].logprobs, found[i].tops) for i, text in enumerate(texts)]


class GenerationStream:
    """The steps of one generation as they come, each with its token or its finish (the last
    step has a finish). cancel() (or a cancelled await) takes the sequence out of the batch at
    the next step."""

    def __init__(self, channel: Channel[Generated]):
        self._channel = channel
        self._done = False

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> Generated:
        if self._done:
            raise StopAsyncIteration
        try:
            generated = await self._channel.get()
        except BaseException:
            self.cancel()
            raise
        self._done = generated.finish is not None
        return generated

    def cancel(self) -> None:
        """Leave the batch (no-op once finished)."""
        self._done = True
        self._channel.cancelled = True
