"""Fixtures for the service: settings on the tiny checkpoint, an in-process client (lifespan
run by `with TestClient`), and real uvicorn servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.checkpoint import Checkpoint, load_checkpoint
from model.quantize import quantize_int8, served_weights
from tests.live_server import uvicorn_server

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
def checkpoint(tiny_checkpoint: Path) -> Checkpoint:
    """The tiny checkpoint loaded on its own with the weights the service serves by default on
    this CPU (int8 where its int8 matmul is fast, else float), for the figures the service
    must agree with."""
    loaded = load_checkpoint(tiny_checkpoint)
    if served_weights("auto", "cpu") == "int8":
        loaded.model = quantize_int8(loaded.model)
    return loaded


@pytest.fixture(scope="session")
def client(make_settings: MakeSettings) -> Iterator[TestClient]:
    """One in-process app on the tiny checkpoint with the default limits, shared by tests
    that do not change its settings."""
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_url(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server with the default limits."""
    with uvicorn_server(tiny_checkpoint, tmp_path_factory.mktemp("live"), threads="1") as url:
        yield url


@pytest.fixture(scope="module")
def narrow_url(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server with one batch slot, one waiting place and very long generations
    allowed: for overload and disconnection tests."""
    with uvicorn_server(
        tiny_checkpoint, tmp_path_factory.mktemp("narrow"),
        threads="1", max_batch_size="1", max_waiting="1", max_new_tokens="200000",
    ) as url:  # fmt: skip
        yield url
