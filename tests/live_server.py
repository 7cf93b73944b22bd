"""A real nextword server on a free loopback port, started and always stopped: the harness of
the service tests (tests/app, tests/deploy) and of the benches that drive a live server
(bench.serve, bench.load)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 120


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    """A server process started by live_server: its base URL, process and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def live_server(
    model_dir: Path, log_dir: Path, *, entry: str = "uvicorn", **env: str
) -> Iterator[LiveServer]:
    """A real server on a free loopback port, with NEXTWORD_<KEY> variables from env: entry
    "uvicorn" runs `uvicorn app.main:create_app --factory`, "app" runs `python -m app` (the
    graceful-shutdown entry point). Yields once /ready is 200, and always stops it (SIGTERM,
    then SIGKILL)."""
    port = free_port()
    variables = {
        **os.environ,
        "NEXTWORD_MODEL_DIR": str(model_dir),
        "NEXTWORD_HOST": "127.0.0.1",
        "NEXTWORD_PORT": str(port),
        **{f"NEXTWORD_{k.upper()}": v for k, v in env.items()},
    }
    variables.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one process: its own figures
    command = [sys.executable, "-m", "app"]
    if entry == "uvicorn":
        command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log = Path(log_dir) / f"uvicorn-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=variables,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
        yield LiveServer(url, process, log)
    finally:
        stop_server(process)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (uvicorn and any workers), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def uvicorn_server(model_dir: Path, log_dir: Path, **env: str) -> Iterator[str]:
    """The base URL of a live_server run by uvicorn."""
    with live_server(model_dir, log_dir, **env) as server:
        yield server.url


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll url/ready until 200; fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}/ready was not 200 within {START_TIMEOUT_SECONDS} s; see {log}")
