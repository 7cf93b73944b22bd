"""Plain ASGI middleware (nothing buffered, streamed answers timed to their last byte): request
ids and the access log line, request metrics, and the request body size limit."""

from __future__ import annotations

import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.access import log as access_log
from app.errors import TooLarge
from app.handlers import error_response

HEADER = b"x-request-id"
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _route_label(scope: Scope) -> str:
    """The route template that answered (bounded label values), or 'unmatched'."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    return getattr(route, "path", "") or "/"


def _model_label(scope: Scope) -> str:
    """The served model that answered (app.routes.deps.engine_for names it), or '' for a route
    that uses none or a request refused before one was chosen."""
    return str(scope.get("state", {}).get("model", ""))


class MetricsMiddleware:
    """Requests by route, status and model, their duration, and how many are in flight."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app fails before answering
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            metrics.REQUESTS_IN_FLIGHT.dec()
            route, model = _route_label(scope), _model_label(scope)
            metrics.REQUESTS.labels(route=route, status=str(status), model=model).inc()
            metrics.REQUEST_DURATION.labels(route=route, model=model).observe(
                time.perf_counter() - started
            )


class BodyLimitMiddleware:
    """Refuse a request body over max_bytes with 413 and the one error body: at once when
    Content-Length says so, else as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is over {self.max_bytes} bytes (NEXTWORD_MAX_BODY_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(TooLarge(self._message()), scope["path"])(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # the route's error handler answers
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)


def _incoming_id(scope: Scope) -> str:
    """The client's id if it is safe to echo and log, else a new random one."""
    given = dict(scope["headers"]).get(HEADER, b"")
    return given.decode("ascii") if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Give every HTTP request an id, echo it, and log the request when its answer ends."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # if the app fails before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": (scope.get("client") or ("-",))[0],
            }
            access_log.info("request", extra={"fields": fields})
