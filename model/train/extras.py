"""Packages that only training needs (pyproject's `train` extra: the corpus, word2vec, plots),
and the error that says how to get them where they are missing, as in the API image."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingTrainingPackage(ImportError):
    """A package of the `train` extra is not installed; the message says how to add it."""


def missing_training_package(package: str, purpose: str) -> str:
    """The message for `package` (of the `train` extra) missing where `purpose` needs it."""
    return (
        f"{purpose} needs the {package} package, from nextword's `train` extra, which this "
        "environment lacks (the API image leaves it out): pip install -e '.[train]' "
        "(`make` does), or use the Docker image's train target (docker build --target train)"
    )


def import_training_package(name: str, purpose: str) -> ModuleType:
    """Import module `name` of a `train` extra package; raises MissingTrainingPackage, naming
    the package and `purpose`, when that package is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        package = name.partition(".")[0]
        if error.name != package:
            raise  # the package is there but something it needs is not: pip's error is apt
        raise MissingTrainingPackage(missing_training_package(package, purpose)) from None
