"""What a training run writes into its --output directory, all in one atomic swap:

model.safetensors, config.json, vocab.json   the checkpoint: the best-valid weights and the
                                             run record (corpus, settings, statistics)
resume.safetensors, resume.json              the snapshot: last weights, optimizer, RNG,
                                             Progress (model/train/resume.py)
metrics.jsonl, curves.png                    one row per validation, and their curves
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from model.checkpoint import (
    WEIGHTS,
    replace_file,
    write_checkpoint_files,
    write_directory_atomically,
)
from model.rnn import RNNLanguageModel
from model.train.budget import Progress, stop_reason
from model.train.config import TrainConfig
from model.train.curves import plot_curves
from model.train.data import Data
from model.train.resume import RESUME_STATE, RESUME_TENSORS, write_snapshot

METRICS = "metrics.jsonl"
CURVES = "curves.png"
CARRIED_STATE = "carried_state"  # the snapshot's copy of the columns' state (one process only)


def run_record(
    config: TrainConfig,
    data: Data,
    progress: Progress,
    coverage: float | None,
    test_ppl: float | None = None,
) -> dict:
    """config.json's run record: corpus, training settings and statistics; a model trained
    in the document context is recorded as read that way (config.json's inference.context),
    so evaluate's tuner and the service carry the state across lines for it, and a backward
    model as reading right to left (inference.direction)."""
    reading = {"context": "document"} if config.context == "document" else {}
    if config.direction != "forward":
        reading["direction"] = config.direction
    inference = {"inference": reading} if reading else {}
    return {
        **inference,
        "corpus": {
            "name": data.store.name,
            "source": config.corpus,
            "content_hash": data.store.content_hash,
            "train_tokens": data.ids["train"].num_tokens(),
        },
        "training": {
            "config": config.to_dict(),
            "epochs_done": progress.epoch,
            "steps": progress.step,
            "tokens_seen": progress.tokens_seen,
            "wall_seconds": round(progress.elapsed_seconds, 1),
            "best_valid_ppl": progress.best_valid_ppl,
            "test_ppl": test_ppl,
            "stopped_by": stop_reason(config, progress),
            "pretrained_coverage": coverage,
        },
    }


def write_run(
    output: Path,
    model: RNNLanguageModel,
    best: dict[str, torch.Tensor] | None,
    data: Data,
    record: dict,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    extra: dict[str, torch.Tensor],
    title: str,
) -> None:
    """Atomically replace `output` with the checkpoint (the `best` weights, or with None the
    ones already there, hard-linked), the snapshot of the model's live state (with the `extra`
    tensors), metrics.jsonl and, once there is a validation, curves.png titled `title`."""

    def fill(directory: Path) -> None:
        live = {k: v.clone() for k, v in model.state_dict().items()}
        if best is not None:
            model.load_state_dict(best)
        write_checkpoint_files(
            directory,
            model,
            data.vocab,
            data.spec,
            record,
            write_weights=best is not None,  # else the kept (hard-linked) best weights stay
        )
        model.load_state_dict(live)
        write_snapshot(directory, model, optimizer, progress.__dict__, extra)
        lines = "".join(json.dumps(row) + "\n" for row in progress.history)
        (directory / METRICS).unlink(missing_ok=True)
        (directory / METRICS).write_text(lines, encoding="utf-8")
        if progress.history:
            plot_curves(progress.history, replace_file(directory, CURVES), title)

    write_directory_atomically(output, fill, keep=() if best is not None else (WEIGHTS,))


def write_final_record(output: Path, model: RNNLanguageModel, data: Data, record: dict) -> None:
    """Atomically replace `output`'s config.json and vocabulary with `record` (the run's last,
    with its test perplexity), keeping every other file as it is: when training stops its weights,
    snapshot and metrics are already on disk, so the end of a run rewrites no tensor and needs no
    optimizer state in memory."""

    def fill(directory: Path) -> None:
        write_checkpoint_files(directory, model, data.vocab, data.spec, record, write_weights=False)

    kept = (WEIGHTS, RESUME_TENSORS, RESUME_STATE, METRICS, CURVES)
    write_directory_atomically(output, fill, keep=kept)
