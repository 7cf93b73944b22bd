"""Fixtures for the service: settings on the tiny checkpoint, an in-process client (lifespan
run by `with TestClient`), and real uvicorn servers on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60

MakeSettings = Callable[..., Settings]


@pytest.fixture(scope="session")
def make_settings(tiny_checkpoint: Path) -> MakeSettings:
    """Factory: Settings on the tiny checkpoint, one torch thread, with overrides."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"model_dir": tiny_checkpoint, "threads": 1}
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def client(make_settings: MakeSettings) -> Iterator[TestClient]:
    """One in-process app on the tiny checkpoint with the default limits, shared by tests
    that do not change its settings."""
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def uvicorn_server(model_dir: Path, log_dir: Path, **env: str) -> Iterator[str]:
    """A real `uvicorn app.main:create_app --factory` on a free loopback port, with
    NEXTWORD_* variables from env; yields its base URL once /ready is 200, and always stops it
    (SIGTERM, then SIGKILL)."""
    port = free_port()
    variables = {
        **os.environ,
        "NEXTWORD_MODEL_DIR": str(model_dir),
        "NEXTWORD_THREADS": "1",
        **{f"NEXTWORD_{k.upper()}": v for k, v in env.items()},
    }
    variables.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log = log_dir / f"uvicorn-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=variables, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(process, url, log)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/ready was not 200 within {START_TIMEOUT_SECONDS} s")


@pytest.fixture(scope="module")
def live_url(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server with the default limits."""
    with uvicorn_server(tiny_checkpoint, tmp_path_factory.mktemp("live")) as url:
        yield url


@pytest.fixture(scope="module")
def narrow_url(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server with one batch slot, one waiting place and very long generations
    allowed: for overload and disconnection tests."""
    with uvicorn_server(
        tiny_checkpoint, tmp_path_factory.mktemp("narrow"),
        max_batch_size="1", max_waiting="1", max_new_tokens="200000",
    ) as url:  # fmt: skip
        yield url
