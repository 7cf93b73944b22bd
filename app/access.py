"""Request ids and the structured access log.

Every request gets an id: the client's `X-Request-ID` when it is a short token of safe
characters, else a fresh one (a hostile header is never echoed or logged). The id is echoed in
the answer's `X-Request-ID`, kept in `scope["state"]` for other log lines, and written with
method, path, status and duration as one JSON object per line on the `nextword.access` logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "nextword.access"
HEADER = b"x-request-id"
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        return json.dumps(entry)  # ASCII: a hostile path cannot break the line or the encoding


def configure_access_log() -> None:
    """Send the access log, as JSON lines, to stderr (once per process, however many apps)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # JSON only: not again through the root logger's text format


def request_id_of(scope: Scope) -> str:
    """The id of the request being answered ("-" outside a request)."""
    return str(scope.get("state", {}).get("request_id", "-"))


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
            log.info("request", extra={"fields": fields})
