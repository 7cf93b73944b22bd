"""POST /perplexity: how well the model predicts one text or several."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.engine import TextScore
from app.routes.deps import ERROR_RESPONSES, EngineDep, unless_disconnected
from app.schemas import PerplexityRequest, PerplexityResponse, ScoredToken, TextPerplexity
from model.vocab import EOS

router = APIRouter(tags=["model"])


@router.post("/perplexity", responses=ERROR_RESPONSES, response_model_exclude_none=True)
async def perplexity(
    body: PerplexityRequest, engine: EngineDep, request: Request
) -> TextPerplexity | PerplexityResponse:
    """Perplexity, token count, mean negative log-likelihood and OOV count of a text (or of
    each of texts), its closing <eos> counted as a target (as in model.evaluate); each token's
    logprob with details. A text gets the same figure alone or in any batch."""
    scores = await unless_disconnected(request, engine.score(body.all_texts()))
    results = [_result(score, body.details) for score in scores]
    return results[0] if body.text is not None else PerplexityResponse(results=results)


def _result(score: TextScore, details: bool) -> TextPerplexity:
    text = score.text
    tokens = None
    if details:
        names = [*text.tokens, EOS]
        flags = [*text.oov, False]
        tokens = [
            ScoredToken(token=n, logprob=lp, oov=o)
            for n, lp, o in zip(names, score.logprobs, flags, strict=True)
        ]
    return TextPerplexity(
        perplexity=score.perplexity,
        num_tokens=len(score.logprobs),
        mean_nll=score.mean_nll,
        oov_count=sum(text.oov),
        tokens=tokens,
    )
