"""The model cards /info shows: for each served model, what was trained on what, how well it
did, and how it is served. Built from each checkpoint's config.json; no file paths leave the
server."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from app.engine import Engine
from app.schemas import InfoResponse, ModelInfo
from app.settings import Settings

_TRAINING_FIGURES = (
    "epochs_done",
    "steps",
    "tokens_seen",
    "wall_seconds",
    "best_valid_ppl",
    "test_ppl",
)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _reading(engine: Engine) -> dict[str, str | int | float | bool | None]:
    """How the service reads a text of several lines (as one document, or each line from the
    start state), and the cache pointer's settings (does it start empty at each line or once
    per text) with the most memory one sequence's cache may take."""
    runner = engine.runner
    cache = runner.cache_config
    return {
        "direction": engine.encoder.direction,
        "context": runner.context,
        "cache": cache is not None,
        "cache_scope": runner.cache_scope if cache else None,
        "cache_window": cache.window if cache else None,
        "cache_theta": cache.theta if cache else None,
        "cache_lambda": cache.lam if cache else None,
        "cache_half_fill": cache.half_fill if cache else None,
        "cache_min_fill": cache.min_fill if cache else None,
        "cache_bytes_per_sequence": runner.cache_bytes_per_row,
    }


def model_card(engine: Engine) -> ModelInfo:
    """The card of the model a running engine serves."""
    settings = engine.settings
    checkpoint = engine.checkpoint
    metadata = checkpoint.metadata
    spec = checkpoint.tokenizer_spec
    corpus = metadata.get("corpus", {})
    training = metadata.get("training", {})
    recorded = {f"checkpoint_{k}": str(v) for k, v in metadata.get("versions", {}).items()}
    return ModelInfo(
        model=metadata["model"],
        tokenizer={
            "name": spec.name, "nfkc": spec.nfkc, "lowercase": spec.lowercase, "hmm": spec.hmm,
            "user_dict": spec.user_dict is not None,
        },
        corpus={k: corpus.get(k) for k in ("name", "content_hash", "train_tokens")},
        training={k: training.get(k) for k in _TRAINING_FIGURES},
        checkpoint={"format": metadata["format"], "weights_sha256": checkpoint.weights_sha256},
        versions={
            "nextword": _package_version("nextword"),
            "python": platform.python_version(),
            "torch": _package_version("torch"),
            "fastapi": _package_version("fastapi"),
            **recorded,
        },
        serving={
            "device": settings.device, "quantize": settings.quantize, "output": settings.output,
            "threads": settings.threads,
            "prefill_chunk": settings.prefill_chunk, **_reading(engine),
        },
    )  # fmt: skip


def service_card(
    default: Engine, engines: Mapping[str, Engine], settings: Settings
) -> InfoResponse:
    """The /info answer: the default model's card at the top level (what a one-model server
    has always answered), the configured limits, and every running model's card by name."""
    cards = {name: model_card(engine) for name, engine in engines.items()}
    return InfoResponse(
        **dict(cards[default.name]),
        limits=settings.limits(),
        default_model=default.name,
        models=cards,
    )
