"""Request ids and the access log (app/access.py): a safe client id is echoed, a hostile one
replaced; every request is one JSON line on the nextword.access logger."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient

from app.access import ACCESS_LOGGER, JsonFormatter, request_id_of


def test_hostile_request_id_is_replaced_not_echoed(client: TestClient) -> None:
    """A request id that is not a short printable token is replaced, so logs stay parseable."""
    for hostile in (b"a b", b"x" * 200, "id\u00e9".encode(), b"<script>", b"a\tb"):
        given = client.get("/health", headers={"X-Request-ID": hostile}).headers["x-request-id"]
        assert given.encode() != hostile and len(given) == 32
    error = client.post("/generate", json={"temperature": -1})
    assert len(error.headers["x-request-id"]) == 32  # errors carry an id too


def test_each_request_is_one_json_line_with_its_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    try:
        echoed = client.get("/health", headers={"X-Request-ID": "trace-7:a.b_c"})
        client.get("/nowhere%0A%C3%A9", headers={"X-Request-ID": "trace-8"})
    finally:
        logger.removeHandler(handler)
    assert echoed.headers["x-request-id"] == "trace-7:a.b_c"
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2 and all(line.isascii() for line in lines)
    first, second = entries
    assert {k: first[k] for k in ("request_id", "method", "path", "status", "client")} == {
        "request_id": "trace-7:a.b_c", "method": "GET", "path": "/health", "status": 200,
        "client": "testclient",
    }  # fmt: skip
    assert first["logger"] == ACCESS_LOGGER and first["level"] == "INFO"
    assert first["duration_ms"] >= 0 and first["message"] == "request"
    assert (second["request_id"], second["path"], second["status"]) == (
        "trace-8", "/nowhere\n\u00e9", 404,
    )  # fmt: skip


def test_request_id_outside_a_request_is_a_dash() -> None:
    assert request_id_of({}) == "-"
    assert request_id_of({"state": {"request_id": "abc"}}) == "abc"
