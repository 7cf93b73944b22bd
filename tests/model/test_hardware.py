"""Precision follows the hardware: bf16 only where it runs, a clear error where it is asked for
but cannot run, and fp32 everywhere."""

import os
import subprocess
import sys

import pytest
import torch

from model import hardware
from model.hardware import cpu_bf16_missing, describe_cpu, resolve_precision

CPU = torch.device("cpu")


def _pretend_cpu(monkeypatch, flags: str) -> None:
    """Make the hardware module read a CPU with these flags (and clear its caches)."""
    monkeypatch.setattr(
        hardware, "_cpuinfo", lambda: {"model name": "Test CPU 9000", "flags": flags}
    )


def test_fp32_is_always_available():
    assert resolve_precision("fp32", CPU) == torch.float32


def test_an_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="auto, bf16 or fp32"):
        resolve_precision("fp8", CPU)


def test_a_cpu_without_bf16_gets_fp32_from_auto_and_an_error_naming_the_feature(monkeypatch):
    _pretend_cpu(monkeypatch, "fpu sse2 avx avx2 fma")
    assert resolve_precision("auto", CPU) == torch.float32
    with pytest.raises(ValueError) as error:
        resolve_precision("bf16", CPU)
    message = str(error.value)
    assert "AVX-512 BF16" in message and "AMX-BF16" in message
    assert "Test CPU 9000" in message and "avx2" in message
    assert "--precision fp32" in message


def test_the_description_names_the_cpu_and_its_vector_features(monkeypatch):
    _pretend_cpu(monkeypatch, "fpu avx2 fma avx512f")
    line = describe_cpu()
    assert "Test CPU 9000" in line
    assert "avx2 fma avx512f" in line
    assert "amx" not in line.split("features:")[1].split(";")[0]


def test_auto_picks_bf16_exactly_where_it_runs():
    expected = torch.float32 if cpu_bf16_missing() else torch.bfloat16
    assert resolve_precision("auto", CPU) == expected


def test_bf16_on_a_cpu_limited_to_avx2_is_one_clear_line_not_a_onednn_trace(tmp_path):
    """ONEDNN_MAX_CPU_ISA=AVX2 gives any CPU the AVX2-only kernels: asking for bf16 must stop
    before training with a message naming why, and no Python traceback."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    text = tmp_path / "train.txt"
    text.write_text("a b c\n" * 20, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model.train",
            "--corpus",
            str(text),
            "--tokenizer",
            "whitespace",
            "--precision",
            "bf16",
            "--no-word2vec-init",
            "--output",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--precision bf16 cannot run here" in result.stderr
    assert "AVX" in result.stderr
    assert not (tmp_path / "out").exists()
