"""What this machine can compute with: the CPU's name and vector features, whether bf16 runs
here (and fast), and the device and precision a run resolves to.

CPUs of the same kind of machine differ: some Xeons have AMX and AVX-512 BF16, AMD EPYCs have
AVX2 only. oneDNN's bf16 LSTM exists only on the former; elsewhere it fails with a trace about
a "primitive descriptor". So bf16 is chosen (and allowed) only where a tiny bf16 LSTM really
runs, and the reason is said in words where it does not. int8 weights likewise serve by
default only where the CPU has int8 dot-product instructions (VNNI or AMX).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

# CPU flags (as /proc/cpuinfo spells them) that decide which kernels run; listed in this order
VECTOR_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8")  # one instruction multiplies and adds int8
# ONEDNN_MAX_CPU_ISA values below the first ISA with an int8 dot product (AVX2_VNNI)
ISAS_WITHOUT_INT8_DOT = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's entry of /proc/cpuinfo (empty where there is none)."""
    path = Path("/proc/cpuinfo")
    entry: dict[str, str] = {}
    if not path.is_file():
        return entry
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        entry[key.strip()] = value.strip()
    return entry


def cpu_name() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7B13' (the platform's guess off Linux)."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown CPU"


def cpu_features() -> list[str]:
    """Which of VECTOR_FEATURES this CPU has."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [name for name in VECTOR_FEATURES if name in flags]


def kernel_limits() -> list[str]:
    """Environment settings that keep torch or oneDNN below what the CPU has."""
    return [
        f"{name}={os.environ[name]}"
        for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
        if os.environ.get(name)
    ]


def describe_cpu() -> str:
    """One line for a bench header or a log: CPU, cores, vector features and the kernels torch
    uses (with any environment limit), so every figure names the machine it was measured on."""
    features = " ".join(cpu_features()) or "none of " + "/".join(VECTOR_FEATURES)
    limits = kernel_limits()
    limited = f", limited by {' '.join(limits)}" if limits else ""
    return (
        f"{cpu_name()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads); "
        f"features: {features}; torch {torch.__version__} kernels "
        f"{torch.backends.cpu.get_cpu_capability()}{limited}"
    )


@functools.lru_cache(maxsize=1)
def _bf16_lstm_runs() -> str | None:
    """None when a tiny LSTM trains under CPU bf16 autocast here, else oneDNN's complaint."""
    lstm = torch.nn.LSTM(8, 8, num_layers=2, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, _ = lstm(torch.randn(2, 3, 8))
        output.float().sum().backward()
    except RuntimeError as error:
        return str(error).splitlines()[0].split(". Run workload")[0].rstrip(".")
    return None


def cpu_bf16_missing() -> str | None:
    """Why bf16 training cannot run fast on this CPU, in words naming the missing feature; None
    when it can (native bf16 instructions, not limited, and oneDNN's bf16 LSTM builds)."""
    native = [name for name in NATIVE_BF16 if name in cpu_features()]
    if not native:
        have = ", ".join(cpu_features()) or "no AVX2"
        return (
            f"this CPU ({cpu_name()}) has neither AVX-512 BF16 nor AMX-BF16 (it has: {have}), "
            "so oneDNN has no bf16 LSTM for it"
        )
    failure = _bf16_lstm_runs()
    if failure is not None:
        limits = " ".join(kernel_limits()) or "no environment limit set"
        return (
            f"this CPU ({cpu_name()}) has {', '.join(native)}, but oneDNN's bf16 LSTM does not "
            f"build here ({limits}): {failure}"
        )
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AVX512_BF16"):
        return (
            f"torch runs {torch.backends.cpu.get_cpu_capability()} kernels here "
            f"({' '.join(kernel_limits())}), without the CPU's bf16 instructions"
        )
    return None


def int8_matmul_missing() -> str | None:
    """Why int8 weights would serve slower than float here, in words naming what is missing;
    None where the CPU has an int8 dot-product instruction (AVX-512 VNNI, AVX-VNNI or AMX-INT8)
    and no environment limit keeps oneDNN below it. Why: torch._int_mm is fast only there. On
    an AVX2-only AMD EPYC it took 5x float's time for 512 -> 2048 at batch 1 and 9x at batch
    20, so int8 by default would have made serving slower on such machines, not faster."""
    have = [name for name in INT8_DOT if name in cpu_features()]
    if not have:
        return (
            f"this CPU ({cpu_name()}) has no int8 dot-product instruction (AVX-512 VNNI, "
            "AVX-VNNI or AMX-INT8), and torch's int8 matmul runs slower than float without one"
        )
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if isa in ISAS_WITHOUT_INT8_DOT:
        return (
            f"this CPU ({cpu_name()}) has {', '.join(have)}, but ONEDNN_MAX_CPU_ISA={isa} keeps "
            "oneDNN's int8 matmul below it"
        )
    return None


CPU_BATCH = 32  # a step's time grows with the batch on 2 cores; 32 rows keep tokens flowing
GPU_BYTES_PER_ROW = 128 * 2**20  # a GPU's default batch: one row per 128 MiB of its memory
GPU_MOST_ROWS = 1024  # past this a step's latency grows faster than its throughput


def default_batch_size(device: str) -> int:
    """The batch limit a device gets unless told otherwise: 32 on the CPU; on CUDA, one row per
    128 MiB of the GPU's memory (so a 16 GiB card batches 128 rows), at most 1024."""
    resolved = torch.device(device)
    if resolved.type != "cuda" or not torch.cuda.is_available():
        return CPU_BATCH
    memory = torch.cuda.get_device_properties(resolved).total_memory
    return max(CPU_BATCH, min(GPU_MOST_ROWS, memory // GPU_BYTES_PER_ROW))


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """Compute dtype for autocast. 'auto' is bf16 where it is native and runs (CUDA with bf16;
    CPUs with AMX or AVX-512 BF16, measured about 1.2x the fp32 tokens/s on the default
    preset), else fp32. 'bf16' where the hardware cannot run it is a ValueError that says
    which feature is missing."""
    if name == "fp32":
        return torch.float32
    if name not in ("auto", "bf16"):
        raise ValueError(f"unknown precision {name!r}; choose auto, bf16 or fp32")
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        missing = None if supported else f"{torch.cuda.get_device_name(device)} has no bf16"
    else:
        missing = cpu_bf16_missing()
    if missing is None:
        return torch.bfloat16
    if name == "bf16":
        raise ValueError(f"--precision bf16 cannot run here: {missing}. Use --precision fp32.")
    return torch.float32
