"""POST /perplexity: how well the model predicts one text or several."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ERROR_RESPONSES, SettingsDep, engine_for, unless_disconnected
from app.engine import TextScore
from app.limits import check_text_count, encode_texts
from app.schemas import PerplexityRequest, PerplexityResponse, ScoredToken, TextPerplexity

router = APIRouter(tags=["model"])


@router.post("/perplexity", responses=ERROR_RESPONSES, response_model_exclude_none=True)
async def perplexity(
    body: PerplexityRequest, settings: SettingsDep, request: Request
) -> PerplexityResponse:
    """Perplexity, token count, mean negative log-likelihood and OOV count of each text (one
    result per text, in order, also for a single `text`), its closing <eos> counted as a
    target (as in model.evaluate); each token's logprob with details. A text gets the same
    figure alone or in any batch."""
    engine = engine_for(request, body.model)
    texts = body.all_texts()
    check_text_count(len(texts), "texts", settings)
    encoded = await encode_texts(engine.encoder, texts, settings)
    scores = await unless_disconnected(request, engine.score(encoded, cache=body.cache))
    return PerplexityResponse(results=[_result(score, body.details) for score in scores])


def _result(score: TextScore, details: bool) -> TextPerplexity:
    text = score.text
    tokens = None
    if details:
        tokens = [
            ScoredToken(token=token, logprob=logprob, oov=oov)
            for (token, oov), logprob in zip(score.targets, score.logprobs, strict=True)
        ]
    return TextPerplexity(
        perplexity=score.perplexity,
        num_tokens=len(score.logprobs),
        mean_nll=score.mean_nll,
        oov_count=sum(text.oov),
        tokens=tokens,
    )
