"""deploy/requirements.py: the lists the Dockerfile installs, read from pyproject.toml."""

from __future__ import annotations

from packaging.requirements import Requirement

from deploy.requirements import requirements
from tests.deploy.support import ROOT

PYPROJECT = ROOT / "pyproject.toml"
TRAINING_ONLY = {"gensim", "matplotlib", "snownlp", "numpy"}


def names(requirement_list: list[str]) -> set[str]:
    """Project names of requirement strings ("torch>=2.1" -> "torch")."""
    return {Requirement(r).name for r in requirement_list}


def test_the_api_image_gets_no_training_plotting_or_test_packages() -> None:
    runtime = names(requirements(PYPROJECT))
    assert {"torch", "fastapi", "uvicorn", "safetensors", "jieba"} <= runtime
    assert runtime.isdisjoint(TRAINING_ONLY | {"pytest", "ruff", "mypy"})


def test_the_train_extra_holds_what_only_training_imports() -> None:
    assert names(requirements(PYPROJECT, "train")) == TRAINING_ONLY
