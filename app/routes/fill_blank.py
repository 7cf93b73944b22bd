"""POST /fill-blank: the words that best fill the one blank in a line, ranked by the whole line.

Like every model route it validates, encodes, makes one call into the engine
(app/engine/fill_blank.py: proposing, scoring each filled line, ranking) and shapes the answer.
The forward model is the one `model` names; a backward model, where the server serves one and
the request does not say `backward: false`, proposes words that fit the right side.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request

from app.deps import ERROR_RESPONSES, SettingsDep, engine_for, unless_disconnected
from app.engine import Engine
from app.engine.fill_blank import fill_in_blank
from app.errors import InvalidRequest
from app.limits import check_continues_forward, check_filled_line, encode_texts
from app.schemas import FillBlankRequest, FillBlankResponse, FilledWord, InputToken
from model.fill_blank import BlankError, Gap, find_blank

router = APIRouter(tags=["model"])


@router.post("/fill-blank", responses=ERROR_RESPONSES)
async def fill_blank(
    body: FillBlankRequest, settings: SettingsDep, request: Request
) -> FillBlankResponse:
    """The top_k words for the blank, best first by the forward model's log-probability of the
    whole filled line; each with its probability given each side alone. A text of several
    lines, without a blank or with two is a 422 that says so."""
    forward = engine_for(request, body.model)
    check_continues_forward(forward.encoder, "/fill-blank")
    engines: dict[str, Engine] = request.app.state.engines if body.backward else {}
    backward = next(
        (e for e in engines.values() if e.running and e.encoder.direction == "backward"), None
    )
    try:
        blank = find_blank(body.text, body.blank)
    except BlankError as error:
        raise InvalidRequest(f"text: {error}", param="text") from error
    readers = [forward] if backward is None else [forward, backward]
    sides = [await encode_texts(e.encoder, [blank.left, blank.right], settings) for e in readers]
    for left, right in sides:
        check_filled_line(left, right, settings)
    left, right = sides[0]
    gap = Gap(tuple(left.ids), tuple(right.ids))
    behind = None if backward is None else (backward, sides[1][1])
    work = fill_in_blank(forward, gap, body.top_k, body.candidates, behind)
    words = await unless_disconnected(request, work)
    return FillBlankResponse(
        left=[InputToken(token=t, oov=o) for t, o in zip(left.tokens, left.oov, strict=True)],
        right=[InputToken(token=t, oov=o) for t, o in zip(right.tokens, right.oov, strict=True)],
        models={"forward": forward.name, "backward": None if backward is None else backward.name},
        candidates=[
            FilledWord(
                token=w.token,
                line_logprob=w.line_logprob,
                left_prob=math.exp(w.left_logprob),
                right_prob=None if w.right_logprob is None else math.exp(w.right_logprob),
                proposed_by=list(w.proposed_by),  # type: ignore[arg-type]
            )
            for w in words
        ],
    )
