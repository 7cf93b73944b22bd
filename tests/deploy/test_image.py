"""The image on a real Docker engine: both targets built, the API serving a checkpoint trained on
this host (mounted read-only, so it must be readable by the image's user) over a port published
on loopback, healthy only when ready, not root, stopped cleanly; a damaged checkpoint gives an
unhealthy container whose log says why; and `docker-compose up` trains, then serves.

Needs a Docker engine (skips where none answers, fails under CI=true). The first run builds the
images (minutes); reruns reuse Docker's layer cache, kept as the images nextword-test:api and
nextword-test:train. Every container, network and volume made here is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.containers import (
    API_IMAGE,
    LABEL,
    build_image,
    container_log,
    docker,
    published_url,
    require_docker_engine,
    require_image,
    wait_for_health,
    wait_for_log,
    wait_until_ready,
)
from tests.deploy.support import ROOT
from tests.live_server import free_port
from tests.system_tools import require_tool

TRAIN_IMAGE = "nextword-test:train"
STOP_GRACE_SECONDS = 10
# The image's HEALTHCHECK command with a faster schedule, so that tests wait seconds, not minutes.
FAST_HEALTH = ["--health-interval", "1s", "--health-start-period", "1s", "--health-retries", "3"]
# The tiny_config fixture's sizes (tests/conftest.py) as model.train flags, after the default
# preset: word2vec included, so the train image's gensim is used too.
TINY_TRAINING = [
    "--embedding-size", "32", "--hidden-size", "32", "--num-layers", "1", "--cutoffs", "200",
    "600", "--epochs", "1", "--batch-size", "64", "--step-tokens", "512", "--bptt", "20",
    "--threads", "1", "--precision", "fp32", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def images() -> None:
    """Both targets of the Dockerfile, built (or found in the layer cache)."""
    require_docker_engine()
    build_image("runtime", API_IMAGE)
    build_image("train", TRAIN_IMAGE)


def start_api(name: str, checkpoint: Path) -> str:
    """Start the API image as container `name` serving `checkpoint` (mounted read-only), its
    port published on 127.0.0.1; returns the base URL."""
    docker(
        "run", "--detach", "--name", name, "--label", LABEL, *FAST_HEALTH,
        "--publish", "127.0.0.1::8000", "--env", "NEXTWORD_THREADS=1",
        "--volume", f"{checkpoint}:/models/default:ro", API_IMAGE,
    )  # fmt: skip
    return published_url(name)


@pytest.fixture(scope="module")
def api(images: None, tiny_checkpoint: Path) -> Iterator[tuple[str, str]]:
    """(container name, base URL) of the API serving the tiny checkpoint trained on the host."""
    name = f"nextword-test-api-{os.getpid()}"
    try:
        url = start_api(name, tiny_checkpoint)
        wait_until_ready(url)
        yield name, url
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def test_api_container_serves_predictions_generation_and_metrics(api: tuple[str, str]) -> None:
    _, url = api
    assert httpx.get(f"{url}/ready", timeout=10).json()["ready"] is True
    predicted = httpx.post(f"{url}/predict-next", json={"text": "我爱", "top_k": 3}, timeout=30)
    assert predicted.status_code == 200 and len(predicted.json()["candidates"]) == 3
    body = {"prompt": "我", "max_new_tokens": 4, "seed": 1}
    generated = httpx.post(f"{url}/generate", json=body, timeout=30)
    assert generated.status_code == 200 and generated.json()["finish_reason"]
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    sample = 'nextword_requests_total{model="nextword",route="/predict-next",status="200"} 1.0'
    assert sample in metrics


def test_api_container_becomes_healthy_once_ready(api: tuple[str, str]) -> None:
    name, _ = api
    wait_for_health(name, "healthy")


def test_api_container_log_has_no_warnings_or_errors(api: tuple[str, str]) -> None:
    name, _ = api
    log = container_log(name)
    assert "model 'nextword' loaded from /models/default" in log
    assert not [line for line in log.splitlines() if "Warning" in line or "ERROR" in line], log


def test_server_process_runs_as_a_non_root_user(api: tuple[str, str]) -> None:
    name, _ = api
    status = docker("exec", name, "cat", "/proc/1/status")
    (uids,) = [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")]
    assert uids and "0" not in uids, status  # real, effective, saved and filesystem uid


def test_api_image_leaves_training_out_and_says_how_to_get_it(images: None) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", "--label", LABEL, API_IMAGE, "python", "-m", "model.train"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "MissingTrainingPackage" in result.stderr and "--target train" in result.stderr


def test_docker_stop_exits_0_within_the_grace_period(api: tuple[str, str]) -> None:
    name, _ = api
    started = time.monotonic()
    docker("stop", "--time", str(STOP_GRACE_SECONDS), name, timeout=STOP_GRACE_SECONDS + 30)
    elapsed = time.monotonic() - started
    assert docker("inspect", "--format", "{{.State.ExitCode}}", name) == "0"
    assert elapsed < STOP_GRACE_SECONDS, "stopped by SIGTERM, not killed after the grace period"


def test_damaged_checkpoint_gives_an_unhealthy_container_whose_log_says_why(
    images: None, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_checkpoint, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    name = f"nextword-test-damaged-{os.getpid()}"
    try:
        url = start_api(name, damaged)
        wait_for_log(name, "/models/default/model.safetensors is damaged or truncated")
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200, "alive"
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 503, "but not ready"
        wait_for_health(name, "unhealthy")
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


@pytest.fixture
def compose_project(
    images: None, compose_config: dict, tiny_corpus_file: Path, tmp_path: Path
) -> Iterator[list[str]]:
    """The docker-compose command line of a throw-away project: the test images, a trainer with
    the tiny corpus and budget, the balancer's image; `down -v` at the end."""
    tool = require_tool("docker-compose", "docker-compose")
    require_image(compose_config["services"]["lb"]["image"])
    trainer_command = ["python", "-m", "deploy.train_if_missing", "--corpus", "/data/tiny.txt"]
    services = {  # JSON is YAML: compose merges this over docker-compose.yml
        "trainer": {
            "image": TRAIN_IMAGE,
            "command": trainer_command + TINY_TRAINING,
            "volumes": [f"{tiny_corpus_file}:/data/tiny.txt:ro"],
        },
        "api": {"image": API_IMAGE, "environment": {"NEXTWORD_THREADS": "1"}},
    }
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(json.dumps({"services": services}), encoding="utf-8")
    command = [
        tool, "--project-name", f"nextword-test-{os.getpid()}",
        "--file", str(ROOT / "docker-compose.yml"), "--file", str(override),
    ]  # fmt: skip
    try:
        yield command
    finally:
        subprocess.run([*command, "down", "--volumes", "--timeout", "10"], timeout=120, check=False)


def test_compose_trains_then_serves(compose_project: list[str]) -> None:
    port = free_port()
    env = dict(os.environ, NEXTWORD_API_PORT=f"127.0.0.1:{port}", LB_STATS_PORT="127.0.0.1:")
    up = subprocess.run(
        [*compose_project, "up", "--detach", "--no-build", "lb"],  # lb: api, which needs trainer
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    logs = subprocess.run(
        [*compose_project, "logs", "--no-color", "trainer"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    assert up.returncode == 0, up.stderr + logs
    assert "training: python -m model.train --preset default" in logs
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(url)
    body = {"prompt": "我", "max_new_tokens": 3}
    assert httpx.post(f"{url}/generate", json=body, timeout=30).status_code == 200
