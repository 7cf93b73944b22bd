"""bench/train_speed on the tiny corpus, run as a user runs it (a subprocess, so that the kernel
limits in its environment take effect): the page names the CPU, rows arrive as they are
measured, and bf16 rows are skipped with the reason where the CPU cannot run bf16."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.train_speed import default_model
from model.hardware import cpu_bf16_missing, cpu_features, cpu_name

ROOT = Path(__file__).resolve().parents[2]
# what an AVX2-only machine (an AMD EPYC) looks like to torch and oneDNN
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
MEASURED = re.compile(r"^\| lstm \| (full|adaptive) \| (bf16|fp32) \| [\d,]+ \| \d+\.\d\dx \|$")


def run_bench(corpus: Path, tmp_path: Path, env: dict[str, str]) -> list[tuple[float, str]]:
    """The bench's stdout lines, each with the time it arrived; the page it wrote must match."""
    command = [sys.executable, "-m", "bench.train_speed", "--corpus", str(corpus)]
    command += ["--cells", "lstm", "--size", "16", "--batches", "1"]
    command += ["--checkpoint", str(tmp_path / "none"), "--output", str(tmp_path / "speed.md")]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=stderr,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        lines = [(time.monotonic(), line.rstrip("\n")) for line in process.stdout]
    assert process.wait(timeout=60) == 0, (tmp_path / "stderr").read_text()
    page = (tmp_path / "speed.md").read_text(encoding="utf-8").splitlines()
    assert page == [line for _, line in lines]
    return lines


def rows(lines: list[tuple[float, str]], precision: str) -> list[str]:
    """The table rows of one precision."""
    return [
        line for _, line in lines if line.startswith("| lstm | ") and f"| {precision} |" in line
    ]


@pytest.fixture(scope="module")
def avx2_only_run(tiny_corpus_file, tmp_path_factory) -> list[tuple[float, str]]:
    """The bench's lines on the tiny corpus with torch and oneDNN held to AVX2."""
    return run_bench(tiny_corpus_file, tmp_path_factory.mktemp("avx2"), AVX2_ONLY)


def test_avx2_only_skips_bf16_with_the_reason_and_measures_fp32(avx2_only_run):
    bf16, fp32 = rows(avx2_only_run, "bf16"), rows(avx2_only_run, "fp32")
    assert len(bf16) == 2 and len(fp32) == 2
    for row in bf16:
        assert row.startswith(
            ("| lstm | full | bf16 | skipped: ", "| lstm | adaptive | bf16 | skipped: ")
        )
        assert f"--precision bf16 cannot run here: this CPU ({cpu_name()})" in row
        assert "Use --precision fp32." in row
    assert all(MEASURED.match(row) for row in fp32), fp32


def test_the_header_names_the_cpu_its_features_and_the_kernel_limit(avx2_only_run):
    header = next(line for _, line in avx2_only_run if line.startswith("Machine: "))
    assert cpu_name() in header
    assert "features: " + " ".join(cpu_features()) in header
    assert "kernels AVX2, limited by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" in header


def test_rows_are_printed_as_they_are_measured_not_at_the_end(avx2_only_run):
    arrivals = [at for at, line in avx2_only_run if line.startswith("| lstm | ")]
    # skipped rows first, then two training runs: a page printed at the end comes all at once
    assert arrivals[-1] - arrivals[0] > 0.2


def test_bf16_rows_follow_what_this_cpu_runs(tiny_corpus_file, tmp_path):
    bf16 = rows(run_bench(tiny_corpus_file, tmp_path, {}), "bf16")
    assert len(bf16) == 2
    missing = cpu_bf16_missing()  # with this process's environment, which the bench inherits
    if missing is None:
        assert all(MEASURED.match(row) for row in bf16), bf16
    else:
        assert all(f"skipped: --precision bf16 cannot run here: {missing}" in r for r in bf16)


def test_the_default_model_lines_hold_whatever_its_record_has(tiny_checkpoint, tmp_path):
    preset, record = default_model(tiny_checkpoint)
    assert preset.startswith("Default preset: `{") and "best valid ppl" in record
    training = json.loads((tiny_checkpoint / "config.json").read_text())["training"]
    assert f"tokens seen {training['tokens_seen']:,}" in record
    assert "config" not in record.split(":", 1)[1]  # the settings dict is not a figure
    (tmp_path / "config.json").write_text(json.dumps({"training": {"steps": 1200}}))
    assert default_model(tmp_path)[1].endswith(": steps 1,200.")
    (tmp_path / "config.json").write_text("{}")
    assert default_model(tmp_path)[1].endswith(": no figures.")
    assert len(default_model(tmp_path / "missing")) == 1
