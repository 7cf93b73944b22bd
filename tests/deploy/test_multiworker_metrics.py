"""Two uvicorn workers behind one port: /metrics, whichever worker answers it, counts every
worker's requests (prometheus-client multiprocess mode, turned on by deploy/serve.sh)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

ROUTE = "/predict-next"
REQUESTS = "nextword_requests_total"
BATCH, MAX_BATCHES = 16, 10


def route_requests(families: Iterable[Metric]) -> float:
    """nextword_requests_total for ROUTE, all statuses added up."""
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == REQUESTS and sample.labels.get("route") == ROUTE
    )


def scraped_requests(url: str) -> float:
    """route_requests in one scrape of /metrics."""
    return route_requests(text_string_to_metric_families(httpx.get(f"{url}/metrics").text))


def requests_per_worker(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """{worker: route_requests} read from each worker's own counter file (prometheus-client
    names them counter_<pid>.db), one MultiProcessCollector per file."""
    counts = {}
    for db in metrics_dir.glob("counter_*.db"):
        alone = scratch / db.stem
        alone.mkdir(parents=True)
        shutil.copy(db, alone / db.name)
        counts[db.stem] = route_requests(MultiProcessCollector(None, path=str(alone)).collect())
    return counts


def served_since(before: dict[str, float], metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """{worker: requests for ROUTE counted since `before`}, for workers that counted any."""
    after = requests_per_worker(metrics_dir, scratch)
    gained = {pid: n - before.get(pid, 0) for pid, n in after.items()}
    return {pid: n for pid, n in gained.items() if n > 0}


def predict(url: str) -> int:
    """Status of one /predict-next call on a connection of its own (so workers take turns)."""
    return httpx.post(url + ROUTE, json={"text": "我爱", "top_k": 3}, timeout=30).status_code


def test_two_workers_metrics_count_every_request(
    two_worker_api: tuple[str, Path], tmp_path: Path
) -> None:
    url, metrics_dir = two_worker_api
    scraped_before = scraped_requests(url)
    before = requests_per_worker(metrics_dir, tmp_path / "before")
    sent, served = 0, {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for batch in range(MAX_BATCHES):  # until both workers have answered some, bounded
            assert set(pool.map(predict, [url] * BATCH)) == {200}
            sent += BATCH
            for poll in range(50):  # a worker counts a request just after answering it
                served = served_since(before, metrics_dir, tmp_path / f"{batch}-{poll}")
                if sum(served.values()) >= sent:
                    break
                time.sleep(0.1)
            if len(served) >= 2:
                break
    assert len(served) >= 2, f"all {sent} requests went to one worker: {served}"
    assert sum(served.values()) == sent
    for _ in range(4):  # each scrape may be answered by either worker: all must say the same
        assert scraped_requests(url) - scraped_before == sent
