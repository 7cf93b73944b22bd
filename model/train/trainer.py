"""Train a recurrent language model: `python -m model.train --help`.

Lines are read in length-grouped batches with truncated BPTT, or with --context document as
one stream in contiguous columns whose state is carried from batch to batch (see
model/batching.py); valid perplexity after every epoch; the best-valid weights become the
checkpoint; a resumable snapshot (last weights, optimizer, RNG, position) is written beside it
every few minutes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from copy import deepcopy
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from tqdm import tqdm

from model.batching import LineBatch, make_batches, stream_batches
from model.checkpoint import (
    WEIGHTS,
    load_checkpoint,
    recover_interrupted_swap,
    replace_file,
    write_checkpoint_files,
    write_directory_atomically,
)
from model.hardware import resolve_device, resolve_precision
from model.rnn import ModelConfig, RNNLanguageModel
from model.scoring import read_document, score_lines
from model.train.averaging import WeightAverage
from model.train.config import TrainConfig, parse_config
from model.train.curves import plot_curves
from model.train.data import Data, prepare_data
from model.train.distributed import LossHead, init_world, wrap_for_training
from model.train.resume import RESUME_STATE, RESUME_TENSORS, read_snapshot, write_snapshot
from model.train.vector_files import load_pretrained
from model.train.word2vec import initialise_embeddings
from model.vocab import Vocab

METRICS = "metrics.jsonl"
STREAM_BATCH_WINDOWS = 10  # --context document: windows per batch (a snapshot's granularity)
CARRIED_STATE = "carried_state"  # the snapshot's copy of the columns' state (one process only)
CURVES = "curves.png"
log = logging.getLogger("nextword.train")


def build_model(config: TrainConfig, vocab: Vocab) -> tuple[RNNLanguageModel, float | None]:
    """The network a config describes, with pretrained embeddings loaded (and their coverage)."""
    shared = {f.name for f in fields(ModelConfig)} - {"vocab_size"}  # same names, one copy
    settings = {name: getattr(config, name) for name in shared}
    settings["cutoffs"] = list(config.cutoffs)
    model = RNNLanguageModel(ModelConfig(vocab_size=len(vocab), **settings))
    coverage = None
    if config.pretrained_embeddings and config.word2vec_init:
        raise ValueError(
            "--pretrained-embeddings and --word2vec-init both set the embeddings: keep one "
            "(--no-word2vec-init turns off the default preset's)"
        )
    if config.pretrained_embeddings or config.word2vec_init:
        if not isinstance(model.embedding, torch.nn.Embedding):
            raise ValueError(
                "pretrained or word2vec embeddings need a plain embedding table: drop "
                "--tie-weights, use --output-layer full with it, or add --no-word2vec-init"
            )
        model.embedding.weight.requires_grad_(not config.freeze_embeddings)
    if config.pretrained_embeddings:
        with torch.no_grad():
            coverage = load_pretrained(config.pretrained_embeddings, vocab, model.embedding.weight)
    if config.init_from:
        start_from_checkpoint(model, vocab, config)
    return model, coverage


def start_from_checkpoint(model: RNNLanguageModel, vocab: Vocab, config: TrainConfig) -> None:
    """Copy a finished checkpoint's weights into the fresh model; its vocabulary and network
    must be the ones this run builds, since every weight row belongs to a word and a shape."""
    if config.word2vec_init or config.pretrained_embeddings:
        raise ValueError(
            "--init-from starts from a checkpoint's weights, embeddings included: drop "
            "--pretrained-embeddings, and add --no-word2vec-init to a preset that has it"
        )
    start = load_checkpoint(config.init_from)  # type: ignore[arg-type]
    if start.vocab.itos != vocab.itos:
        raise ValueError(
            f"--init-from {config.init_from}: its vocabulary ({len(start.vocab)} words) is not "
            f"this run's ({len(vocab)}); use the corpus, --min-freq and tokenizer it had"
        )
    weights, shapes = start.model.state_dict(), {k: v.shape for k, v in model.state_dict().items()}
    if {k: v.shape for k, v in weights.items()} != shapes:
        raise ValueError(
            f"--init-from {config.init_from}: its network ({start.model.config.cell}, "
            f"{start.model.config.num_layers}×{start.model.config.hidden_size}) is not this "
            "run's; use the preset or the network flags it was trained with"
        )
    model.load_state_dict(weights)


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (the classic LM recipe, annealed on plateaus) or AdamW."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        # fused: one kernel over all tensors, ~15% faster steps on CPU than the loop
        return torch.optim.AdamW(
            parameters, lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose sgd or adamw")


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


class Trainer:
    """One training run: owns the model, optimizer, progress and the output directory."""

    def __init__(self, config: TrainConfig, data: Data):
        self.config = config
        self.data = data
        self.output = Path(config.output)
        self.world, self.device = init_world(resolve_device(config.device))
        self.dtype = resolve_precision(config.precision, self.device)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model, self.coverage = build_model(config, data.vocab)
        self.progress = Progress(lr=config.lr)
        if self.world.is_main and config.progress and not config.resume:
            self.announce_plan()
        vector_seconds = 0.0
        if config.word2vec_init and not config.resume:  # a resumed run has its weights
            started = time.monotonic()
            weight = self.model.embedding.weight
            with torch.no_grad():
                self.coverage = initialise_embeddings(
                    data, weight, config.seed, config.word2vec_epochs
                )
            vector_seconds = time.monotonic() - started
            log.info("word2vec vectors trained in %.1f s", vector_seconds)
        self.model.to(self.device)
        self.trainable = wrap_for_training(self.model, self.world)
        torch.manual_seed(config.seed + self.world.rank)  # but each rank its own dropout
        self.optimizer = build_optimizer(config, self.model)
        self.progress.elapsed_seconds = vector_seconds  # counted against a --max-minutes cap
        self.best_state: dict[str, torch.Tensor] | None = None
        self.average: WeightAverage | None = None
        self._last_snapshot = time.monotonic()
        self._last_eval = time.monotonic()
        self._epoch_fraction = 0.0  # of the current epoch, for the cosine schedule
        self._carried: torch.Tensor | None = None  # --context document: the columns' state

    # -- persistence -------------------------------------------------------------------
    def resume(self) -> None:
        """Continue from the snapshot in the output directory."""
        record, extra = read_snapshot(self.output, self.model, self.optimizer)
        self.progress = Progress(**record)
        if self.progress.averaged_steps:
            self.average = WeightAverage.from_tensors(
                self.model, extra, self.progress.averaged_steps
            )
        if self.world.rank:  # the snapshot holds rank 0's RNG; other ranks draw their own
            torch.manual_seed(self.config.seed + self.world.rank + self.progress.step)
        self.best_state = None  # the best weights stay in model.safetensors until improved
        carried = extra.get(CARRIED_STATE)  # where the columns' reading stopped
        self._carried = carried.to(self.device) if carried is not None else None

    def metadata(self, test_ppl: float | None = None) -> dict:
        """config.json's run record: corpus, training settings and statistics; a model trained
        in the document context is recorded as read that way (config.json's inference.context),
        so evaluate's tuner and the service carry the state across lines for it."""
        data = self.data
        inference = (
            {"inference": {"context": "document"}} if self.config.context == "document" else {}
        )
        return {
            **inference,
            "corpus": {
                "name": data.corpus.name,
                "source": self.config.corpus,
                "content_hash": data.corpus.content_hash,
                "train_tokens": sum(len(x) + 1 for x in data.ids["train"]),
            },
            "training": {
                "config": self.config.to_dict(),
                "epochs_done": self.progress.epoch,
                "steps": self.progress.step,
                "tokens_seen": self.progress.tokens_seen,
                "wall_seconds": round(self.progress.elapsed_seconds, 1),
                "best_valid_ppl": self.progress.best_valid_ppl,
                "test_ppl": test_ppl,
                "stopped_by": self.stop_reason(),
                "pretrained_coverage": self.coverage,
            },
        }

    def write(self, test_ppl: float | None = None) -> None:
        """Atomically write checkpoint (best weights) + snapshot (last state) + metrics;
        rank 0 alone writes, the others wait until it is on disk."""
        if not self.world.is_main:
            self.best_state = None
            self.world.barrier()
            return
        best = self.best_state
        if best is None and not (self.output / WEIGHTS).is_file():
            best = {k: v.clone() for k, v in self.model.state_dict().items()}  # the first write

        def fill(directory: Path) -> None:
            live = {k: v.clone() for k, v in self.model.state_dict().items()}
            if best is not None:
                self.model.load_state_dict(best)
            write_checkpoint_files(
                directory,
                self.model,
                self.data.vocab,
                self.data.spec,
                self.metadata(test_ppl),
                write_weights=best is not None,  # else the kept (hard-linked) best weights stay
            )
            self.model.load_state_dict(live)
            extra = self.average.tensors() if self.average else {}
            if self._carried is not None and not self.world.distributed:
                extra[CARRIED_STATE] = self._carried  # a resumed epoch reads on from here
            write_snapshot(directory, self.model, self.optimizer, self.progress.__dict__, extra)
            lines = "".join(json.dumps(row) + "\n" for row in self.progress.history)
            (directory / METRICS).unlink(missing_ok=True)
            (directory / METRICS).write_text(lines, encoding="utf-8")
            if self.progress.history:
                title = f"{self.config.cell} {self.config.hidden_size} on {self.data.corpus.name}"
                plot_curves(self.progress.history, replace_file(directory, CURVES), title)

        write_directory_atomically(self.output, fill, keep=() if best is not None else (WEIGHTS,))
        self.best_state = None  # written: later writes keep the file until it improves
        self._last_snapshot = time.monotonic()
        self.world.barrier()

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, split: str, model: RNNLanguageModel | None = None) -> float:
        """Perplexity of a split (docs/data.md's definition, the same targets in either context)
        under the live (or a given) model, read in the run's --context."""
        model, eos_id = model or self.model, self.data.vocab.eos_id
        if self.config.context == "document":  # each rank one contiguous share of the stream
            lines = self.data.ids[split]
            share = -(-len(lines) // self.world.size)
            mine = lines[self.world.rank * share : (self.world.rank + 1) * share]
            scores = [read_document(model, mine, eos_id).log_probs] if mine else []
        else:
            lines = self.data.ids[split][self.world.rank :: self.world.size]  # each rank a share
            scores = score_lines(model, lines, eos_id)
        log_likelihood, count = self.world.total(
            sum(float(s.double().sum()) for s in scores), sum(s.numel() for s in scores)
        )
        return math.exp(-log_likelihood / max(count, 1))

    def validate(self, train_loss: float | None, epoch_end: bool = True) -> None:
        """Valid ppl of the live weights (and of their average, when averaging); keep the best
        weights. At an epoch's end also anneal lr (plateau schedule) and count epochs without
        gain, comparing with earlier epoch ends only, as the classic recipe does; validations
        inside an epoch (--eval-every-minutes) only record and keep the best."""
        valid_ppl = self.evaluate("valid")
        average_ppl = None
        if self.average is not None:
            with self.average.swapped_in():
                average_ppl = self.evaluate("valid")
        p = self.progress
        ppl = min(valid_ppl, average_ppl or math.inf)
        improved = ppl < p.best_valid_ppl
        if improved:
            p.best_valid_ppl = ppl
            self.best_state = self._state_copy(average_ppl is not None and average_ppl < valid_ppl)
        if epoch_end and ppl < p.best_epoch_end_ppl:
            p.best_epoch_end_ppl, p.epochs_without_gain = ppl, 0
        elif epoch_end:
            p.epochs_without_gain += 1
            if self.config.schedule == "plateau":
                self.set_lr(p.lr * self.config.anneal_factor)
        row = {
            "epoch": p.epoch,
            "step": p.step,
            "tokens_seen": p.tokens_seen,
            "wall_seconds": round(p.elapsed_seconds, 2),
            "train_loss": None if train_loss is None else round(train_loss, 4),
            "train_ppl": None if train_loss is None else round(math.exp(min(train_loss, 50)), 2),
            "valid_ppl": round(valid_ppl, 2),
            "average_valid_ppl": round(average_ppl, 2) if average_ppl else None,
            "lr": p.lr,
            "tokens_per_second": round(p.tokens_seen / max(p.elapsed_seconds, 1e-9)),
        }
        p.history.append(row)
        averaged = f", averaged weights {average_ppl:.2f}" if average_ppl else ""
        best = " (best)" if improved else ""
        log.info("epoch %d: valid ppl %.2f%s%s", p.epoch, valid_ppl, averaged, best)
        self._last_eval = time.monotonic()

    def _state_copy(self, averaged: bool) -> dict[str, torch.Tensor]:
        """A copy of the model's state dict: its live weights or their running average."""
        with self.average.swapped_in() if averaged and self.average else nullcontext():
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # -- the loop -----------------------------------------------------------------------
    def set_lr(self, lr: float) -> None:
        """Use this learning rate from the next step on."""
        self.progress.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def budget_fraction(self) -> float:
        """How much of the run's budget is spent, 0..1: the largest of the token, step, epoch
        and time fractions that are bounded. The time cap counts only when it is the sole
        budget besides epochs, so a run budgeted in tokens follows the same schedule on a
        fast machine and a slow one."""
        c, p = self.config, self.progress
        fractions = [(p.epoch + self._epoch_fraction) / c.epochs]
        if c.max_tokens:
            fractions.append(p.tokens_seen / c.max_tokens)
        if c.max_steps:
            fractions.append(p.step / c.max_steps)
        if c.max_minutes and not (c.max_tokens or c.max_steps):
            fractions.append(p.elapsed_seconds / (c.max_minutes * 60))
        return min(1.0, max(fractions))

    def scheduled_lr(self) -> float:
        """Cosine schedule: linear warm-up, then half a cosine from lr down to zero."""
        c, p = self.config, self.progress
        if c.schedule != "cosine":
            return p.lr
        warm = min(1.0, (p.step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        return c.lr * warm * 0.5 * (1.0 + math.cos(math.pi * self.budget_fraction()))

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward pass (a no-op in fp32)."""
        enabled = self.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def count_budget_spent(self) -> bool:
        """True once the token or step budget is spent (checked after every step)."""
        c, p = self.config, self.progress
        if c.max_steps is not None and p.step >= c.max_steps:
            return True
        return bool(c.max_tokens) and p.tokens_seen >= (c.max_tokens or 0)

    def time_cap_reached(self) -> bool:
        """True once --max-minutes of training (word2vec included) have passed."""
        c = self.config
        return bool(c.max_minutes) and self.progress.elapsed_seconds >= (c.max_minutes or 0) * 60

    def out_of_budget(self) -> bool:
        """True once the token, step or time budget is spent."""
        return self.count_budget_spent() or self.time_cap_reached()

    def epoch_batches(self) -> list[LineBatch]:
        """This epoch's batches: length-grouped lines shuffled by the epoch's seed, or
        (--context document) the stream's consecutive column batches, in order."""
        c = self.config
        train, eos_id = self.data.ids["train"], self.data.vocab.eos_id
        if c.context == "document":
            rows = min(c.batch_size, max(1, c.step_tokens // c.bptt))
            return stream_batches(train, eos_id, rows, STREAM_BATCH_WINDOWS * c.bptt)
        seed = c.seed * 1000 + self.progress.epoch
        return make_batches(train, eos_id, c.batch_size, seed, c.step_tokens, c.bptt)

    def train_batch(self, batch: LineBatch) -> tuple[float, int]:
        """One batch, window by window; returns (summed loss, targets). A line batch starts
        from the start state; a stream batch from where the previous one left its columns."""
        c, p = self.config, self.progress
        state = self._carried if c.context == "document" else None
        total, count = 0.0, 0
        rows = self.world.rows(batch.inputs.size(0))
        # the same draw on every rank and after a resume: seeded by the position
        rng = random.Random(c.seed * 1_000_003 + p.epoch * 100_003 + p.batch)
        for inputs, targets in batch.windows(c.bptt, rng if c.variable_bptt else None):
            inputs, targets = inputs[rows].to(self.device), targets[rows].to(self.device)
            with self.autocast():
                log_probs, state = self.trainable(inputs, targets, state)
                log_probs = log_probs.float()
            state = state.detach()  # truncated BPTT: the next window does not backprop here
            loss = -log_probs.mean() if log_probs.numel() else log_probs.sum()
            self.set_lr(self.scheduled_lr())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
            self.optimizer.step()
            self.progress.step += 1
            self._update_average()
            # every rank sees about as many targets: scale its share to the whole step
            targets_read = log_probs.numel() * self.world.size
            total += float(loss.detach()) * targets_read
            count += targets_read
            self.progress.tokens_seen += targets_read
            if self.count_budget_spent():
                break
        self._carried = state
        return total, count

    def _update_average(self) -> None:
        """Fold this step's weights into the average once --average-from of the budget is
        spent (starting it then)."""
        start = self.config.average_from
        if start is None or self.budget_fraction() < start:
            return
        if self.average is None:
            self.average = WeightAverage(self.model)
        self.average.update()
        self.progress.averaged_steps = self.average.count

    def run_epoch(self, bar: tqdm) -> None:
        """Train from the current position to the end of the epoch (or of the budget),
        advancing the run's progress bar."""
        p = self.progress
        batches = self.epoch_batches()
        if p.batch == 0:
            self._carried = None  # an epoch starts from the start state
        self._epoch_fraction = p.batch / len(batches)
        bar.set_description(f"epoch {p.epoch + 1}")
        self.model.train()
        loss_sum, loss_count = 0.0, 0
        while p.batch < len(batches) and not self.world.agree(self.out_of_budget())[0]:
            started = time.monotonic()
            total, count = self.train_batch(batches[p.batch])
            p.elapsed_seconds += time.monotonic() - started
            p.batch += 1
            self._epoch_fraction = p.batch / len(batches)
            loss_sum, loss_count = loss_sum + total, loss_count + count
            bar.update(count)
            mean = loss_sum / max(loss_count, 1)
            bar.set_postfix(
                loss=f"{mean:.3f}",
                ppl=f"{math.exp(min(mean, 50)):.1f}",
                lr=f"{p.lr:.3g}",
                tok_s=f"{p.tokens_seen / max(p.elapsed_seconds, 1e-9):.0f}",
            )
            self._maybe_checkpoint_midway(mean)
        epoch_done = p.batch >= len(batches)
        if epoch_done:
            p.epoch, p.batch, self._epoch_fraction = p.epoch + 1, 0, 0.0
        # a budget that runs out mid-epoch validates without anneal or patience, so a run
        # resumed with a larger budget continues as an uninterrupted one would have
        self.validate(loss_sum / max(loss_count, 1), epoch_end=epoch_done)
        self.model.train()

    def _maybe_checkpoint_midway(self, train_loss: float) -> None:
        """Validate and/or snapshot inside an epoch when their intervals have passed."""
        c, now = self.config, time.monotonic()
        eval_due, snapshot_due = self.world.agree(
            bool(c.eval_every_minutes)
            and now - self._last_eval >= (c.eval_every_minutes or 0) * 60,
            now - self._last_snapshot >= c.snapshot_minutes * 60,
        )
        if eval_due:
            self.validate(train_loss, epoch_end=False)
            self.model.train()
        if snapshot_due:
            self.write()

    def planned_tokens(self) -> int:
        """Tokens the run reads unless patience stops it first: the smallest bounded budget
        (a step budget counted at --step-tokens a step)."""
        c = self.config
        bounds = [c.epochs * sum(len(line) + 1 for line in self.data.ids["train"])]
        if c.max_tokens:
            bounds.append(c.max_tokens)
        if c.max_steps:
            bounds.append(c.max_steps * c.step_tokens)
        return min(bounds)

    def announce_plan(self) -> None:
        """Log, before training, how many tokens the run reads and how long that should take on
        this machine, from a few steps timed on a copy of the model."""
        c = self.config
        speed = measure_tokens_per_second(c, self.model, self.data, self.device)
        tokens = self.planned_tokens()
        vectors = f"word2vec vectors ({c.word2vec_epochs} passes) first, then " * c.word2vec_init
        log.info(
            "plan: %straining on %s tokens, about %.1f min on this machine (%s tokens/s timed "
            "on a copy of the model)%s",
            vectors,
            f"{tokens:,}",
            tokens / speed / 60,
            f"{speed:,.0f}",
            f"; capped at {c.max_minutes:g} min" if c.max_minutes else "",
        )

    def stop_reason(self) -> str:
        """Which limit ended the run: 'tokens', 'steps', 'max_minutes', 'patience' or
        'epochs'."""
        c, p = self.config, self.progress
        if c.max_tokens and p.tokens_seen >= c.max_tokens:
            return "tokens"
        if c.max_steps is not None and p.step >= c.max_steps:
            return "steps"
        if self.time_cap_reached():
            return "max_minutes"
        return "patience" if p.epochs_without_gain >= c.patience else "epochs"

    def run(self) -> dict:
        """Train until the epochs, the patience or the budget run out; then score test with
        the best weights and write the final checkpoint. Returns the run's statistics."""
        c, p = self.config, self.progress
        bar = tqdm(
            total=self.planned_tokens(),
            initial=p.tokens_seen,
            unit="tok",
            unit_scale=True,
            disable=not (c.progress and self.world.is_main),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        while p.epoch < c.epochs and p.epochs_without_gain < c.patience:
            if self.world.agree(self.out_of_budget())[0]:
                break
            self.run_epoch(bar)
            self.write()
        bar.close()
        if self.world.agree(not (self.output / WEIGHTS).is_file())[0]:
            self.validate(None, epoch_end=False)  # the budget ended before any validation
            self.write()
        if self.stop_reason() == "max_minutes":
            log.warning(
                "--max-minutes %g stopped the run after %s of %s tokens: the model depends on "
                "this machine's speed; leave the cap out to train the whole budget",
                c.max_minutes,
                f"{p.tokens_seen:,}",
                f"{self.planned_tokens():,}",
            )
        best = load_checkpoint(self.output, self.device).model  # as the service will see it
        test_ppl = self.evaluate("test", best)
        self.write(test_ppl)
        return self.metadata(test_ppl)["training"]


def train(config: TrainConfig) -> dict:
    """Run (or resume) training as configured; returns the training statistics."""
    if config.threads:
        torch.set_num_threads(config.threads)
    resolve_precision(config.precision, resolve_device(config.device))  # before any work
    data = prepare_data(config)
    if int(os.environ.get("RANK", "0")) > 0:
        log.setLevel(logging.WARNING)  # rank 0 speaks for the run
    log.info(
        "corpus %s: %d train tokens, vocabulary %d",
        data.corpus.name,
        sum(len(x) + 1 for x in data.ids["train"]),
        len(data.vocab),
    )
    trainer = Trainer(config, data)
    output = Path(config.output)
    if trainer.world.is_main:
        recover_interrupted_swap(output)
    trainer.world.barrier()
    if config.resume:
        trainer.resume()
    elif (output / RESUME_TENSORS).exists() or (output / RESUME_STATE).exists():
        raise SystemExit(
            f"{output} already holds a run: pass --resume to continue it or choose another --output"
        )
    return trainer.run()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = parse_config(argv)
    try:
        stats = train(config)
    except ValueError as error:  # a setting this data or machine cannot take: say which
        raise SystemExit(f"error: {error}") from None
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {k: v for k, v in stats.items() if k != "config"}
        print(json.dumps({"output": config.output, **summary}, indent=2))


if __name__ == "__main__":
    main()
