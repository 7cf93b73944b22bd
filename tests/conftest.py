"""Shared fixtures: a small real corpus (the first lines of People's Daily) and a tiny real
checkpoint trained on it in a few seconds; no mocks."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from model.checkpoint import update_inference_config
from model.pointer_cache import CacheConfig
from model.train.config import TrainConfig
from model.train.corpora import CACHE_DIR_VARIABLE, PEOPLES_DAILY, resolve_source, text_lines
from model.train.trainer import train

TINY_LINES = 600


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tokenized-corpus cache in a temporary directory, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_DIR_VARIABLE, str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A UTF-8 text file with the first TINY_LINES raw lines of People's Daily."""
    lines = list(itertools.islice(text_lines(resolve_source(PEOPLES_DAILY)), TINY_LINES))
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_tiny_config(corpus: Path, output: Path, **overrides) -> TrainConfig:
    """A training config that finishes in seconds on the tiny corpus."""
    values = dict(
        corpus=str(corpus),
        output=str(output),
        embedding_size=32,
        hidden_size=32,
        num_layers=1,
        cutoffs=[200, 600],
        epochs=2,
        batch_size=64,
        step_tokens=512,
        bptt=20,
        progress=False,
        seed=7,
        threads=1,
        precision="fp32",
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def tiny_config(tiny_corpus_file: Path):
    """Factory: tiny_config(output, **overrides) -> TrainConfig on the tiny corpus."""
    return lambda output, **overrides: make_tiny_config(tiny_corpus_file, output, **overrides)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM checkpoint trained on the tiny corpus (a few seconds)."""
    output = tmp_path_factory.mktemp("checkpoint") / "tiny"
    train(make_tiny_config(tiny_corpus_file, output))
    return output


@pytest.fixture(scope="session")
def tuned_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny checkpoint whose config.json asks for document context and a cache
    pointer, as `python -m model.evaluate.tune_cache` would write it."""
    copy = tmp_path_factory.mktemp("tuned") / "tiny"
    shutil.copytree(tiny_checkpoint, copy)
    update_inference_config(
        copy, {"context": "document", "cache": CacheConfig(window=40, theta=0.3, lam=0.4).to_dict()}
    )
    return copy


@pytest.fixture(scope="session")
def backward_checkpoint(tiny_corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint's recipe read right to left (--direction backward)."""
    output = tmp_path_factory.mktemp("backward") / "tiny"
    train(make_tiny_config(tiny_corpus_file, output, direction="backward"))
    return output
