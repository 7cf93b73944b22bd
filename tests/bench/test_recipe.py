"""bench/recipe's table: each variant against the base run, failed runs shown as such."""

import os
import subprocess
import sys
from pathlib import Path

from bench.recipe import plan_run, preset_budget, table
from bench.time_to_ppl import Run
from model.hardware import cpu_name

ROOT = Path(__file__).resolve().parents[2]


def _run(variant, test_ppl, returncode=0):
    run = Run("peoples-daily", variant, [], f"/tmp/{variant}", f"/tmp/{variant}.log", returncode)
    if returncode == 0:
        run.curve = [{"wall_seconds": 540.0, "tokens_seen": 7_400_000, "valid_ppl": 260.0}]
        run.trained_seconds, run.tokens_per_second = 540.0, 13_700.0
        run.best_valid_ppl, run.test_ppl = 260.0, test_ppl
    return run


def test_each_variant_is_compared_with_the_base_test_ppl():
    rows = table([_run("base", 320.0), _run("average", 304.0), _run("tied", None, returncode=1)])
    base, average, tied = rows[2:]
    assert "| base | `—` |" in base and base.endswith("| 320.0 | +0.0% |")
    assert "`--average-from 0.5`" in average and average.endswith("| 304.0 | -5.0% |")
    assert "failed: see /tmp/tied.log" in tied
    assert "| 7.40M | 13,700 |" in average


def test_a_skipped_variant_says_why_in_its_row():
    skipped = _run("bf16", None, returncode=None)
    skipped.skipped = "--precision bf16 cannot run here: no AVX-512 BF16"
    row = table([_run("base", 320.0), skipped])[-1]
    assert row.startswith("| bf16 | `--precision bf16` | skipped: --precision bf16 cannot run")
    assert row.count("|") == 9  # the table's eight columns


def test_the_bf16_variant_is_skipped_not_crashed_on_an_avx2_only_cpu(tmp_path):
    avx2_only = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    command = [sys.executable, "-m", "bench.recipe", "--variants", "bf16"]
    command += ["--output", str(tmp_path), "--work-dir", str(tmp_path)]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **avx2_only}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Machine: {cpu_name()}" in done.stdout
    assert "bf16 on peoples-daily: skipped: --precision bf16 cannot run here" in done.stdout
    page = (tmp_path / "recipe.md").read_text(encoding="utf-8")
    expected = "| bf16 | `--precision bf16` | skipped: --precision bf16 cannot run here: this CPU"
    assert f"{expected} ({cpu_name()})" in page
    assert not (tmp_path / "bf16").exists()  # nothing was trained


def test_equal_tokens_turns_off_whatever_budget_the_preset_sets(tmp_path):
    command = plan_run("tied", tmp_path, max_steps=300).command
    assert preset_budget(), "the default preset sets no budget: update BUDGET_KEYS"
    for key in preset_budget():
        flag = "--" + key.replace("_", "-")
        assert command[command.index(flag) + 1] == "0"
    assert command[command.index("--max-steps") + 1] == "300"
    assert "--tie-weights" in command
