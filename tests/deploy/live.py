"""A real API started on loopback exactly as the image starts it (deploy/serve.sh), for tests
that need a live /metrics; always stopped, with its workers, when the block ends."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.deploy.support import ROOT
from tests.live_server import free_port, stop_server, wait_until_ready


@contextmanager
def serve(model_dir: Path, workdir: Path, workers: int) -> Iterator[str]:
    """Run deploy/serve.sh with `workers` uvicorn workers and this interpreter as `python`;
    yields the base URL once /ready answers 200. With several workers the multiprocess
    directory is `workdir`/metrics. Server output goes to `workdir`/server.log."""
    port = free_port()
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        NEXTWORD_MODEL_DIR=str(model_dir),
        NEXTWORD_HOST="127.0.0.1",
        NEXTWORD_PORT=str(port),
        NEXTWORD_WORKERS=str(workers),
        NEXTWORD_THREADS="1",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),
    )
    if workers == 1:
        del env["PROMETHEUS_MULTIPROC_DIR"]
    log = workdir / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(ROOT / "deploy/serve.sh")],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop_server reaches the workers
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
        yield url
    finally:
        stop_server(process)


def exercise_every_route(url: str) -> None:
    """One call to each model route and one refused request, so that every labelled metric
    has a sample to export."""
    calls = [
        ("/predict-next", {"text": "我爱自然语言", "top_k": 3}, 200),
        ("/generate", {"prompt": "我", "max_new_tokens": 3, "seed": 1}, 200),
        ("/perplexity", {"text": "我爱北京"}, 200),
        ("/generate", {"prompt": "我", "max_new_tokens": 0}, 422),
    ]
    for route, body, status in calls:
        assert httpx.post(url + route, json=body, timeout=30).status_code == status, route
