"""A run's budget and where it stands: the Progress a snapshot saves, how much of the budget is
spent (which the cosine schedule follows), when and why the run stops, and the plan announced
before training (how many tokens, and about how long on this machine).

The budget is counted in tokens, steps or epochs, whichever bounded one runs out first;
--max-minutes is a cap on top, and shapes the schedule only when it is the sole budget besides
epochs, so a run budgeted in tokens trains the same model on a fast machine and a slow one.
"""

from __future__ import annotations

import logging
import math
import time
from copy import deepcopy
from dataclasses import dataclass, field

import torch

from model.batching import make_batches
from model.hardware import resolve_precision
from model.rnn import RNNLanguageModel
from model.train.build import build_optimizer
from model.train.config import TrainConfig
from model.train.data import Data, describe_vocabulary
from model.train.distributed import LossHead
from model.train.word2vec import estimate_vector_seconds

log = logging.getLogger("nextword.train")


@dataclass
class Progress:
    """Where a run stands; saved in every snapshot so --resume continues exactly."""

    epoch: int = 0
    batch: int = 0  # next batch of the epoch
    step: int = 0
    tokens_seen: int = 0
    elapsed_seconds: float = 0.0  # training (and word2vec) only: validation and writes stop it
    lr: float = 0.0
    best_valid_ppl: float = math.inf
    best_epoch_end_ppl: float = math.inf  # what the plateau schedule and patience compare with
    epochs_without_gain: int = 0
    averaged_steps: int = 0
    history: list[dict] = field(default_factory=list)


def budget_fraction(config: TrainConfig, progress: Progress, epoch_fraction: float) -> float:
    """How much of the run's budget is spent, 0..1: the largest of the token, step, epoch
    (`epoch_fraction` of the current one done) and time fractions that are bounded. The time
    cap counts only when it is the sole budget besides epochs."""
    c, p = config, progress
    fractions = [(p.epoch + epoch_fraction) / c.epochs]
    if c.max_tokens:
        fractions.append(p.tokens_seen / c.max_tokens)
    if c.max_steps:
        fractions.append(p.step / c.max_steps)
    if c.max_minutes and not (c.max_tokens or c.max_steps):
        fractions.append(p.elapsed_seconds / (c.max_minutes * 60))
    return min(1.0, max(fractions))


def scheduled_lr(config: TrainConfig, progress: Progress, epoch_fraction: float) -> float:
    """The learning rate of the next step. Cosine schedule: linear warm-up, then half a cosine
    from lr down to zero over the budget; plateau: the run's current lr (annealed by
    validation)."""
    c, p = config, progress
    if c.schedule != "cosine":
        return p.lr
    warm = min(1.0, (p.step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
    spent = budget_fraction(c, p, epoch_fraction)
    return c.lr * warm * 0.5 * (1.0 + math.cos(math.pi * spent))


def count_budget_spent(config: TrainConfig, progress: Progress) -> bool:
    """True once the token or step budget is spent (checked after every step)."""
    c, p = config, progress
    if c.max_steps is not None and p.step >= c.max_steps:
        return True
    return bool(c.max_tokens) and p.tokens_seen >= (c.max_tokens or 0)


def time_cap_reached(config: TrainConfig, progress: Progress) -> bool:
    """True once --max-minutes of training (word2vec included) have passed."""
    minutes = config.max_minutes
    return bool(minutes) and progress.elapsed_seconds >= (minutes or 0) * 60


def out_of_budget(config: TrainConfig, progress: Progress) -> bool:
    """True once the token, step or time budget is spent."""
    return count_budget_spent(config, progress) or time_cap_reached(config, progress)


def stop_reason(config: TrainConfig, progress: Progress) -> str:
    """Which limit ended the run: 'tokens', 'steps', 'max_minutes', 'patience' or 'epochs'
    (config.json's training.stopped_by)."""
    c, p = config, progress
    if c.max_tokens and p.tokens_seen >= c.max_tokens:
        return "tokens"
    if c.max_steps is not None and p.step >= c.max_steps:
        return "steps"
    if time_cap_reached(c, p):
        return "max_minutes"
    return "patience" if p.epochs_without_gain >= c.patience else "epochs"


def planned_tokens(config: TrainConfig, train_tokens: int) -> int:
    """Tokens the run reads unless patience stops it first (train_tokens: a pass over the
    train split): the smallest bounded budget (a step budget counted at --step-tokens a step);
    the progress bar's total."""
    c = config
    bounds = [c.epochs * train_tokens]
    if c.max_tokens:
        bounds.append(c.max_tokens)
    if c.max_steps:
        bounds.append(c.max_steps * c.step_tokens)
    return min(bounds)


def measure_tokens_per_second(
    config: TrainConfig, model: RNNLanguageModel, data: Data, device: torch.device
) -> float:
    """Training tokens/s of this model and optimizer here, timed over a few windows of a
    mid-length training batch on a copy (after one warm-up window). The run's own weights,
    optimizer and random state are untouched, so a run that announces its plan trains exactly
    as one that does not."""
    batches = make_batches(
        data.ids["train"],
        data.vocab.eos_id,
        config.batch_size,
        None,
        config.step_tokens,
        config.bptt,
    )
    middle = batches[len(batches) // 2 :][:8]
    windows = [window for batch in middle for window in batch.windows(config.bptt)][:5]
    copy = deepcopy(model).to(device).train()
    head, optimizer = LossHead(copy), build_optimizer(config, copy)
    dtype = resolve_precision(config.precision, device)
    seconds, tokens = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        for index, (inputs, targets) in enumerate(windows):
            started = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                log_probs, _ = head(inputs.to(device), targets.to(device), None)
            loss = -log_probs.float().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if index:  # the first window warms up
                seconds += time.perf_counter() - started
                tokens += log_probs.numel()
    return tokens / max(seconds, 1e-9)


def announce_plan(
    config: TrainConfig, model: RNNLanguageModel, data: Data, device: torch.device
) -> None:
    """Log, before training, how many tokens the run reads and how long that should take on
    this machine, from a few steps timed on a copy of the model, and before that how long
    the word2vec vectors should take, from a sample timed."""
    c = config
    speed = measure_tokens_per_second(c, model, data, device)
    tokens = planned_tokens(c, data.ids["train"].num_tokens())
    training_seconds = tokens / speed
    vector_seconds, vectors = 0.0, ""
    if c.word2vec_init:
        vector_seconds = estimate_vector_seconds(data, c)
        vectors = (
            f"word2vec vectors ({c.word2vec_epochs} passes, {vector_seconds / 60:.1f} min), then "
        )
    words = describe_vocabulary(data.store, c.max_vocab, data.vocab)
    cap = f"capped at {words['cap']:,}" if words["cap"] else "no cap"
    log.info(
        "plan: corpus %s, %.1f MB, %s train tokens; vocabulary %s (%s), covering %.2f%% of "
        "the train tokens",
        data.store.name,
        data.store.meta["bytes"] / 1e6,
        f"{data.ids['train'].num_tokens():,}",
        f"{len(data.vocab):,}",
        cap,
        100 * words["coverage"],
    )
    log.info(
        "plan: %straining on %s tokens (%.1f min): about %.1f min on this machine in all (%s "
        "training tokens/s timed on a copy of the model)%s",
        vectors,
        f"{tokens:,}",
        training_seconds / 60,
        (training_seconds + vector_seconds) / 60,
        f"{speed:,.0f}",
        f"; capped at {c.max_minutes:g} min" if c.max_minutes else "",
    )
