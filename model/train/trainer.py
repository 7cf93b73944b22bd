"""Train a recurrent language model: `python -m model.train --help`.

Lines are read in length-grouped batches with truncated BPTT, or with --context document as
one stream in contiguous columns whose state is carried from batch to batch (see
model/batching.py); valid perplexity after every epoch; the best-valid weights become the
checkpoint; a resumable snapshot (last weights, optimizer, RNG, position) is written beside it
every few minutes.

This module is the loop. Beside it: what a run builds (build.py), its budget and schedule
(budget.py), validation (validation.py) and what it writes (run_directory.py).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from model.allocator import release_free_memory
from model.batching import LineBatch, make_batches, stream_batches
from model.checkpoint import WEIGHTS, load_checkpoint, recover_interrupted_swap
from model.hardware import resolve_device, resolve_precision
from model.rnn import RNNLanguageModel
from model.scoring import perplexity
from model.train.averaging import WeightAverage
from model.train.budget import (
    Progress,
    announce_plan,
    budget_fraction,
    count_budget_spent,
    out_of_budget,
    planned_tokens,
    scheduled_lr,
    stop_reason,
)
from model.train.build import build_model, build_optimizer
from model.train.config import TrainConfig, parse_config
from model.train.data import Data, prepare_data
from model.train.distributed import init_world, wrap_for_training
from model.train.resume import RESUME_STATE, RESUME_TENSORS, read_snapshot
from model.train.run_directory import (
    CARRIED_STATE,
    run_record,
    write_final_record,
    write_run,
)
from model.train.validation import record_validation, split_perplexity
from model.train.word2vec import initialise_embeddings

STREAM_BATCH_WINDOWS = 10  # --context document: windows per batch (a snapshot's granularity)
log = logging.getLogger("nextword.train")


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
            announce_plan(config, self.model, data, self.device)
        vector_seconds = 0.0
        if config.word2vec_init and not config.resume:  # a resumed run has its weights
            started = time.monotonic()
            weight = self.model.embedding.weight
            with torch.no_grad():
                progress = config.progress and self.world.is_main
                self.coverage = initialise_embeddings(data, weight, config, progress)
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
        extra = self.average.tensors() if self.average else {}
        if self._carried is not None and not self.world.distributed:
            extra[CARRIED_STATE] = self._carried  # a resumed epoch reads on from here
        record = run_record(self.config, self.data, self.progress, self.coverage, test_ppl)
        title = f"{self.config.cell} {self.config.hidden_size} on {self.data.store.name}"
        write_run(
            self.output,
            self.model,
            best,
            self.data,
            record,
            self.optimizer,
            self.progress,
            extra,
            title,
        )
        self.best_state = None  # written: later writes keep the file until it improves
        self._last_snapshot = time.monotonic()
        self.world.barrier()

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, split: str, model: RNNLanguageModel | None = None) -> float:
        """Perplexity of a split under the live (or a given) model, read in the run's
        --context, shared among the ranks."""
        lines, eos_id = self.data.ids[split], self.data.vocab.eos_id
        if split == "valid" and model is None:  # during training: a bounded, fixed slice
            lines = lines.head(self.config.valid_tokens)
        context = self.config.context
        return split_perplexity(model or self.model, lines, eos_id, context, self.world)

    def validate(self, train_loss: float | None, epoch_end: bool = True) -> None:
        """Valid ppl of the live weights (and of their average, when averaging), recorded in
        the run's history (model/train/validation.py); keep the best weights, and the lr the
        plateau schedule anneals at an epoch's end. Validations inside an epoch
        (--eval-every-minutes) only record and keep the best."""
        valid_ppl = self.evaluate("valid")
        average_ppl = None
        if self.average is not None:
            with self.average.swapped_in():
                average_ppl = self.evaluate("valid")
        if record_validation(
            self.progress, self.config, train_loss, valid_ppl, average_ppl, epoch_end
        ):
            self.best_state = self._state_copy(average_ppl is not None and average_ppl < valid_ppl)
        self.set_lr(self.progress.lr)  # annealed, or as it was
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

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward pass (a no-op in fp32)."""
        enabled = self.dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def epoch_batches(self) -> Sequence[LineBatch]:
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
            self.set_lr(scheduled_lr(c, p, self._epoch_fraction))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
            self.optimizer.step()
            # freed now, not before the next backward: the next window's forward (and the
            # final test reading) runs without a second copy of the weights' size held
            self.optimizer.zero_grad(set_to_none=True)
            self.progress.step += 1
            self._update_average()
            # every rank sees about as many targets: scale its share to the whole step
            targets_read = log_probs.numel() * self.world.size
            total += float(loss.detach()) * targets_read
            count += targets_read
            self.progress.tokens_seen += targets_read
            if count_budget_spent(c, p):
                break
        self._carried = state
        return total, count

    def _update_average(self) -> None:
        """Fold this step's weights into the average once --average-from of the budget is
        spent (starting it then)."""
        c, p, start = self.config, self.progress, self.config.average_from
        if start is None or budget_fraction(c, p, self._epoch_fraction) < start:
            return
        if self.average is None:
            self.average = WeightAverage(self.model)
        self.average.update()
        self.progress.averaged_steps = self.average.count

    def run_epoch(self, bar: tqdm) -> None:
        """Train from the current position to the end of the epoch (or of the budget),
        advancing the run's progress bar."""
        c, p = self.config, self.progress
        batches = self.epoch_batches()
        if p.batch == 0:
            self._carried = None  # an epoch starts from the start state
        self._epoch_fraction = p.batch / len(batches)
        bar.set_description(f"epoch {p.epoch + 1}")
        self.model.train()
        loss_sum, loss_count = 0.0, 0
        while p.batch < len(batches) and not self.world.agree(out_of_budget(c, p))[0]:
            started = time.monotonic()
            total, count = self.train_batch(batches[p.batch])
            release_free_memory()  # batches differ in shape: without it the heap creeps
            p.elapsed_seconds += time.monotonic() - started
            p.batch += 1
            self._epoch_fraction = p.batch / len(batches)
            loss_sum, loss_count = loss_sum + total, loss_count + count
            bar.update(count)
            mean = loss_sum / max(loss_count, 1)
            bar.set_postfix(
                loss=f"{mean:.3f}",
                ppl=f"{perplexity(min(mean, 50)):.1f}",
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

    def run(self) -> dict:
        """Train until the epochs, the patience or the budget run out; then score test with
        the best weights and write the final checkpoint. Returns the run's statistics."""
        c, p = self.config, self.progress
        bar = tqdm(
            total=planned_tokens(c, self.data.ids["train"].num_tokens()),
            initial=p.tokens_seen,
            unit="tok",
            unit_scale=True,
            disable=not (c.progress and self.world.is_main),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        while p.epoch < c.epochs and p.epochs_without_gain < c.patience:
            if self.world.agree(out_of_budget(c, p))[0]:
                break
            self.run_epoch(bar)
            self.write()
        bar.close()
        if self.world.agree(not (self.output / WEIGHTS).is_file())[0]:
            self.validate(None, epoch_end=False)  # the budget ended before any validation
            self.write()
        if stop_reason(c, p) == "max_minutes":
            log.warning(
                "--max-minutes %g stopped the run after %s of %s tokens: the model depends on "
                "this machine's speed; leave the cap out to train the whole budget",
                c.max_minutes,
                f"{p.tokens_seen:,}",
                f"{planned_tokens(c, self.data.ids['train'].num_tokens()):,}",
            )
        self.release_training_state()
        best = load_checkpoint(self.output, self.device).model  # as the service will see it
        test_ppl = self.evaluate("test", best)
        record = run_record(c, self.data, p, self.coverage, test_ppl)
        if self.world.is_main:
            write_final_record(self.output, best, self.data, record)
        self.world.barrier()
        return record["training"]

    def release_training_state(self) -> None:
        """Free what only further steps would need (the optimizer's moments, the weight
        average) before the final test reading: the snapshot on disk holds both, and the
        moments alone are twice the weights. (Each step already frees its gradients.)"""
        self.optimizer.state.clear()
        self.average = None
        release_free_memory()


def train(config: TrainConfig) -> dict:
    """Run (or resume) training as configured; returns the training statistics."""
    if config.threads:
        torch.set_num_threads(config.threads)
    resolve_precision(config.precision, resolve_device(config.device))  # before any work
    data = prepare_data(config)
    if int(os.environ.get("RANK", "0")) > 0:
        log.setLevel(logging.WARNING)  # rank 0 speaks for the run
    log.info(
        "corpus %s: %s train tokens, vocabulary %s",
        data.store.name,
        f"{data.ids['train'].num_tokens():,}",
        f"{len(data.vocab):,}",
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
    except (ValueError, FileNotFoundError) as error:  # a setting or corpus to fix: say which
        raise SystemExit(f"error: {error}") from None
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {k: v for k, v in stats.items() if k != "config"}
        print(json.dumps({"output": config.output, **summary}, indent=2))


if __name__ == "__main__":
    main()
