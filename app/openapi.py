"""The OpenAPI schema with this server's configuration in it, so that clients (and schema
fuzzers) see the maximum max_new_tokens, text length, texts per request and stop strings that
this deployment enforces, not only the fixed ones of app.schemas, and the names a request's
`model` may take."""

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


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas a property may take: its anyOf members (nested ones too), or itself."""
    if "anyOf" not in schema:
        return [schema]
    return [variant for member in schema["anyOf"] for variant in _variants(member)]


def _publish_openai_limits(components: dict[str, Any], settings: Settings) -> None:
    """The configured limits in the /v1 and tokenizer request schemas, in place."""
    completion = components["CompletionRequest"]["properties"]
    for variant in _variants(completion["max_tokens"]):
        if variant.get("type") == "integer":
            variant["maximum"] = settings.max_new_tokens
    completion["n"]["maximum"] = min(completion["n"]["maximum"], settings.max_texts)
    for variant in _variants(completion["stop"]):
        if variant.get("type") == "array":
            variant["maxItems"] = settings.max_stop_strings
            variant["items"]["maxLength"] = settings.max_stop_chars
        elif variant.get("type") == "string":
            variant["maxLength"] = settings.max_stop_chars
    texts = [
        *_variants(completion["prompt"]),
        components["TokenizeRequest"]["properties"]["prompt"],
    ]
    for variant in texts:
        if variant.get("type") == "string":
            variant["maxLength"] = settings.max_text_chars
        elif variant.get("type") == "array" and variant["items"].get("type") == "string":
            variant["maxItems"] = settings.max_texts
            variant["items"]["maxLength"] = settings.max_text_chars


def _publish_vocabulary(components: dict[str, Any], vocab_size: int) -> None:
    """The largest token id in the schemas of token-id lists, in place (of the largest
    vocabulary served; each model checks the ids it is given against its own)."""
    lists = [
        *_variants(components["CompletionRequest"]["properties"]["prompt"]),
        components["DetokenizeRequest"]["properties"]["tokens"],
    ]
    for variant in lists:
        items = variant.get("items", {})
        items = items.get("items", items)  # a list of lists of ids
        if items.get("type") == "integer":
            items["maximum"] = vocab_size - 1


def _publish_model_names(schema: dict[str, Any], names: list[str]) -> None:
    """The served models' names as the only strings a request's `model` may be (a body field
    or the ?model= query), in place: any other name is refused (404, or 400 under /v1)."""
    fields = [
        component["properties"]["model"]
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request") and "model" in component.get("properties", {})
    ]
    fields += [
        parameter["schema"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "model"
    ]
    for field in fields:
        for variant in _variants(field):
            if variant.get("type") == "string":
                variant["enum"] = names


def _drop_security(schema: dict[str, Any]) -> None:
    """Without an API key nothing needs one: say so by publishing no security scheme."""
    schema["components"].pop("securitySchemes", None)
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make app's /openapi.json carry the configured limits and model names, and the bearer
    scheme only when an API key is configured (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = build()
        if first:
            _publish_limits(schema["components"]["schemas"], settings)
            _publish_openai_limits(schema["components"]["schemas"], settings)
            _publish_model_names(schema, list(settings.served_models()))
            engines = app.state.engines  # the models load before the first request
            if engines:
                largest = max(len(engine.vocab) for engine in engines.values())
                _publish_vocabulary(schema["components"]["schemas"], largest)
            if settings.api_key is None and settings.api_key_file is None:
                _drop_security(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
