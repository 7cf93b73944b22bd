"""A live API, started as the image starts it: `promtool check metrics` accepts its /metrics,
the dashboard reads only metrics it exports, and the image's health check passes against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.live import exercise_every_route, free_port
from tests.deploy.support import ROOT, dashboard_expressions, promql_metric_names
from tests.system_tools import require_tool


def exported_sample_names(url: str) -> set[str]:
    """Every sample name in one scrape of /metrics (histograms give _bucket, _sum, _count)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_promtool_accepts_a_live_scrape(two_worker_api: tuple[str, Path]) -> None:
    promtool = require_tool("promtool", "prometheus")
    url, _ = two_worker_api
    exercise_every_route(url)
    scrape = httpx.get(f"{url}/metrics", timeout=10).text
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_reads_only_metrics_the_service_exports(two_worker_api: tuple[str, Path]) -> None:
    url, _ = two_worker_api
    exercise_every_route(url)
    exported = exported_sample_names(url)
    expressions = dashboard_expressions(ROOT / "deploy/grafana/dashboards/nextword.json")
    used = set().union(*(promql_metric_names(e) for e in expressions))
    assert used, "the dashboard queries something"
    assert sorted(used - exported) == []


def run_healthcheck(port: int) -> int:
    """Exit status of the image's HEALTHCHECK command against 127.0.0.1:`port`."""
    env = dict(os.environ, NEXTWORD_PORT=str(port))
    command = [sys.executable, "deploy/healthcheck.py"]  # the Dockerfile's, with this python
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=30).returncode


def test_image_healthcheck_passes_on_a_live_api(two_worker_api: tuple[str, Path]) -> None:
    url, _ = two_worker_api
    assert run_healthcheck(int(url.rsplit(":", 1)[1])) == 0


def test_image_healthcheck_fails_when_nothing_answers() -> None:
    assert run_healthcheck(free_port()) == 1
