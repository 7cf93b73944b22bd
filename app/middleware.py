"""ASGI middleware that counts and times every HTTP request (a plain ASGI wrapper, so that
streamed answers are timed to their last byte and nothing is buffered)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics


def _route_label(scope: Scope) -> str:
    """The route template that answered (bounded label values), or 'unmatched'."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    return getattr(route, "path", "") or "/"


class MetricsMiddleware:
    """Requests by route and status, their duration, and how many are in flight."""

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
            route = _route_label(scope)
            metrics.REQUESTS.labels(route, str(status)).inc()
            metrics.REQUEST_DURATION.labels(route).observe(time.perf_counter() - started)
