"""The error body of the OpenAI-compatible routes, `{"error": {"message", "type", "param",
"code"}}`, as the openai SDK and vLLM expect it; the rest of the API keeps its own body.

A field that breaks a rule is a 400 here (OpenAI's status for a bad parameter), not the 422 of
the other routes: clients treat 400 as final and never retry it. So is a `model` this server
does not serve (a bad value of a parameter, as the API's contract says), a 404 elsewhere.
"""

from __future__ import annotations

from app.errors import ServiceError, UnknownModel

TOKENIZER_PATHS = ("/tokenize", "/detokenize", "/tokenizer_info")


def speaks_openai(path: str) -> bool:
    """Whether the route at path answers errors in OpenAI's shape: everything under /v1 and
    the root tokenizer routes vLLM serves."""
    return path == "/v1" or path.startswith("/v1/") or path in TOKENIZER_PATHS


def _error_class(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(error: ServiceError) -> tuple[int, dict[str, dict[str, str | None]]]:
    """(status, body) of error in OpenAI's shape; code is the service's error_type."""
    bad_parameter = error.status_code == 422 or isinstance(error, UnknownModel)
    status = 400 if bad_parameter else error.status_code
    body = {
        "message": error.message,
        "type": _error_class(status),
        "param": error.param,
        "code": error.error_type,
    }
    return status, {"error": body}
