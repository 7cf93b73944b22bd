"""The service's errors (app/errors.py): each carries its HTTP status and error_type and
answers the one error body; an instance can name its field, headers, status and type."""

from __future__ import annotations

import pytest

from app.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InvalidRequest,
    NotFound,
    NotReady,
    Overloaded,
    ServiceError,
    TooLarge,
    Unauthorized,
)


@pytest.mark.parametrize(
    ("error_class", "status", "error_type"),
    [
        (ServiceError, 500, "internal_error"),
        (InvalidRequest, 422, "validation_error"),
        (Unauthorized, 401, "invalid_api_key"),
        (NotFound, 404, "not_found"),
        (TooLarge, 413, "too_large"),
        (Overloaded, 429, "overloaded"),
        (NotReady, 503, "not_ready"),
        (DeadlineExceeded, 504, "timeout"),
        (ClientDisconnected, 499, "client_disconnected"),
    ],
)
def test_each_error_has_its_status_and_type_and_the_one_body(error_class, status, error_type):
    error = error_class("what went wrong")
    assert isinstance(error, ServiceError) and str(error) == "what went wrong"
    assert (error.status_code, error.error_type) == (status, error_type)
    assert error.body() == {"error": "what went wrong", "error_type": error_type}
    assert error.headers == {} and error.param is None


def test_an_error_names_its_field_headers_status_and_type_for_itself_only() -> None:
    error = NotFound("model: 'x' is not served", {"X-Why": "1"}, error_type="model_not_found",
                     param="model")  # fmt: skip
    assert (error.status_code, error.param, error.headers) == (404, "model", {"X-Why": "1"})
    assert error.body() == {"error": "model: 'x' is not served", "error_type": "model_not_found"}
    custom = ServiceError("gone", status_code=410, error_type="gone")
    assert (custom.status_code, custom.error_type) == (410, "gone")
    assert (ServiceError.status_code, NotFound.error_type) == (500, "not_found")  # unchanged
