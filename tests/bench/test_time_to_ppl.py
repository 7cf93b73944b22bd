"""bench/time_to_ppl's figures: time to a target perplexity, tokens/s, ratios and floor
verdicts, on hand-written curves (no training)."""

import json

import pytest

from bench.time_to_ppl import (
    KN5_VALID_PPL,
    Ratio,
    Run,
    corpus_table,
    extends,
    format_time,
    format_time_ratio,
    overall_tokens_per_second,
    same_settings,
    summarise,
    time_ratio,
    time_to_target,
)
from model.train.config import parse_config


def _curve(*points):
    return [
        {"wall_seconds": seconds, "valid_ppl": ppl, "tokens_seen": tokens}
        for seconds, ppl, tokens in points
    ]


CURVE = _curve((30, 900.0, 3000), (60, 400.0, 6000), (90, 250.0, 9000), (120, 200.0, 12000))


def test_time_to_target_interpolates_between_the_crossing_validations():
    # 400 at 60 s, 250 at 90 s: 295 lies 105/150 of the way, at 81 s
    assert time_to_target(CURVE, 295.0) == pytest.approx(81.0)


def test_time_to_target_exactly_at_a_validation_is_its_time():
    assert time_to_target(CURVE, 250.0) == pytest.approx(90.0)


def test_time_to_target_already_below_at_the_first_validation_is_its_time():
    assert time_to_target(CURVE, 1000.0) == 30.0


def test_time_to_target_is_the_first_crossing_not_a_later_one():
    bouncing = _curve((30, 300.0, 1), (60, 280.0, 2), (90, 320.0, 3), (120, 270.0, 4))
    assert time_to_target(bouncing, 290.0) == pytest.approx(30 + 30 * 10 / 20)


def test_time_to_target_never_reached_is_none():
    assert time_to_target(CURVE, 150.0) is None
    assert time_to_target([], 150.0) is None


def test_tokens_per_second_is_overall_tokens_over_training_time():
    assert overall_tokens_per_second(CURVE) == 100.0


def test_both_reached_gives_an_exact_ratio_and_verdict():
    ratio = time_ratio(600.0, 1800.0, 100.0, 540.0)
    assert ratio == Ratio(6.0)
    assert ratio.verdict() == "met"
    assert format_time_ratio(ratio) == "1/6.0"
    assert time_ratio(400.0, 1800.0, 100.0, 540.0).verdict() == "not met"


def test_plain_not_reached_gives_a_lower_bound_from_its_training_time():
    ratio = time_ratio(None, 1800.0, 120.0, 540.0)
    assert ratio == Ratio(15.0, ">=")
    assert ratio.verdict() == "met"
    assert format_time_ratio(ratio) == "≤ 1/15.0"
    assert time_ratio(None, 1800.0, 600.0, 540.0).verdict() == "undetermined"  # >= 3x only


def test_ours_not_reached_gives_an_upper_bound():
    ratio = time_ratio(1000.0, 1800.0, None, 540.0)
    assert ratio.bound == "<=" and ratio.value == pytest.approx(1000 / 540)
    assert ratio.verdict() == "not met"
    assert format_time_ratio(ratio) == "≥ 1/1.9"
    assert time_ratio(6000.0, 7200.0, None, 540.0).verdict() == "undetermined"


def test_neither_reached_is_undetermined():
    ratio = time_ratio(None, 1800.0, None, 540.0)
    assert ratio.value is None and ratio.verdict() == "undetermined"
    assert format_time_ratio(ratio) == "—"


def test_ours_slower_reads_as_a_multiple():
    assert format_time_ratio(time_ratio(100.0, 1800.0, 200.0, 540.0)) == "2.0×"


def test_speed_floor_is_five_times():
    assert Ratio(5.0).verdict() == "met"
    assert Ratio(4.9).verdict() == "not met"


def test_time_not_reached_names_the_training_time():
    assert format_time(None, 1800.0) == "not reached in 30.0 min"
    assert format_time(81.0, 1800.0) == "1.4 min"
    assert format_time(42.4, 1800.0) == "42 s"


def test_time_to_target_counts_the_averaged_weights_when_they_are_better():
    curve = _curve((30, 400.0, 1), (60, 300.0, 2))
    curve[1]["average_valid_ppl"] = 280.0
    assert time_to_target(curve, 290.0) == pytest.approx(30 + 30 * 110 / 120)


TRAIN = ["python", "-m", "model.train", "--preset", "plain", "--output", "out"]


def _finished_run(directory, schedule, command=TRAIN):
    """An output directory whose config.json records what `command` resolves to."""
    directory.mkdir()
    settings = parse_config(command[3:]).to_dict() | {"schedule": schedule}
    config = {"training": {"config": settings}}
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def test_a_plateau_run_is_extended_only_to_a_larger_budget_of_the_same_command(tmp_path):
    output = _finished_run(tmp_path / "plain", "plateau")
    twenty, thirty = [*TRAIN, "--max-minutes", "20.0"], [*TRAIN, "--max-minutes", "30.0"]
    assert extends(twenty, thirty, output)
    assert not extends(thirty, twenty, output)  # a smaller budget is a different run
    assert not extends(twenty, [*thirty, "--lr", "5"], output)  # other flags differ
    assert not extends(TRAIN, thirty, output)  # the finished run had no budget


def test_a_cosine_run_is_never_extended_since_its_course_depends_on_the_budget(tmp_path):
    output = _finished_run(tmp_path / "ours", "cosine")
    assert not extends([*TRAIN, "--max-minutes", "5"], [*TRAIN, "--max-minutes", "9"], output)


def test_a_finished_run_counts_only_while_its_command_still_means_the_same_settings(tmp_path):
    output = _finished_run(tmp_path / "plain", "plateau")
    assert same_settings([*TRAIN, "--max-minutes", "30"], output)  # the budget may differ
    assert not same_settings([*TRAIN, "--lr", "5"], output)
    changed = json.loads((output / "config.json").read_text(encoding="utf-8"))
    changed["training"]["config"]["hidden_size"] = 999  # as if the preset had changed since
    (output / "config.json").write_text(json.dumps(changed), encoding="utf-8")
    assert not same_settings(TRAIN, output)


def test_a_setting_added_since_a_run_counts_as_its_default_then(tmp_path):
    output = _finished_run(tmp_path / "plain", "plateau")
    older = json.loads((output / "config.json").read_text(encoding="utf-8"))
    del older["training"]["config"]["word2vec_init"]  # trained before the flag existed
    (output / "config.json").write_text(json.dumps(older), encoding="utf-8")
    assert same_settings(TRAIN, output)  # the plain preset leaves it at its default
    assert not same_settings([*TRAIN, "--word2vec-init"], output)


def test_a_skipped_mode_says_why_in_its_row():
    plain = Run("peoples-daily", "plain", [], "/tmp/plain", "/tmp/plain.log")
    plain.skipped = "--precision bf16 cannot run here: no AVX-512 BF16"
    summary = summarise([plain], "peoples-daily", KN5_VALID_PPL)
    row = corpus_table([plain], "peoples-daily", summary)[-1]
    assert row.startswith("| plain | skipped: --precision bf16 cannot run here: no AVX-512 BF16 |")
    assert row.count("|") == 9  # the table's eight columns
