"""The structured access log: one JSON object per line on the `nextword.access` logger, and a
request's id for other log lines (app/middleware.py's RequestIdMiddleware gives every request
one: the client's `X-Request-ID` when it is a short token of safe characters, else a fresh one;
a hostile header is never echoed or logged)."""

from __future__ import annotations

import json
import logging
import sys

from starlette.types import Scope

ACCESS_LOGGER = "nextword.access"
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
