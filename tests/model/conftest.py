"""Fixtures of the model tests: the tiny real checkpoint loaded once, and some of its valid
lines as ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.checkpoint import Checkpoint, load_checkpoint
from model.evaluate.cli import split_ids


@pytest.fixture(scope="session")
def checkpoint(tiny_checkpoint: Path) -> Checkpoint:
    """The tiny checkpoint, loaded (tests must not change its weights)."""
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="session")
def lines(checkpoint: Checkpoint) -> list[list[int]]:
    """The first 12 lines of the tiny corpus's valid split, as ids."""
    return split_ids(checkpoint, None, "valid", None)[1][:12]
