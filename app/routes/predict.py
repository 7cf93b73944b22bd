"""POST /predict-next: the most probable next words after a text."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request

from app.deps import ERROR_RESPONSES, SettingsDep, engine_for, unless_disconnected
from app.limits import check_continues_forward, encode_texts
from app.schemas import InputToken, NextToken, PredictRequest, PredictResponse

router = APIRouter(tags=["model"])


@router.post("/predict-next", responses=ERROR_RESPONSES)
async def predict_next(
    body: PredictRequest, settings: SettingsDep, request: Request
) -> PredictResponse:
    """The input as the model read it (OOV tokens flagged) and the top_k next tokens, most
    probable first. <unk> is never offered; <eos> is, as the end of the text."""
    engine = engine_for(request, body.model)
    check_continues_forward(engine.encoder, "/predict-next")
    (text,) = await encode_texts(engine.encoder, [body.text], settings)
    prediction = await unless_disconnected(
        request, engine.predict_next(text, body.top_k, body.cache)
    )
    return PredictResponse(
        tokens=[InputToken(token=t, oov=o) for t, o in zip(text.tokens, text.oov, strict=True)],
        candidates=[
            NextToken(
                token=c.token, prob=math.exp(c.logprob), logprob=c.logprob,
                end_of_text=c.end_of_text,
            )
            for c in prediction.candidates
        ],
    )  # fmt: skip
