"""POST /fill-blank: the words that best fill the one blank in a line, ranked by the whole line.

The forward model (the one `model` names) proposes words after the left side; a backward model,
where the server serves one, proposes words before the right side; the forward model scores
every filled line in one call into its engine (reading the left side once for all of them), and
the best lines win. What a blank is, where
it may sit and how the proposals merge and rank: model/fill_blank.py. Both models are read
alone, without their cache pointer, as bench.fill_blank measures them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.engine import Engine
from app.errors import InvalidRequest
from app.limits import check_token_counts, encode_texts
from app.routes.deps import ERROR_RESPONSES, SettingsDep, engine_for, unless_disconnected
from app.schemas import InputToken, ModelName, StrictRequest, Text
from app.settings import Settings
from model.fill_blank import (
    BLANK,
    BlankError,
    Filled,
    Gap,
    Proposer,
    find_blank,
    rank,
    words_to_ask,
)
from model.rows import Prediction
from model.tokenizers import EncodedText

router = APIRouter(tags=["model"])

MOST_CANDIDATES = 32  # words each model may propose: both lists fill at most 64 rows
# 6 each: top-1 as good as 8 each and top-5 within a point, for a quarter less time
# (bench.fill_blank, docs/fill-blank.md)
DEFAULT_CANDIDATES = 6
Marker = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"\S")]


class FillBlankRequest(StrictRequest):
    """One line with one blank, and how many ranked words to return."""

    model: ModelName = None
    text: Text = Field(
        description="one line with one blank: at the start, the line begins with the word; at "
        "the end, it ends with it"
    )
    blank: Marker = Field(default=BLANK, description="the marker of the blank in text")
    top_k: int = Field(
        default=10, ge=1, le=MOST_CANDIDATES, description="how many ranked words to return"
    )
    candidates: int = Field(
        default=DEFAULT_CANDIDATES,
        ge=1,
        le=MOST_CANDIDATES,
        description="words each model proposes: the forward model after the left side, the "
        "backward model before the right side; where both lists hold fewer than top_k distinct "
        "words, the forward model proposes more. More words: the right one ranked more often, "
        "at more time (docs/fill-blank.md)",
    )
    backward: bool = Field(
        default=True,
        description="also ask a backward model, where one is served, for words that fit the "
        "right side (better words, more time: docs/fill-blank.md); false: the forward one only",
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "中国___发展很快。", "top_k": 10}]}
    )


class FilledWord(BaseModel):
    """A word in the blank, with what each model makes of it."""

    token: str
    line_logprob: float = Field(
        description="log-probability of the whole filled line (closing <eos> included) under "
        "the forward model: the ranking"
    )
    left_prob: float = Field(description="the forward model's probability given the left side")
    right_prob: float | None = Field(
        description="the backward model's probability given the right side; null where no "
        "backward model is served or the word is not in its vocabulary"
    )
    proposed_by: list[Literal["forward", "backward"]]


class FillBlankResponse(BaseModel):
    """Each side as the forward model read it, the models asked, and the words, best first."""

    left: list[InputToken]
    right: list[InputToken]
    models: dict[str, str | None] = Field(description="the forward and the backward model's names")
    candidates: list[FilledWord]


@dataclass(frozen=True)
class BlankEngines:
    """The engine that proposes and ranks (reads forward) and one that proposes from the
    right side (reads backward), where one is served."""

    forward: Engine
    backward: Engine | None

    def asked(self) -> list[tuple[str, Engine]]:
        """(direction, engine) of each model that proposes words."""
        backward = [] if self.backward is None else [("backward", self.backward)]
        return [("forward", self.forward), *backward]

    @property
    def backward_name(self) -> str | None:
        """The backward model's name (None where none is served)."""
        return None if self.backward is None else self.backward.name


def blank_engines(request: Request, name: str | None, backward: bool = True) -> BlankEngines:
    """The model named (the default if None), which must read forward, and (unless backward
    is False) the first served model that reads backward: the one place that decides which
    models fill a blank."""
    forward = engine_for(request, name)
    if forward.encoder.direction != "forward":
        raise InvalidRequest(
            f"/fill-blank ranks lines with a model that reads left to right, but {forward.name!r} "
            "reads right to left: name a forward model in `model` (see /info); a backward "
            "model is asked for its words on its own",
            status_code=400,
            error_type="unsupported_by_model",
        )
    engines: dict[str, Engine] = request.app.state.engines if backward else {}
    reader = next(
        (e for e in engines.values() if e.running and e.encoder.direction == "backward"), None
    )
    return BlankEngines(forward, reader)


@router.post("/fill-blank", responses=ERROR_RESPONSES)
async def fill_blank(
    body: FillBlankRequest, settings: SettingsDep, request: Request
) -> FillBlankResponse:
    """The top_k words for the blank, best first by the forward model's log-probability of the
    whole filled line; each with its probability given each side alone. A text of several
    lines, without a blank or with two is a 422 that says so."""
    engines = blank_engines(request, body.model, body.backward)
    try:
        blank = find_blank(body.text, body.blank)
    except BlankError as error:
        raise InvalidRequest(f"text: {error}", param="text") from error
    left, right = await encode_texts(engines.forward.encoder, [blank.left, blank.right], settings)
    gaps = {"forward": Gap(tuple(left.ids), tuple(right.ids))}
    if engines.backward is not None:
        gaps["backward"] = await _backward_gap(engines.backward, blank.left, blank.right, settings)
    for direction, engine in engines.asked():  # the filled line is a text like any other
        line = gaps[direction].line(engine.vocab.unk_id)
        check_token_counts([engine.encoder.from_ids(line)], settings)
    ranked, right_logprobs = await unless_disconnected(
        request, _fill(engines, gaps, body.candidates, body.top_k)
    )
    itos = engines.forward.vocab.itos
    return FillBlankResponse(
        left=_read(left),
        right=_read(right),
        models={"forward": engines.forward.name, "backward": engines.backward_name},
        candidates=[
            FilledWord(
                token=itos[f.word], line_logprob=f.line_logprob, left_prob=math.exp(f.left_logprob),
                right_prob=None if logprob is None else math.exp(logprob),
                proposed_by=list(f.proposed_by),  # type: ignore[arg-type]
            )
            for f, logprob in zip(ranked, right_logprobs, strict=True)
        ],
    )  # fmt: skip


async def _backward_gap(engine: Engine, left: str, right: str, settings: Settings) -> Gap:
    """The blank in the backward model's vocabulary: its encoder reads each side right to
    left."""
    encoded_left, encoded_right = await encode_texts(engine.encoder, [left, right], settings)
    return Gap.as_read(encoded_left.ids, encoded_right.ids, engine.encoder.direction)


async def _fill(
    engines: BlankEngines, gaps: dict[str, Gap], count: int, top_k: int
) -> tuple[list[Filled], list[float | None]]:
    """The top_k filled words, and each one's log-probability under the backward model given
    the right side (None without one, or for a word outside its vocabulary). The backward
    model, in one read of the right side, proposes its words and gives its log-probability of
    every word; the forward engine then reads the left side once, proposes its words at the
    blank and scores every filled line from there. One engine after the other: on a few cores
    two engines stepping at once slowed each other (docs/experiments.md)."""
    forward, gap = engines.forward, gaps["forward"]
    behind: Prediction | None = None
    if engines.backward is not None:
        before = engines.backward.encoder.from_ids(gaps["backward"].before("backward"))
        behind = await engines.backward.predict_next(
            before, words_to_ask(count), cache=False, every_word=True
        )
    backward_words = () if behind is None else tuple(c.token for c in behind.candidates)
    proposer = Proposer(forward.vocab, count, top_k, backward_words)
    lines = await forward.fill_blank(gap, proposer)
    proposals = proposer.proposals([c.token for c in lines.proposed])
    ranked = rank(gap, proposals, lines.logprobs)[:top_k]
    if behind is None or engines.backward is None:
        return ranked, [None] * len(ranked)
    every_word, stoi = cast(list[float], behind.every_word), engines.backward.vocab.stoi
    tokens = [forward.vocab.itos[f.word] for f in ranked]
    return ranked, [every_word[stoi[t]] if t in stoi else None for t in tokens]


def _read(text: EncodedText) -> list[InputToken]:
    """The side's tokens as the forward model read them."""
    return [InputToken(token=t, oov=o) for t, o in zip(text.tokens, text.oov, strict=True)]
