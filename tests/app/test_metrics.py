"""The Prometheus metrics (app/metrics.py): the counters, histograms and gauges move as the
service works, /v1 included, and the exposition reads one process or, in multiprocess mode,
every worker's figures."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app import metrics
from tests.app.support import complete, metric


def test_metrics_parse_and_counters_move(client: TestClient) -> None:
    before = client.get("/metrics").text
    client.post("/predict-next", json={"text": "我"})
    generated = client.post("/generate", json={"prompt": "我", "max_new_tokens": 7,
                                               "ignore_eos": True}).json()  # fmt: skip
    (scored,) = client.post("/perplexity", json={"text": "我爱北京"}).json()["results"]
    client.post("/predict-next", json={"top_k": 0})
    after = client.get("/metrics").text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("nextword_requests_total", route="/predict-next", status="200") == 1
    assert moved("nextword_requests_total", route="/predict-next", status="422") == 1
    assert moved("nextword_errors_total", error_type="validation_error") == 1
    assert moved("nextword_generated_tokens_total") == generated["usage"]["generated_tokens"]
    assert moved("nextword_scored_tokens_total") == scored["num_tokens"]
    assert moved("nextword_request_duration_seconds_count", route="/generate") == 1
    assert moved("nextword_time_to_first_token_seconds_count") == 1
    assert moved("nextword_time_per_output_token_seconds_count") == 6
    assert moved("nextword_step_batch_size_count") >= 7
    assert moved("nextword_queue_time_seconds_count") == 3
    assert metric(after, "nextword_model_info") == 1
    assert metric(after, "nextword_batch_size") == 0 and metric(after, "nextword_queue_size") == 0


def test_v1_traffic_is_counted(client: TestClient) -> None:
    before = client.get("/metrics").text
    answer = complete(client, prompt="我", max_tokens=4, ignore_eos=True)
    client.post("/v1/completions", json={"prompt": "我", "n": 0})
    after = client.get("/metrics").text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("nextword_requests_total", route="/v1/completions", status="200") == 1
    assert moved("nextword_requests_total", route="/v1/completions", status="400") == 1
    assert moved("nextword_generated_tokens_total") == answer["usage"]["completion_tokens"]


def test_exposition_reads_this_process_unless_in_multiprocess_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metrics.multiprocess_dir() is None
    metrics.SCORED_TOKENS.labels(model="nextword").inc(0)
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain") and b"nextword_scored_tokens_total" in body
    body, content_type = metrics.exposition("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    assert metrics.multiprocess_dir() is None
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # no worker wrote there yet
    assert metrics.multiprocess_dir() == str(tmp_path)
    body, _ = metrics.exposition(None)
    assert b"nextword_scored_tokens_total" not in body
