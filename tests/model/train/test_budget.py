"""A run's budget: how much is spent (which the cosine schedule follows), when and why a run
stops, the tokens it plans to read, and the plan announced before training."""

import math

import pytest
import torch
from safetensors.torch import load_file

from model.train.budget import (
    Progress,
    budget_fraction,
    count_budget_spent,
    out_of_budget,
    planned_tokens,
    scheduled_lr,
    stop_reason,
    time_cap_reached,
)
from model.train.config import TrainConfig
from model.train.trainer import train

TRAIN = 6  # tokens an epoch, <eos> included


def config(**settings) -> TrainConfig:
    """A TrainConfig with no budget but 10 epochs, unless `settings` give one."""
    return TrainConfig(**{"epochs": 10, **settings})


def test_the_largest_bounded_fraction_is_the_budget_spent():
    progress = Progress(epoch=1, tokens_seen=500, step=10, elapsed_seconds=30.0)
    assert budget_fraction(config(), progress, 0.5) == pytest.approx(0.15)  # epochs only
    assert budget_fraction(config(max_tokens=1000), progress, 0.5) == pytest.approx(0.5)
    assert budget_fraction(config(max_steps=20, max_tokens=10**6), progress, 0) == 0.5
    assert budget_fraction(config(max_tokens=100), progress, 0) == 1.0  # never past the end


def test_the_time_cap_shapes_the_schedule_only_as_the_sole_budget():
    progress = Progress(tokens_seen=100, elapsed_seconds=60.0)
    assert budget_fraction(config(max_minutes=2.0), progress, 0) == 0.5
    assert budget_fraction(config(max_minutes=2.0, max_tokens=1000), progress, 0) == 0.1


def test_cosine_warms_up_then_falls_to_zero_over_the_budget_and_plateau_keeps_its_lr():
    cosine = config(schedule="cosine", lr=1.0, warmup_steps=10, max_tokens=1000)
    assert scheduled_lr(cosine, Progress(step=4), 0) == pytest.approx(0.5)  # 5 of 10 warm-up
    assert scheduled_lr(cosine, Progress(step=20, tokens_seen=500), 0) == pytest.approx(0.5)
    assert scheduled_lr(cosine, Progress(step=20, tokens_seen=1000), 0) == pytest.approx(0)
    plateau = config(schedule="plateau", lr=1.0)
    assert scheduled_lr(plateau, Progress(lr=0.25, tokens_seen=999), 0.9) == 0.25


def test_max_minutes_zero_means_no_time_budget():
    long_run = Progress(elapsed_seconds=10**6)
    assert not time_cap_reached(config(max_minutes=0.0), long_run)
    assert not out_of_budget(config(max_minutes=0.0, max_tokens=0), long_run)
    assert time_cap_reached(config(max_minutes=1.0), Progress(elapsed_seconds=60.0))


def test_a_token_or_step_budget_is_spent_once_reached():
    assert count_budget_spent(config(max_tokens=100), Progress(tokens_seen=100))
    assert not count_budget_spent(config(max_tokens=100), Progress(tokens_seen=99))
    assert count_budget_spent(config(max_steps=5), Progress(step=5))
    assert not count_budget_spent(config(max_tokens=0), Progress(tokens_seen=10**9))


@pytest.mark.parametrize(
    ("settings", "progress", "reason"),
    [
        ({"max_tokens": 100}, Progress(tokens_seen=120), "tokens"),
        ({"max_steps": 5}, Progress(step=5), "steps"),
        ({"max_minutes": 1.0}, Progress(elapsed_seconds=61.0), "max_minutes"),
        ({"patience": 2}, Progress(epochs_without_gain=2), "patience"),
        ({}, Progress(epoch=10), "epochs"),
    ],
)
def test_the_stop_reason_names_the_limit_that_ended_the_run(settings, progress, reason):
    assert stop_reason(config(**settings), progress) == reason


def test_the_planned_tokens_are_the_smallest_bounded_budget():
    assert planned_tokens(config(epochs=3), TRAIN) == 18
    assert planned_tokens(config(max_tokens=10), TRAIN) == 10
    assert planned_tokens(config(max_steps=2, step_tokens=4), TRAIN) == 8
    assert planned_tokens(config(epochs=1, max_tokens=100), TRAIN) == 6


def test_the_plan_is_announced_before_training_without_changing_the_run(
    tiny_config, tmp_path, caplog
):
    # with word2vec vectors first: a small split's vectors come from one thread and repeat
    quiet = train(tiny_config(tmp_path / "quiet", max_tokens=2000, word2vec_init=True))
    with caplog.at_level("INFO", logger="nextword.train"):
        loud = train(
            tiny_config(tmp_path / "loud", max_tokens=2000, progress=True, word2vec_init=True)
        )
    assert "word2vec vectors (5 passes, " in caplog.text  # their time foreseen, then
    assert "training on 2,000 tokens" in caplog.text and "min on this machine in all" in caplog.text
    a = load_file(str(tmp_path / "quiet" / "model.safetensors"))
    b = load_file(str(tmp_path / "loud" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert quiet["best_valid_ppl"] == loud["best_valid_ppl"]
    assert math.isfinite(loud["best_valid_ppl"])
