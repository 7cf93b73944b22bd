"""Fixtures for the deployment tests: the compose file as docker-compose resolves it, and a
live API with two workers started as the image starts it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.live import serve
from tests.deploy.support import ROOT
from tests.system_tools import require_tool

# Variables docker-compose.yml interpolates; unset here so that its defaults are what is checked.
COMPOSE_VARIABLES = (
    "NEXTWORD_MODEL_NAME",
    "NEXTWORD_WORKERS",
    "NEXTWORD_API_PORT",
    "LB_STATS_PORT",
    "PROMETHEUS_PORT",
    "GRAFANA_PORT",
    "BASE_IMAGE",
    "TORCH_INDEX_URL",
)


@pytest.fixture(scope="session")
def compose_config() -> dict:
    """`docker-compose config` of docker-compose.yml, parsed: validated against the compose
    schema, anchors merged, variables at their defaults, bind paths absolute."""
    tool = require_tool("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
    result = subprocess.run(
        [tool, "--file", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="session")
def two_worker_api(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """(base URL, multiprocess directory) of deploy/serve.sh running 2 workers on loopback."""
    workdir = tmp_path_factory.mktemp("api")
    with serve(tiny_checkpoint, workdir, workers=2) as url:
        yield url, workdir / "metrics"
