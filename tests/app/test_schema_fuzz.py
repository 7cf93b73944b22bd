"""Schema fuzzing: schemathesis reads the live OpenAPI schema of a real uvicorn and sends
generated requests, valid (positive) and invalid (negative), to every operation: no answer is a
5xx and every answer matches the schema (status code, content type, body, headers). The server
wants an API key, so schemathesis also checks that requests without it are refused. Bounded: a
fixed number of examples per operation and mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.live_server import uvicorn_server

EXAMPLES = 25  # per operation and mode
MODEL_OPERATIONS = [
    ("POST", "/predict-next"),
    ("POST", "/generate"),
    ("POST", "/perplexity"),
    ("POST", "/fill-blank"),
    ("POST", "/v1/completions"),
    *(
        ("POST", f"{prefix}/{route}")
        for prefix in ("", "/v1")
        for route in ("tokenize", "detokenize")
    ),
]
SERVICE_OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/info"),
    ("GET", "/v1/models"),
    ("GET", "/tokenizer_info"),
    ("GET", "/v1/tokenizer_info"),
]
CASES = [
    *((*operation, mode) for operation in MODEL_OPERATIONS for mode in GenerationMode),
    *((*operation, GenerationMode.POSITIVE) for operation in SERVICE_OPERATIONS),  # no input
]
# a text over the configured length is refused with 413 (too large), as docs/api.md says
REJECTION = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
# /fill-blank's text must hold its `blank` marker exactly once: a rule between two fields that
# JSON Schema cannot state, so a schema-valid body may get its 422; every other check still runs
EXCLUDED = {"/fill-blank": [positive_data_acceptance]}
KEY = "fuzz-key"  # the server wants an API key: unauthenticated cases must get 401
CONFIG = {
    "checks": {"negative_data_rejection": {"expected-statuses": REJECTION}},
    "auth": {"openapi": {"HTTPBearer": {"bearer": KEY}}},
}


@pytest.fixture(scope="module")
def live_schema(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """The OpenAPI schema as the live server publishes it, bound to that server."""
    log_dir = tmp_path_factory.mktemp("fuzz")
    with uvicorn_server(tiny_checkpoint, log_dir, threads="1", api_key=KEY) as url:
        config = SchemathesisConfig.from_dict(CONFIG)
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)


def test_schema_lists_exactly_the_fuzzed_operations(live_schema) -> None:
    listed = {(op.ok().method.upper(), op.ok().path) for op in live_schema.get_all_operations()}
    assert listed == {*MODEL_OPERATIONS, *SERVICE_OPERATIONS}


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_5xx_and_every_answer_matches_the_schema(live_schema, method, path, mode) -> None:
    operation = live_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(timeout=30, excluded_checks=EXCLUDED.get(path, []))

    check()
