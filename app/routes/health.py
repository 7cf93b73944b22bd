"""Liveness, readiness, the model card and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app import metrics
from app.auth import API_KEY
from app.card import service_card
from app.deps import ERROR_RESPONSES, EngineDep, SettingsDep
from app.schemas import HealthResponse, InfoResponse, ReadyResponse

router = APIRouter(tags=["service"])


@router.get("/health")
async def health() -> HealthResponse:
    """Liveness: the process answers (the model may still be missing; see /ready)."""
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "not ready"}},
)
async def ready(request: Request, settings: SettingsDep) -> ReadyResponse | JSONResponse:
    """Readiness: 200 once every served model is loaded, a one-token forward worked and its
    engine runs, else 503 with the reason."""
    engines = request.app.state.engines
    if all(name in engines and engines[name].running for name in settings.served_models()):
        return ReadyResponse(ready=True)
    reason = request.app.state.not_ready_reason
    return JSONResponse(ReadyResponse(ready=False, reason=reason).model_dump(), status_code=503)


@router.get("/info", responses={c: ERROR_RESPONSES[c] for c in (401, 503)}, dependencies=[API_KEY])
async def info(default: EngineDep, settings: SettingsDep, request: Request) -> InfoResponse:
    """The model cards: network, vocabulary, tokenizer, corpus, training and test perplexity,
    checkpoint hash, versions and how it is served, of the default model at the top level and
    of every served model under `models`; and the configured limits."""
    return service_card(default, request.app.state.engines, settings)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition (every worker's figures in multiprocess mode)."""
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
