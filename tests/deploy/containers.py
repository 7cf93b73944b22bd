"""Helpers for the tests that build and run the image on a real Docker engine: the engine (skip
where none answers, fail under CI=true), builds with this machine's build arguments, the pulled
images compose runs beside it, containers and their health, URLs of published ports.

Build arguments come from the environment, under the names docker-compose.yml reads: BASE_IMAGE
(default python:3.11-slim) and TORCH_INDEX_URL (unset: the Dockerfile's default, PyTorch's CPU
index; set but empty: pip's own configuration). .ci/run sets both where
../shared/docker/local-base.sh builds a stand-in base image because no registry answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from tests.deploy.support import ROOT
from tests.system_tools import require_tool

LABEL = "org.nextword.test=1"  # on every image and container these tests make
API_IMAGE = "nextword-test:api"  # the Dockerfile's runtime target, as these tests build it
BUILD_TIMEOUT_SECONDS = 1800  # a cold build on 2 cores: torch, the dependencies, the extra
# Where this project's CI machines provide one: the script that builds a stand-in for a pulled
# image (haproxy:*, prom/prometheus:*) when no container registry answers.
LOCAL_BASE = ROOT.parent / "shared" / "docker" / "local-base.sh"
STAND_IN_TIMEOUT_SECONDS = 600
COMMAND_TIMEOUT_SECONDS = 120


def require_docker_engine() -> str:
    """The docker client's path once `docker info` answers; skips where no engine does (fails
    under CI=true, where .ci/run starts one)."""
    docker = require_tool("docker", "docker.io")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        reason = f"no Docker engine answers (`docker info`: {info.stderr.strip()[-300:]})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip")
        pytest.skip(reason)
    return docker


def docker(*arguments: str, timeout: float = COMMAND_TIMEOUT_SECONDS, check: bool = True) -> str:
    """Run `docker arguments...`; its stdout, stripped. With check, a non-zero exit fails the
    test with docker's stderr."""
    result = subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(arguments)} exited {result.returncode}: {result.stderr}")
    return result.stdout.strip()


def build_arguments() -> list[str]:
    """`--build-arg` flags for BASE_IMAGE and TORCH_INDEX_URL from the environment."""
    flags = ["--build-arg", f"BASE_IMAGE={os.environ.get('BASE_IMAGE') or 'python:3.11-slim'}"]
    if "TORCH_INDEX_URL" in os.environ:
        flags += ["--build-arg", f"TORCH_INDEX_URL={os.environ['TORCH_INDEX_URL']}"]
    return flags


def build_image(target: str, tag: str) -> None:
    """`docker build --target target -t tag` of the repository, with the host's network (so that
    pip reaches the package index as the host does) and the test label; the tag's previous
    version, now dangling, is removed, so reruns keep one cached copy."""
    docker(
        "build", "--network", "host", "--target", target, "--tag", tag, "--label", LABEL,
        *build_arguments(), str(ROOT), timeout=BUILD_TIMEOUT_SECONDS,
    )  # fmt: skip
    docker("image", "prune", "--force", "--filter", f"label={LABEL}")


def require_image(image: str) -> None:
    """Make sure a pulled image (compose's haproxy, prometheus) is on the engine: already
    there, built as a stand-in by LOCAL_BASE where that script exists (it pulls first), else
    pulled. Fails with the reason when none of these gives it."""
    present = subprocess.run(
        ["docker", "image", "inspect", image],
        capture_output=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    if present.returncode == 0:
        return
    if LOCAL_BASE.is_file():
        command = ["bash", str(LOCAL_BASE), image]
    else:
        command = ["docker", "pull", "--quiet", image]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=STAND_IN_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"no image {image}: {' '.join(command)} said {result.stderr[-500:]}")


def health(container: str) -> str:
    """The container's health status: starting, healthy or unhealthy (or its state when it has
    stopped)."""
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container))
    return state["Health"]["Status"] if state["Running"] else state["Status"]


def wait_for_health(container: str, wanted: str, timeout_seconds: float = 90) -> None:
    """Poll the container's health until it is `wanted`; fail with its log otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while (status := health(container)) != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    if status != wanted:
        logs = docker("logs", "--tail", "40", container, check=False)
        pytest.fail(f"{container} is {status}, not {wanted}, after {timeout_seconds} s:\n{logs}")


def published_url(container: str, port: int = 8000) -> str:
    """http://127.0.0.1:PORT where the container's `port` is published on loopback."""
    address = docker("port", container, f"{port}/tcp").splitlines()[0]
    return f"http://{address}"


def wait_until_ready(url: str, timeout_seconds: float = 90) -> None:
    """Poll url/ready until it answers 200 (a refused or reset connection counts as not yet)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url}/ready did not answer 200 within {timeout_seconds} s")


def container_log(container: str) -> str:
    """The container's output so far, stdout and stderr together."""
    result = subprocess.run(
        ["docker", "logs", container],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=True,
    )
    return result.stdout + result.stderr


def wait_for_log(container: str, text: str, timeout_seconds: float = 90) -> None:
    """Poll the container's output until it contains `text`; fail with the output otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while text not in (log := container_log(container)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if text not in log:
        pytest.fail(f"{container} did not log {text!r} within {timeout_seconds} s:\n{log}")
