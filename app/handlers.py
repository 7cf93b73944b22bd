"""Every failure answers with the one error body `{"error": ..., "error_type": ...}` (OpenAI's
shape under /v1: see app.v1.errors): invalid fields (naming the field and the rule), limits,
overload, not ready, unknown routes, and unexpected failures (logged here, never a stack trace
in the answer)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app import metrics
from app.access import request_id_of
from app.errors import ServiceError
from app.v1.errors import openai_error, speaks_openai

log = logging.getLogger(__name__)

_HTTP_ERROR_TYPES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def error_response(error: ServiceError, path: str = "") -> JSONResponse:
    """The JSON answer for a ServiceError on the route at path, counted by error type."""
    metrics.ERRORS.labels(error.error_type).inc()
    if speaks_openai(path):
        status, body = openai_error(error)
        return JSONResponse(body, status_code=status, headers=error.headers)
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str, str | None]:
    """(message, error_type, first field): every broken rule as `field: rule`, most useful
    first."""
    parts = []
    fields = []
    error_type = "validation_error"
    for item in exc.errors():
        field = ".".join(str(p) for p in item["loc"] if p != "body") or "body"
        if item["type"] == "json_invalid":
            error_type = "invalid_json"
            field = "body"
        detail = item.get("ctx", {}).get("error") if item["type"] == "json_invalid" else None
        parts.append(f"{field}: {item['msg']}" + (f" ({detail})" if detail else ""))
        fields.append(field)
    param = fields[0] if fields and fields[0] != "body" else None
    return "; ".join(parts) or "invalid request", error_type, param


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, error_type, param = _validation_message(exc)
    error = ServiceError(message, status_code=422, error_type=error_type, param=param)
    return error_response(error, request.url.path)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI's only 400: a body that is not text at all
        message = "body: could not be read as JSON; send UTF-8 encoded JSON"
        error = ServiceError(message, status_code=422, error_type="invalid_json")
        return error_response(error, request.url.path)
    error_type = _HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    return error_response(
        ServiceError(str(exc.detail), headers, status_code=exc.status_code, error_type=error_type),
        request.url.path,
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception(
        "unexpected failure answering %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id_of(request.scope),
    )
    return error_response(ServiceError("internal error (see the server log)"), request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure to the one error body."""
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
