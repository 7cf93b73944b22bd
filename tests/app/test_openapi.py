"""The OpenAPI schema (app/openapi.py): examples and the error body documented, this
deployment's configured limits and largest token id published, and the bearer scheme only
when an API key is configured."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.main import create_app


def test_openapi_documents_examples_and_error_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("PredictRequest", "GenerateRequest", "PerplexityRequest"):
        assert components[name]["examples"], name
    responses = schema["paths"]["/generate"]["post"]["responses"]
    for code in ("413", "422", "429", "503"):
        ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert "text/event-stream" in responses["200"]["content"]


def test_openapi_publishes_the_configured_limits(make_settings) -> None:
    limits = {"max_new_tokens": 50, "max_stop_strings": 3, "max_stop_chars": 9, "max_texts": 4}
    settings = make_settings(**limits, max_text_chars=300, request_timeout_seconds=7.5)
    with TestClient(create_app(settings)) as limited:
        schemas = limited.get("/openapi.json").json()["components"]["schemas"]
    generate = schemas["GenerateRequest"]["properties"]
    assert generate["max_new_tokens"]["maximum"] == 50
    assert (generate["stop"]["maxItems"], generate["stop"]["items"]["maxLength"]) == (3, 9)
    assert schemas["PerplexityRequest"]["properties"]["texts"]["maxItems"] == 4
    assert schemas["PredictRequest"]["properties"]["text"]["maxLength"] == 300
    completion = schemas["CompletionRequest"]["properties"]
    assert {"type": "integer", "minimum": 0, "maximum": 50} in completion["max_tokens"]["anyOf"]
    assert completion["n"]["maximum"] == 4


def test_openapi_has_the_largest_token_id_and_a_bearer_scheme_only_with_a_key(
    client: TestClient, make_settings
) -> None:
    schema = client.get("/openapi.json").json()
    largest = client.get("/info").json()["model"]["vocab_size"] - 1
    tokens = schema["components"]["schemas"]["DetokenizeRequest"]["properties"]["tokens"]
    assert tokens["items"]["maximum"] == largest
    assert "securitySchemes" not in schema["components"]
    assert not any("security" in op for ops in schema["paths"].values() for op in ops.values())
    with TestClient(create_app(make_settings(api_key="a-key"))) as guarded:
        keyed = guarded.get("/openapi.json").json()
    assert keyed["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"HTTPBearer": []} in keyed["paths"]["/generate"]["post"]["security"]
