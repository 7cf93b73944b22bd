"""Validation during training: a split's perplexity in the run's context (the evaluate
command's figure), and what a validation changes in the run: the best figure, the plateau
schedule, patience and the metrics row."""

import math

import pytest

from model.checkpoint import load_checkpoint
from model.evaluate.cli import evaluate, split_ids
from model.train.budget import Progress
from model.train.config import TrainConfig
from model.train.distributed import World
from model.train.validation import record_validation, split_perplexity


@pytest.mark.parametrize("context", ["line", "document"])
def test_a_split_perplexity_is_the_evaluate_figure_in_either_context(tiny_checkpoint, context):
    checkpoint = load_checkpoint(tiny_checkpoint)
    _, lines = split_ids(checkpoint, None, "valid", None)
    figure = split_perplexity(checkpoint.model, lines, checkpoint.vocab.eos_id, context, World())
    expected = evaluate(checkpoint, split="valid", context=context)["perplexity"]
    assert figure == pytest.approx(expected, rel=1e-9)


def plateau() -> TrainConfig:
    return TrainConfig(schedule="plateau", optimizer="sgd", lr=1.0, anneal_factor=0.25)


def test_only_epoch_ends_anneal_the_plateau_schedule_and_count_patience():
    config, progress = plateau(), Progress(lr=1.0)
    assert record_validation(progress, config, 5.0, 100.0, None, epoch_end=True)  # the best
    for ppl in (101.0, 102.0, 103.0):  # worse, inside an epoch: lr and patience stay
        assert not record_validation(progress, config, 5.0, ppl, None, epoch_end=False)
    assert progress.lr == 1.0 and progress.epochs_without_gain == 0
    assert not record_validation(progress, config, 5.0, 104.0, None, epoch_end=True)
    assert progress.lr == 0.25 and progress.epochs_without_gain == 1
    assert progress.history[-1]["lr"] == 0.25  # the row records the annealed lr


def test_a_better_validation_inside_an_epoch_is_kept_but_does_not_reset_patience():
    config, progress = plateau(), Progress(lr=1.0, best_valid_ppl=100.0)
    progress.best_epoch_end_ppl, progress.epochs_without_gain = 100.0, 2
    assert record_validation(progress, config, 5.0, 90.0, None, epoch_end=False)
    assert progress.best_valid_ppl == 90.0 and progress.epochs_without_gain == 2


def test_the_better_of_the_live_and_averaged_weights_counts():
    progress = Progress(lr=1.0)
    assert record_validation(progress, plateau(), None, 120.0, 110.0, epoch_end=True)
    assert progress.best_valid_ppl == 110.0 and progress.best_epoch_end_ppl == 110.0
    row = progress.history[-1]
    assert (row["valid_ppl"], row["average_valid_ppl"]) == (120.0, 110.0)
    assert row["train_loss"] is None and row["train_ppl"] is None  # before any training


def test_the_row_holds_the_train_perplexity_of_the_mean_loss():
    progress = Progress(epoch=2, step=40, tokens_seen=8000, elapsed_seconds=4.0)
    record_validation(progress, TrainConfig(), 5.123456, 150.0, None, epoch_end=True)
    row = progress.history[-1]
    assert row["train_loss"] == 5.1235 and row["train_ppl"] == round(math.exp(5.123456), 2)
    assert (row["epoch"], row["step"], row["tokens_per_second"]) == (2, 40, 2000)
    record_validation(progress, TrainConfig(), 800.0, 150.0, None, epoch_end=True)
    assert progress.history[-1]["train_ppl"] == round(math.exp(50), 2)  # a diverged run
