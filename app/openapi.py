"""The OpenAPI schema with this server's configured limits in it, so that clients (and schema
fuzzers) see the maximum max_new_tokens, text length, texts per request and stop strings that
this deployment enforces, not only the fixed ones of app.schemas."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.settings import Settings


def _publish_limits(components: dict[str, Any], settings: Settings) -> None:
    """Write the configured limits into the request schemas, in place."""
    generate = components["GenerateRequest"]["properties"]
    generate["max_new_tokens"]["maximum"] = settings.max_new_tokens
    generate["stop"]["maxItems"] = settings.max_stop_strings
    generate["stop"]["items"]["maxLength"] = settings.max_stop_chars
    perplexity = components["PerplexityRequest"]["properties"]
    perplexity["texts"]["maxItems"] = settings.max_texts
    for text in (
        components["PredictRequest"]["properties"]["text"],
        generate["prompt"],
        perplexity["text"],
        perplexity["texts"]["items"],
    ):
        text["maxLength"] = settings.max_text_chars


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make app's /openapi.json carry the configured limits (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = build()
        if first:
            _publish_limits(schema["components"]["schemas"], settings)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
