"""Precision follows the hardware: bf16 only where it runs, a clear error where it is asked for
but cannot run, and fp32 everywhere; int8 weights by default only where int8 is the faster."""

import os
import subprocess
import sys

import pytest
import torch

from bench.cache_speed import median_ms
from model import hardware
from model.hardware import (
    INT8_DOT,
    cpu_bf16_missing,
    cpu_features,
    describe_cpu,
    int8_matmul_missing,
    resolve_precision,
)
from model.quantize import served_weights

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


def _pretend_bf16_lstm(monkeypatch, failure: str | None, kernels: str = "AVX512") -> None:
    """Make the hardware module's bf16 LSTM trial give `failure` (None: it trains), with torch
    running `kernels`."""
    monkeypatch.setattr(hardware, "_bf16_lstm_runs", lambda: failure)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: kernels)


def test_auto_picks_bf16_on_a_cpu_with_native_bf16_where_the_bf16_lstm_trains(monkeypatch):
    _pretend_cpu(monkeypatch, "fpu avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile")
    _pretend_bf16_lstm(monkeypatch, None)
    assert cpu_bf16_missing() is None
    assert resolve_precision("auto", CPU) == torch.bfloat16
    assert resolve_precision("bf16", CPU) == torch.bfloat16


def test_native_bf16_whose_onednn_lstm_fails_gets_fp32_and_an_error_quoting_onednn(monkeypatch):
    _pretend_cpu(monkeypatch, "fpu avx2 fma avx512f avx512_bf16")
    _pretend_bf16_lstm(monkeypatch, "could not create a primitive descriptor for an LSTM")
    assert resolve_precision("auto", CPU) == torch.float32
    with pytest.raises(ValueError) as error:
        resolve_precision("bf16", CPU)
    message = str(error.value)
    assert "avx512_bf16" in message and "oneDNN's bf16 LSTM does not build here" in message
    assert "could not create a primitive descriptor for an LSTM" in message


def test_native_bf16_under_avx2_kernels_gets_fp32_and_an_error_naming_the_kernels(monkeypatch):
    _pretend_cpu(monkeypatch, "fpu avx2 fma avx512f avx512_bf16")
    _pretend_bf16_lstm(monkeypatch, None, kernels="AVX2")
    assert resolve_precision("auto", CPU) == torch.float32
    with pytest.raises(ValueError, match="torch runs AVX2 kernels here"):
        resolve_precision("bf16", CPU)


def test_auto_picks_bf16_exactly_where_a_bf16_lstm_trains_here():
    """On this machine, either auto picks bf16 and a two-layer LSTM really trains under bf16
    autocast, or it picks fp32 and asking for bf16 stops with the reason auto found."""
    missing = cpu_bf16_missing()
    if resolve_precision("auto", CPU) == torch.float32:
        assert missing, "auto picked fp32 without a reason"
        with pytest.raises(ValueError) as refused:
            resolve_precision("bf16", CPU)
        assert missing in str(refused.value)
        return
    assert missing is None
    lstm = torch.nn.LSTM(8, 8, num_layers=2, batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = lstm(torch.randn(2, 3, 8))
    output.float().sum().backward()
    assert output.dtype == torch.bfloat16
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in lstm.parameters())


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


@pytest.mark.parametrize(
    ("flags", "limit", "missing"),
    [
        ("fpu sse2 avx avx2 fma", "", "no int8 dot-product instruction"),
        ("avx2 fma avx512f avx512_vnni", "", None),  # an AMD EPYC Zen 4
        ("avx2 fma avx_vnni", "", None),
        ("avx2 fma avx512f avx512_vnni amx_int8 amx_tile", "", None),  # a Xeon with AMX
        ("avx2 fma avx512f avx512_vnni amx_int8", "avx2", "ONEDNN_MAX_CPU_ISA=AVX2 keeps"),
        ("avx2 fma avx512f avx512_vnni", "AVX512_CORE_VNNI", None),
    ],
)
def test_int8_is_served_by_default_only_where_the_cpu_has_an_int8_dot_product(
    monkeypatch, flags, limit, missing
):
    _pretend_cpu(monkeypatch, flags)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    reason = int8_matmul_missing()
    assert reason is None if missing is None else missing in reason and "Test CPU 9000" in reason
    assert served_weights("auto", "cpu") == ("int8" if missing is None else "none")
    assert served_weights("int8", "cpu") == "int8"  # asked for: served, at this CPU's speed


def test_the_default_weights_are_the_faster_ones_on_this_cpu():
    """The rule above, checked against this machine: where it picks int8, torch's int8 matmul
    beats float at the shape of a batch-32 recurrent step (512 -> 2048); where it picks float,
    int8 is the slower. Measured gaps: 3x either way (Zen 4 with VNNI; AVX2-only EPYC: 11x)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 512, generator=generator)
    weight = torch.randn(2048, 512, generator=generator)
    levels = torch.randint(-63, 64, (32, 512), dtype=torch.int8, generator=generator)
    weight_t = torch.randint(-63, 64, (512, 2048), dtype=torch.int8, generator=generator)
    float_ms = median_ms(lambda: torch.nn.functional.linear(x, weight), 15)
    int8_ms = median_ms(lambda: torch._int_mm(levels, weight_t), 15)
    missing = int8_matmul_missing()
    if missing is None:
        assert int8_ms < float_ms, f"int8 is the default here, but takes {int8_ms:.3f} ms"
    elif not any(name in cpu_features() for name in INT8_DOT):
        assert int8_ms > float_ms, f"float is the default here ({missing}), but int8 is faster"
    else:  # a VNNI CPU held below it: the choice mirrors the slowest kind's, not this speed
        pytest.skip(f"{missing}: the default follows the limit, not the speed measured here")
