"""Every Prometheus metric of the service, in one place, all prefixed `nextword_`.

Several worker processes (uvicorn --workers N) share one set of figures through prometheus
client's multiprocess mode, set up as its documentation says: PROMETHEUS_MULTIPROC_DIR names an
empty directory before the processes start, gauges declare how they aggregate, /metrics reads a
fresh registry with a MultiProcessCollector, and a worker marks itself dead when it stops.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_TOKEN_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.5, 1)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# -- HTTP ----------------------------------------------------------------------------------
# `model`: the model that answered a request; empty for a route that uses none and for a
# request refused before one was chosen (its label values are the served names, no others)
REQUESTS = Counter(
    "nextword_requests_total", "HTTP requests answered, by route template, status code and model.",
    ["route", "status", "model"],
)  # fmt: skip
REQUEST_DURATION = Histogram(
    "nextword_request_duration_seconds", "Time from request to the end of the answer.",
    ["route", "model"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
REQUESTS_IN_FLIGHT = Gauge(
    "nextword_requests_in_flight", "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)  # fmt: skip
ERRORS = Counter("nextword_errors_total", "Error answers, by error_type.", ["error_type"])

# -- tokens, by model ----------------------------------------------------------------------
PROMPT_TOKENS = Counter(
    "nextword_prompt_tokens_total", "Prompt tokens read for generation (/generate, /v1).",
    ["model"],
)  # fmt: skip
GENERATED_TOKENS = Counter("nextword_generated_tokens_total", "Tokens generated.", ["model"])
SCORED_TOKENS = Counter(
    "nextword_scored_tokens_total",
    "Target tokens scored by /perplexity and /v1 echo logprobs (<eos> included).",
    ["model"],
)
SEQUENCES_FINISHED = Counter(
    "nextword_sequences_finished_total",
    "Generations ended, by finish reason (or 'cancelled' when the client left, 'timeout' "
    "when the deadline passed before any token, 'error').",
    ["model", "reason"],
)

# -- engine, by model ----------------------------------------------------------------------
QUEUE_SIZE = Gauge(
    "nextword_queue_size", "Requests waiting for a batch slot.", ["model"],
    multiprocess_mode="livesum",
)  # fmt: skip
BATCH_SIZE = Gauge(
    "nextword_batch_size", "Sequences in the running batch.", ["model"],
    multiprocess_mode="livesum",
)  # fmt: skip
STEP_BATCH_SIZE = Histogram(
    "nextword_step_batch_size", "Sequences read by each batched step.", ["model"],
    buckets=_BATCH_BUCKETS,
)  # fmt: skip
STEP_DURATION = Histogram(
    "nextword_step_duration_seconds", "Time of one batched step: forward, output layer, "
    "sampling and bookkeeping.", ["model"], buckets=_TOKEN_BUCKETS,
)  # fmt: skip
QUEUE_TIME = Histogram(
    "nextword_queue_time_seconds", "Time a sequence waited for a batch slot.", ["model"],
    buckets=_LATENCY_BUCKETS,
)  # fmt: skip
TIME_TO_FIRST_TOKEN = Histogram(
    "nextword_time_to_first_token_seconds", "Time from a generation request to its first token.",
    ["model"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
TIME_PER_OUTPUT_TOKEN = Histogram(
    "nextword_time_per_output_token_seconds", "Time between two tokens of one generation.",
    ["model"], buckets=_TOKEN_BUCKETS,
)  # fmt: skip

# -- model ---------------------------------------------------------------------------------
MODEL_INFO = Gauge(
    "nextword_model_info", "Each loaded model (value 1), described by its labels.",
    ["model", "cell", "hidden_size", "num_layers", "vocab_size", "quantize", "weights_sha256"],
    multiprocess_mode="livemax",
)  # fmt: skip


class ModelMetrics:
    """One served model's series of the token and engine metrics (its `model` label), as its
    engine records them."""

    def __init__(self, model: str):
        self.model = model
        self.prompt_tokens = PROMPT_TOKENS.labels(model=model)
        self.generated_tokens = GENERATED_TOKENS.labels(model=model)
        self.scored_tokens = SCORED_TOKENS.labels(model=model)
        self.queue_size = QUEUE_SIZE.labels(model=model)
        self.batch_size = BATCH_SIZE.labels(model=model)
        self.step_batch_size = STEP_BATCH_SIZE.labels(model=model)
        self.step_duration = STEP_DURATION.labels(model=model)
        self.queue_time = QUEUE_TIME.labels(model=model)
        self.time_to_first_token = TIME_TO_FIRST_TOKEN.labels(model=model)
        self.time_per_output_token = TIME_PER_OUTPUT_TOKEN.labels(model=model)

    def sequences_finished(self, reason: str) -> Counter:
        """The counter of this model's generations that ended for reason."""
        return SEQUENCES_FINISHED.labels(model=self.model, reason=reason)


def multiprocess_dir() -> str | None:
    """The multiprocess-mode directory, or None in a single process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(accept: str | None) -> tuple[bytes, str]:
    """(body, content type) of /metrics: every worker's figures in multiprocess mode, this
    process' otherwise; OpenMetrics when the scraper asks for it."""
    registry = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def mark_worker_stopped() -> None:
    """Drop this process' live gauges from the shared figures (multiprocess mode only)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())
