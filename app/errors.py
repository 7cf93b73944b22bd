"""Errors the service answers with: each carries its HTTP status and a short error_type, so one
handler turns any of them into the one error body `{"error": ..., "error_type": ...}`.

No FastAPI here: the engine raises these too.
"""

from __future__ import annotations

from collections.abc import Sequence


class ServiceError(Exception):
    """A failure with a message meant for the client (never a stack trace or a path)."""

    status_code = 500
    error_type = "internal_error"

    def __init__(
        self,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.status_code = status_code or self.status_code
        self.error_type = error_type or self.error_type
        self.param = param  # the request field at fault, where there is one

    def body(self) -> dict[str, str]:
        """The JSON error body."""
        return {"error": self.message, "error_type": self.error_type}


class InvalidRequest(ServiceError):
    """A field breaks a rule that depends on the configuration (the schema checks the rest)."""

    status_code = 422
    error_type = "validation_error"


class Unauthorized(ServiceError):
    """An API key is configured and the request did not bring one of its keys."""

    status_code = 401
    error_type = "invalid_api_key"


class NotFound(ServiceError):
    """The request names something this server does not have (a model, say)."""

    status_code = 404
    error_type = "not_found"


class UnknownModel(NotFound):
    """The request's `model` names no model this server serves (404; a 400 in OpenAI's shape
    under /v1, see app.v1.errors)."""

    error_type = "model_not_found"

    def __init__(self, name: str, served: Sequence[str]):
        names = ", ".join(repr(served_name) for served_name in served)
        super().__init__(
            f"model: {name!r} is not served here; this server serves {names} (GET /v1/models): "
            f"name one of them, or leave model out for {served[0]!r}",
            param="model",
        )


class TooLarge(ServiceError):
    """A text or request over a configured size limit."""

    status_code = 413
    error_type = "too_large"


class Overloaded(ServiceError):
    """Every batch slot is busy and the waiting queue is full: retry later."""

    status_code = 429
    error_type = "overloaded"


class NotReady(ServiceError):
    """The model is not loaded (yet, or at all) or the engine is shutting down."""

    status_code = 503
    error_type = "not_ready"


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before it had anything to answer with (a generation that
    produced tokens ends with finish_reason "time_limit" instead)."""

    status_code = 504
    error_type = "timeout"


class ClientDisconnected(ServiceError):
    """The client went away before its answer was ready; its work was dropped."""

    status_code = 499  # nginx's "client closed request": only ever seen in metrics and logs
    error_type = "client_disconnected"
