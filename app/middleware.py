"""Plain ASGI middleware (nothing buffered, streamed answers timed to their last byte): request
ids and the access log line, request metrics, and the request body size limit."""

from __future__ import annotations

import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable

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
    """The served model that answered (app.deps.engine_for names it), or '' for a route
    that uses none or a request refused before one was chosen."""
    return str(scope.get("state", {}).get("model", ""))


class HttpMiddleware(ABC):
    """Plain ASGI middleware that acts on HTTP requests (handle) and passes anything else
    (lifespan, websockets) through untouched."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request through self.app."""


class Answer:
    """One request's answer as the app sends it: its status (500 until the app answers) and
    its time so far; start may rewrite the answer's first message (its headers)."""

    def __init__(self, send: Send, start: Callable[[Message], Message] = lambda message: message):
        self.status = 500
        self.started = time.perf_counter()
        self._send, self._start = send, start

    async def send(self, message: Message) -> None:
        """Send a message of the answer, noting its status."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message = self._start(message)
        await self._send(message)

    @property
    def seconds(self) -> float:
        """Seconds since the request arrived."""
        return time.perf_counter() - self.started


class MetricsMiddleware(HttpMiddleware):
    """Requests by route, status and model, their duration, and how many are in flight."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request and time it to its answer's last byte."""
        answer = Answer(send)
        metrics.REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, answer.send)
        finally:
            metrics.REQUESTS_IN_FLIGHT.dec()
            route, model = _route_label(scope), _model_label(scope)
            metrics.REQUESTS.labels(route=route, status=str(answer.status), model=model).inc()
            metrics.REQUEST_DURATION.labels(route=route, model=model).observe(answer.seconds)


class BodyLimitMiddleware(HttpMiddleware):
    """Refuse a request body over max_bytes with 413 and the one error body: at once when
    Content-Length says so, else as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        super().__init__(app)
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is over {self.max_bytes} bytes (NEXTWORD_MAX_BODY_BYTES)"

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, its body counted as it is received."""
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


class RequestIdMiddleware(HttpMiddleware):
    """Give every HTTP request an id, echo it, and log the request when its answer ends."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with the request's id, then write its access log line."""
        request_id = _incoming_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        def with_id(message: Message) -> Message:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
            return {**message, "headers": [*headers, (HEADER, request_id.encode())]}

        answer = Answer(send, with_id)
        try:
            await self.app(scope, receive, answer.send)
        finally:
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": answer.status,
                "duration_ms": round(answer.seconds * 1000, 2),
                "client": (scope.get("client") or ("-",))[0],
            }
            access_log.info("request", extra={"fields": fields})
