"""POST /generate: continue a prompt, as one JSON answer or as server-sent events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel

from app.deps import ERROR_RESPONSES, SettingsDep, engine_for, unless_disconnected
from app.engine import GenerationStream
from app.errors import ServiceError
from app.limits import check_continues_forward, check_generation_limits, encode_texts
from app.schemas import (
    ErrorResponse,
    GeneratedToken,
    GenerateRequest,
    GenerateResponse,
    Usage,
)
from app.streaming import event_stream
from model.rows import FinishEvent, TokenEvent

log = logging.getLogger(__name__)
router = APIRouter(tags=["model"])

_SSE_EVENT = {  # one event: its data is "[DONE]" or JSON of one of these bodies
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        "anyOf": [
                            {"$ref": f"#/components/schemas/{name}"}
                            for name in ("GeneratedToken", "GenerateResponse", "ErrorResponse")
                        ]
                    },
                },
            ]
        }
    },
}
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with stream: true, server-sent events: one GeneratedToken "
        "per token, then a GenerateResponse, then `data: [DONE]` (an ErrorResponse on failure)",
        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
    }
}


@router.post(
    "/generate",
    response_model=GenerateResponse,
    response_model_exclude_none=True,
    responses={**STREAM_DOC, **ERROR_RESPONSES},
)
async def generate(
    body: GenerateRequest, settings: SettingsDep, request: Request
) -> Response | GenerateResponse:
    """Continue the prompt with temperature, top-k, top-p and repetition penalty; the same
    seed and parameters give the same text, alone or amid other requests. <unk> is never
    generated."""
    engine = engine_for(request, body.model)
    check_continues_forward(engine.encoder, "/generate")
    options = body.to_sampling_options()
    check_generation_limits(options, settings)
    (prompt,) = await encode_texts(engine.encoder, [body.prompt], settings)
    _, (generation,) = await engine.generate([prompt], [(0, options)])
    if body.stream:
        events = event_stream(_events(generation), _error_data, generation.cancel)
        return EventSourceResponse(
            events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    return await unless_disconnected(request, _collect(generation, body.details))


async def _collect(generation: GenerationStream, details: bool) -> GenerateResponse:
    """The whole generation as one answer."""
    tokens: list[GeneratedToken] = []
    async for step in generation:
        if step.token is not None:
            tokens.append(_token(step.token))
        if step.finish is not None:
            return _final(step.finish, tokens if details else None)
    raise AssertionError("a generation ends with a finish")


async def _events(generation: GenerationStream) -> AsyncIterator[str]:
    """Server-sent events of a generation, one per token, then its finish (app/streaming.py
    ends the stream)."""
    async for step in generation:
        if step.token is not None:
            yield _sse(_token(step.token))
        if step.finish is not None:
            yield _sse(_final(step.finish, None))


def _error_data(error: ServiceError) -> str:
    return ErrorResponse(**error.body()).model_dump_json(exclude_none=True)


def _token(event: TokenEvent) -> GeneratedToken:
    return GeneratedToken(id=event.id, token=event.token, text=event.text, logprob=event.logprob)


def _final(event: FinishEvent, details: list[GeneratedToken] | None) -> GenerateResponse:
    usage = Usage(prompt_tokens=event.prompt_tokens, generated_tokens=event.generated_tokens)
    return GenerateResponse(
        generated_text=event.generated_text,
        finish_reason=event.finish_reason,  # type: ignore[arg-type]
        seed=event.seed,
        usage=usage,
        details=details,
    )


def _sse(model: BaseModel) -> str:
    return f"data: {model.model_dump_json(exclude_none=True)}\n\n"
