"""Validation during training: a split's perplexity read in the run's context, shared among the
training processes, and what a validation changes in the run (the best figure, the plateau
schedule, patience) with the row it adds to metrics.jsonl."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from model.rnn import RNNLanguageModel
from model.scoring import lines_log_likelihood, log_likelihood, perplexity, read_document
from model.train.budget import Progress
from model.train.config import TrainConfig
from model.train.distributed import World

log = logging.getLogger("nextword.train")


def split_perplexity(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    context: str,
    world: World,
) -> float:
    """Perplexity of a split (docs/data.md's definition, the same targets in either context)
    read in `context`, each rank reading a share and the log-likelihoods pooled over ranks."""
    if context == "document":  # each rank one contiguous share of the stream
        share = -(-len(lines) // world.size)
        mine = lines[world.rank * share : (world.rank + 1) * share]
        pooled = log_likelihood([read_document(model, mine, eos_id, keep_features=False).log_probs])
    else:  # each rank a share
        pooled = lines_log_likelihood(model, lines[world.rank :: world.size], eos_id)
    total, count = world.total(*pooled)
    return perplexity(-total / max(count, 1))


def record_validation(
    progress: Progress,
    config: TrainConfig,
    train_loss: float | None,
    valid_ppl: float,
    average_ppl: float | None,
    epoch_end: bool,
) -> bool:
    """Fold a validation into the run's progress and history; returns whether it is the best
    so far (of the live weights or of their average). At an epoch's end also anneal lr (plateau
    schedule) and count epochs without gain, comparing with earlier epoch ends only, as the
    classic recipe does; validations inside an epoch only record and keep the best."""
    p = progress
    ppl = min(valid_ppl, average_ppl or math.inf)
    improved = ppl < p.best_valid_ppl
    if improved:
        p.best_valid_ppl = ppl
    if epoch_end and ppl < p.best_epoch_end_ppl:
        p.best_epoch_end_ppl, p.epochs_without_gain = ppl, 0
    elif epoch_end:
        p.epochs_without_gain += 1
        if config.schedule == "plateau":
            p.lr *= config.anneal_factor
    p.history.append(
        {
            "epoch": p.epoch,
            "step": p.step,
            "tokens_seen": p.tokens_seen,
            "wall_seconds": round(p.elapsed_seconds, 2),
            "train_loss": None if train_loss is None else round(train_loss, 4),
            "train_ppl": None if train_loss is None else round(perplexity(min(train_loss, 50)), 2),
            "valid_ppl": round(valid_ppl, 2),
            "average_valid_ppl": round(average_ppl, 2) if average_ppl else None,
            "lr": p.lr,
            "tokens_per_second": round(p.tokens_seen / max(p.elapsed_seconds, 1e-9)),
        }
    )
    averaged = f", averaged weights {average_ppl:.2f}" if average_ppl else ""
    best = " (best)" if improved else ""
    log.info("epoch %d: valid ppl %.2f%s%s", p.epoch, valid_ppl, averaged, best)
    return improved
