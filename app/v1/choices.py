"""One completion choice as it is released: its text, its logprobs and its finish reason.

OpenAI leaves a stop string out of the text (the service's /generate keeps it), so text that
a stop string could still claim is held back: a stop string not yet seen ends in a later token,
so only the last (longest stop string - 1) characters can belong to it. Once the choice ends,
the text is cut where the first stop string begins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.v1.protocol import CompletionLogprobs
from model.rows import FinishEvent, TokenEvent, TopTokens

OPENAI_FINISH_REASON = {  # each of model.decoding's reasons in OpenAI's words; a deadline cut
    # reads as "length"
    "eos_token": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "time_limit": "length",
}


@dataclass
class Delta:
    """What a choice releases at once: new text and the logprobs of the tokens it holds."""

    text: str = ""
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None

    def extend(self, other: Delta) -> None:
        """Append other (a later delta) to this one."""
        self.text += other.text
        self.finish_reason = other.finish_reason or self.finish_reason
        if other.logprobs is not None:
            if self.logprobs is None:
                self.logprobs = _empty_logprobs()
            for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                getattr(self.logprobs, name).extend(getattr(other.logprobs, name))


def _empty_logprobs() -> CompletionLogprobs:
    return CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])


def top_dict(token: str, logprob: float | None, top: TopTokens) -> dict[str, float] | None:
    """The top tokens as a dict, the chosen token always in it (None where nothing predicts
    the token)."""
    if logprob is None:
        return None
    return {**dict(top), token: logprob}


@dataclass
class _Held:
    event: TokenEvent
    start: int  # where its text starts in the choice's generated text


def _end(held: _Held) -> int:
    return held.start + len(held.event.text)


def echo_delta(
    prompt: str, tokens: Sequence[str], entries: Sequence[str], scored: PromptScores | None
) -> Delta:
    """The echoed prompt as a delta: its text and, when scored, one logprobs entry per prompt
    token. tokens: the prompt as the tokenizer cut it (to find each in the text); entries:
    their vocabulary entries (<unk> for a word outside it)."""
    if scored is None:
        return Delta(prompt)
    offsets = []
    cursor = 0
    for token in tokens:  # a token normalisation changed is not found: it sits at the cursor
        found = prompt.find(token, cursor)
        offsets.append(found if found >= 0 else cursor)
        cursor = found + len(token) if found >= 0 else cursor
    logprobs = CompletionLogprobs(
        tokens=list(entries),
        token_logprobs=list(scored.logprobs),
        top_logprobs=[
            top_dict(e, lp, top)
            for e, lp, top in zip(entries, scored.logprobs, scored.tops, strict=True)
        ],
        text_offset=offsets,
    )
    return Delta(prompt, logprobs)


@dataclass(frozen=True)
class PromptScores:
    """Per prompt token: its log-probability after what precedes it (None for a leading <eos>,
    which is the start state itself) and the most probable tokens at its place."""

    logprobs: list[float | None]
    tops: list[TopTokens]


@dataclass
class ChoiceText:
    """Releases one choice's generated text and logprobs, token by token, holding back what
    a stop string could still claim. offset: where the generated text starts in the choice's
    text (after an echoed prompt); with_logprobs: whether deltas carry logprobs."""

    stop: Sequence[str]
    offset: int
    with_logprobs: bool
    text: str = ""  # everything generated so far
    released: int = 0  # characters of text already released
    held: list[_Held] = field(default_factory=list)

    @property
    def _keep(self) -> int:
        return max((len(s) for s in self.stop), default=1) - 1

    def add(self, event: TokenEvent) -> Delta:
        """Take a generated token; release what no stop string can claim any more."""
        self.held.append(_Held(event, len(self.text)))
        self.text += event.text
        # a stop string this token completed ends the text where it begins: hold that back too
        safe = min(len(self.text) - self._keep, self._first_stop())
        count = 0
        while count < len(self.held) and _end(self.held[count]) <= safe:
            count += 1
        return self._release(count, None)

    def finish(self, event: FinishEvent) -> Delta:
        """Release the rest, cut before the first stop string if one ended the text, then the
        closing <eos> if there was one."""
        cut = self._first_stop() if event.finish_reason == "stop_sequence" else len(self.text)
        kept = sum(1 for held in self.held if held.start < cut)
        delta = self._release(kept, cut)
        self.held = []
        if event.end is not None and self.with_logprobs:
            delta.extend(self._entries([event.end], [len(self.text)], ""))
        delta.finish_reason = OPENAI_FINISH_REASON[event.finish_reason]
        return delta

    def _first_stop(self) -> int:
        """Where the first stop string in the text begins (the text's length if none is)."""
        found = [self.text.find(s) for s in self.stop if s in self.text]
        return min(found, default=len(self.text))

    def _release(self, count: int, upto: int | None) -> Delta:
        """Release the first count held tokens, and text up to upto (or up to their end)."""
        releasing, self.held = self.held[:count], self.held[count:]
        if upto is None:
            upto = _end(releasing[-1]) if releasing else 0
        upto = max(upto, self.released)
        text = self.text[self.released : upto]
        self.released = upto
        if not self.with_logprobs:
            return Delta(text)
        return self._entries([h.event for h in releasing], [h.start for h in releasing], text)

    def _entries(self, events: list[TokenEvent], starts: list[int], text: str) -> Delta:
        logprobs = CompletionLogprobs(
            tokens=[e.token for e in events],
            token_logprobs=[e.logprob for e in events],
            top_logprobs=[top_dict(e.token, e.logprob, e.top) for e in events],
            text_offset=[self.offset + start for start in starts],
        )
        return Delta(text, logprobs)
