"""bench/skips: a configuration this machine cannot train is named with model.train's own
reason, and its table row says so in the table's width."""

from bench.skips import command_unavailable, skipped_row, unavailable
from model.hardware import cpu_bf16_missing
from model.train.config import TrainConfig


def test_fp32_runs_everywhere_and_bf16_where_the_cpu_has_it():
    assert unavailable(TrainConfig(precision="fp32", device="cpu")) is None
    reason = unavailable(TrainConfig(precision="bf16", device="cpu"))
    missing = cpu_bf16_missing()
    assert (reason is None) == (missing is None)
    if reason is not None:
        assert reason.startswith("--precision bf16 cannot run here") and missing in reason


def test_a_command_line_is_judged_by_the_flags_after_model_train():
    command = ["python", "-m", "model.train", "--preset", "plain", "--device", "cpu"]
    assert command_unavailable(command) is None  # the plain preset trains in fp32
    bf16 = command_unavailable([*command, "--precision", "bf16"])
    assert bf16 == unavailable(TrainConfig(precision="bf16", device="cpu"))


def test_a_skipped_row_fills_the_table_width():
    row = skipped_row(["lstm", "full"], "no bf16", columns=5)
    assert row == "| lstm | full | skipped: no bf16 |  |  |"
    assert row.count("|") == 6
