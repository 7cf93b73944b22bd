"""The OpenAI-compatible HTTP routes: /v1/completions, /v1/models, and the tokenizer routes
(at the root, where lm-evaluation-harness's remote tokenizer looks, and under /v1). They
validate, call app.v1.serving or the engine, and shape the answer; errors take OpenAI's shape
(app.v1.errors)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.sse import EventSourceResponse

from app.deps import EngineDep, SettingsDep, engine_for, unless_disconnected
from app.errors import NotFound
from app.limits import (
    check_continues_forward,
    check_generation_limits,
    check_text_count,
    encode_prompts,
    from_ids,
)
from app.schemas import MODEL_DESCRIPTION
from app.v1 import serving
from app.v1.protocol import (
    CompletionRequest,
    CompletionResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
    TokenizerInfoResponse,
)
from model.vocab import EOS, UNK

router = APIRouter(tags=["openai"])
_STARTED = int(time.time())


def _error_doc(description: str) -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": "string"},
                },
            }
        },
    }
    return {"description": description, "content": {"application/json": {"schema": error}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    code: _error_doc(description)
    for code, description in (
        (400, "a field breaks a rule, or model names no model served here: param names it"),
        (401, "an API key is configured and the request did not bring one"),
        (413, "a prompt or the request is over a configured limit"),
        (429, "overloaded: every batch slot busy and the queue full; see Retry-After"),
        (503, "the model is not loaded"),
        (504, "the deadline (see /info) passed before anything could be answered"),
    )
}
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with stream: true, server-sent events: CompletionResponse "
        "chunks, an optional usage chunk, then `data: [DONE]`",
        "content": {"text/event-stream": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/v1/completions", response_model=CompletionResponse, responses={**STREAM_DOC, **ERRORS}
)
async def create_completion(
    body: CompletionRequest, settings: SettingsDep, request: Request
) -> CompletionResponse | Response:
    """OpenAI's completions, as vLLM serves them, through the same engine (batching, seeds,
    deadlines and limits) as /generate. Choices are prompt-major: index = prompt * n + j."""
    engine = engine_for(request, body.model)
    options, prompts = body.to_sampling_options(), body.prompt_list()
    check_continues_forward(engine.encoder, "/v1/completions")
    check_generation_limits(options, settings, length_field="max_tokens")
    check_text_count(len(prompts) * body.n, "prompt (times n)", settings)
    encoded = await encode_prompts(engine.encoder, prompts, settings)
    completion = await serving.start_completion(body, engine, options, prompts, encoded)
    if body.stream:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return EventSourceResponse(serving.stream(completion), headers=headers)
    whole = serving.collect(completion)
    return await unless_disconnected(request, whole)


@router.get("/v1/models", responses=ERRORS)
async def list_models(default: EngineDep, settings: SettingsDep) -> ModelList:
    """The served models, the default (a request without `model` gets it) first."""
    return ModelList(
        data=[
            ModelCard(id=name, created=_STARTED, max_model_len=settings.max_text_tokens)
            for name in settings.served_models()
        ]
    )


@router.post("/v1/chat/completions", include_in_schema=False)
async def chat_completions() -> None:
    """Not served: a word-level model trained on news text has no chat turns to follow."""
    raise NotFound(
        "/v1/chat/completions is not served: nextword is a word-level language model trained "
        "on plain text, with no chat template or chat training; use /v1/completions",
        error_type="not_found",
    )


def _tokenizer_routes(prefix: str) -> None:
    """Register the tokenizer routes under prefix ("" or "/v1")."""

    @router.get(f"{prefix}/tokenizer_info", responses=ERRORS)
    async def tokenizer_info(
        settings: SettingsDep,
        request: Request,
        model: Annotated[str | None, Query(description=MODEL_DESCRIPTION)] = None,
    ) -> TokenizerInfoResponse:
        """The special tokens ("<eos>" encodes to exactly one id) and the limits, of the model
        named (the default without one)."""
        engine = engine_for(request, model)
        return TokenizerInfoResponse(
            eos_token=EOS,  # the special tokens, as clients write them
            unk_token=UNK,
            bos_token=None,
            model_max_length=settings.max_text_tokens,
            vocab_size=len(engine.vocab),
            tokenizer_class=f"nextword-{engine.encoder.tokenizer.spec.name}",
        )

    @router.post(f"{prefix}/tokenize", responses=ERRORS, response_model_exclude_none=True)
    async def tokenize(
        body: TokenizeRequest, settings: SettingsDep, request: Request
    ) -> TokenizeResponse:
        """A text's token ids, as /v1/completions reads it."""
        engine = engine_for(request, body.model)
        (encoded,) = await encode_prompts(engine.encoder, [body.prompt], settings)
        return TokenizeResponse(
            tokens=encoded.ids,
            count=len(encoded.ids),
            max_model_len=settings.max_text_tokens,
            token_strs=engine.vocab.decode(encoded.ids) if body.return_token_strs else None,
        )

    @router.post(f"{prefix}/detokenize", responses=ERRORS)
    async def detokenize(body: DetokenizeRequest, request: Request) -> DetokenizeResponse:
        """The text of token ids."""
        engine = engine_for(request, body.model)
        text = from_ids(engine.encoder, body.tokens, "tokens")
        return DetokenizeResponse(prompt=engine.encoder.tokenizer.detokenize(text.tokens))


for _prefix in ("", "/v1"):
    _tokenizer_routes(_prefix)
