"""How close a decode step comes to the memory-bandwidth limit, and what int8 weights and the
pruned output layer buy over float weights with the whole distribution (the old default).

    python -m bench.bandwidth --checkpoint checkpoints/default          # docs/bandwidth.*

Decoding a token reads every weight of the recurrent and output layers once, so a batch-1 step
can be no faster than those bytes ÷ the memory bandwidth. The bench measures, in one run:

1. the bandwidth: a copy of a 512 MiB tensor (bytes read + written ÷ seconds, median of 10);
2. the bytes a full-distribution step reads as served (model/quantize.py `weight_bytes`): the
   int8 default (one byte a weight, with its scales and biases) and the float weights;
3. the service's own decode step (model/runner.py `Runner.step`: network, output layer,
   sampling, events) at batch 1 and 32: the default (int8 weights, pruned output) against float
   weights with the whole distribution, both sampling as a request does by default
   (temperature 1) and with temperature 0.9, top-k 50, top-p 0.95; the kinds take turns in
   blocks of 25 steps, so that a change in the machine's load falls on all alike while each
   kind's weights stay as warm in the caches as in a server running it alone;
4. the live server's generated tokens/s at 1 and 32 concurrent clients (64 tokens a request,
   default sampling), the default against NEXTWORD_QUANTIZE=none NEXTWORD_OUTPUT=full;
5. test-split perplexity with float and with int8 weights.

With --device cuda it measures items 1, 3 (float: pruned against full) and 4 at 1, 32 and 128
clients on the GPU. Every client sends a fixed number of requests and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.records import write_record
from bench.serve import generation_throughput
from tests.live_server import ROOT, uvicorn_server

TRUNCATING = {"temperature": 0.9, "top_k": 50, "top_p": 0.95}
SAMPLINGS = {"default": {}, "T0.9 k50 p0.95": TRUNCATING}
BATCHES = (1, 32)
COPY_BYTES = 512 * 2**20


def copy_bandwidth(device: str, repeats: int = 10) -> float:
    """Bytes/s of a large tensor copy on device (bytes read plus bytes written), median."""
    import torch

    source = torch.ones(COPY_BYTES // 4, device=device)
    target = torch.empty_like(source)
    times = []
    for _ in range(repeats + 2):
        _synchronize(device)
        started = time.perf_counter()
        target.copy_(source)
        _synchronize(device)
        times.append(time.perf_counter() - started)
    return 2 * COPY_BYTES / statistics.median(times[2:])


def _synchronize(device: str) -> None:
    """Wait for the device's queued work (nothing to wait for on the CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decoding_runner(loaded, batch: int, sampling: dict, prune: bool):
    """A Runner holding batch endless generations (seeds 0..batch-1) past their <eos>."""
    from model.decoding import Decoding
    from model.rows import GenerateRow
    from model.runner import Runner
    from model.sampling import SamplingOptions
    from model.tokenizers import build_tokenizer

    runner = Runner(loaded, prune=prune)
    tokenizer, eos = build_tokenizer(loaded.tokenizer_spec), loaded.vocab.eos_id
    rows = []
    for seed in range(batch):
        options = SamplingOptions(**sampling, max_new_tokens=10**9, seed=seed, ignore_eos=True)
        rows.append(GenerateRow(Decoding([], [], options, eos, tokenizer), 0))
    runner.add(rows)
    runner.step()  # every row reads its <eos>: from here on a step decodes one token a row
    return runner


BLOCK = 25  # steps a kind runs in a row: its weights stay warm in the caches as in a server


def step_ms(kinds: dict[str, object], device: str, steps: int) -> dict[str, float]:
    """Median ms of Runner.step for each named runner. The kinds take turns in blocks of
    BLOCK steps (the first 5 of a block not counted): one kind's weights do not evict
    another's from the caches at every step, as they would not in a server running one, and
    a change in the machine's load still falls on all kinds alike."""
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(-(-steps // (BLOCK - 5))):
        for name, runner in kinds.items():
            for step in range(BLOCK):
                _synchronize(device)
                started = time.perf_counter()
                runner.step()  # type: ignore[attr-defined]
                _synchronize(device)
                if step >= 5:
                    times[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def live_tokens_per_s(
    checkpoint: Path, log_dir: Path, env: dict[str, str], clients: tuple[int, ...], requests: int
) -> dict[int, dict]:
    """Generated tokens/s (and refused requests) of a live server at each client count."""
    results: dict[int, dict] = {}
    with uvicorn_server(checkpoint, log_dir, max_waiting="4096", **env) as url:
        generation_throughput(url, 4, 4, {})  # warm-up
        for count in clients:
            load = generation_throughput(url, count, max(requests, 2 * count), {})
            results[count] = {
                "tokens_per_s": load.tokens / load.seconds,
                "errors": load.errors,
                "requests": load.requests,
            }
            print(f"  {env} {count:3} clients: {load.tokens / load.seconds:8.0f} tok/s", flush=True)
    return results


def run(args: argparse.Namespace) -> dict:
    """Every measurement, as one JSON-able dict."""
    import torch

    from model.evaluate.cli import evaluate
    from model.hardware import describe_cpu
    from model.quantize import weight_bytes
    from model.served import load_served_model

    device = args.device
    on_gpu = device.startswith("cuda")
    torch.set_num_threads(args.threads)
    machine = torch.cuda.get_device_name(device) if on_gpu else describe_cpu()
    print(f"Machine: {machine}.", flush=True)
    record: dict = {"machine": machine, "device": device, "checkpoint": str(args.checkpoint)}
    bandwidth = copy_bandwidth(device)
    record["bandwidth_GBps"] = bandwidth / 1e9
    default_weights = "none" if on_gpu else "int8"
    models = {
        weights: load_served_model(args.checkpoint, device, weights)
        for weights in {"none", default_weights}
    }
    record["weight_bytes"] = {w: weight_bytes(m.model) for w, m in models.items()}
    record["limit_ms"] = {w: 1000 * b / bandwidth for w, b in record["weight_bytes"].items()}
    print(f"bandwidth {bandwidth / 1e9:.1f} GB/s; limits {record['limit_ms']}", flush=True)
    record["steps"] = {}
    with torch.inference_mode():
        for sampling_name, sampling in SAMPLINGS.items():
            for batch in BATCHES:
                kinds = {
                    "default": decoding_runner(models[default_weights], batch, sampling, True),
                    "float, full": decoding_runner(models["none"], batch, sampling, False),
                }
                timing = step_ms(kinds, device, args.steps)
                record["steps"][f"{sampling_name}/{batch}"] = timing
                print(f"step {sampling_name} batch {batch}: {timing}", flush=True)
    clients = (1, 32, 128) if on_gpu else (1, 32)
    threads = str(args.threads)
    common = {"threads": threads, "device": device, "max_new_tokens": "1024"}
    record["live"] = {
        "default": live_tokens_per_s(args.checkpoint, args.log_dir, common, clients, args.requests),
        "float, full": live_tokens_per_s(
            args.checkpoint,
            args.log_dir,
            {**common, "quantize": "none", "output": "full"},
            clients,
            args.requests,
        ),
    }
    if not on_gpu and not args.skip_perplexity:
        record["perplexity"] = {
            w: float(evaluate(m, split="test")["perplexity"]) for w, m in models.items()
        }
        print(f"perplexity {record['perplexity']}", flush=True)
    return record


def floors(record: dict) -> list[tuple[str, bool]]:
    """The issue's floors, each with whether this run meets it."""
    checks = []
    steps, limits = record["steps"], record["limit_ms"]
    if "int8" in limits:
        batch_one = steps["default/1"]["default"]
        checks.append(
            (
                f"batch-1 default step {batch_one:.3f} ms ≤ 3 × the int8 weight-read time "
                f"({3 * limits['int8']:.3f} ms)",
                batch_one <= 3 * limits["int8"],
            )
        )
    live = record["live"]
    ratio = live["default"][32]["tokens_per_s"] / live["float, full"][32]["tokens_per_s"]
    if "int8" in limits:
        checks.append((f"live server at 32 clients {ratio:.2f}× float full (≥ 2.5×)", ratio >= 2.5))
    if "perplexity" in record:
        change = 100 * abs(record["perplexity"]["int8"] / record["perplexity"]["none"] - 1)
        checks.append(
            (f"int8 test perplexity within {change:.3f}% of float (≤ 0.2%)", change <= 0.2)
        )
    return checks


def page(record: dict, command: str) -> str:
    """docs/bandwidth.md from a record."""
    limits, weights = record["limit_ms"], record["weight_bytes"]
    default = "int8" if "int8" in limits else "none"
    lines = [
        "# Decoding at the memory-bandwidth limit",
        "",
        f"`{command}` on {record['machine']}, checkpoint `{record['checkpoint']}`.",
        "",
        f"- **Bandwidth** (a 512 MiB tensor copy, read + written): "
        f"{record['bandwidth_GBps']:.1f} GB/s.",
        "- **Weights a full-distribution step reads as served** (recurrent and output layers; "
        "the embedding gives one row):",
    ]
    for name in sorted(weights):
        label = "int8 (default on the CPU)" if name == "int8" else "float"
        lines.append(
            f"  {label}: {weights[name] / 2**20:.2f} MiB, read in {limits[name]:.3f} ms at "
            "that bandwidth."
        )
    lines += [
        "",
        "## The service's decode step (Runner.step: network, output layer, sampling, events)",
        "",
        'Median ms over the steps; "default" is what the service runs (int8 weights on the CPU, '
        'the pruned output layer); "float, full" is float weights with the whole distribution '
        "every step (the service before this change).",
        "",
        "| sampling | batch | default ms | float, full ms | speed-up | default ÷ weight-read "
        f"time ({default}) | ÷ float weight-read time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, timing in record["steps"].items():
        sampling, batch = key.rsplit("/", 1)
        ours, base = timing["default"], timing["float, full"]
        lines.append(
            f"| {sampling} | {batch} | {ours:.3f} | {base:.3f} | {base / ours:.2f}× | "
            f"{ours / limits[default]:.2f} | {ours / limits['none']:.2f} |"
        )
    lines += [
        "",
        "## The live server (64-token generations, default sampling, loopback)",
        "",
        "| clients | default tokens/s | float, full tokens/s | ratio | refused (default / full) |",
        "|---:|---:|---:|---:|---:|",
    ]
    live = record["live"]
    for clients, ours in live["default"].items():
        base = live["float, full"][clients]
        lines.append(
            f"| {clients} | {ours['tokens_per_s']:,.0f} | {base['tokens_per_s']:,.0f} | "
            f"{ours['tokens_per_s'] / base['tokens_per_s']:.2f}× | {ours['errors']} / "
            f"{base['errors']} |"
        )
    if "perplexity" in record:
        ppl = record["perplexity"]
        lines += [
            "",
            f"Test-split perplexity: float {ppl['none']:.2f}, int8 {ppl['int8']:.2f} "
            f"({100 * (ppl['int8'] / ppl['none'] - 1):+.3f}%).",
        ]
    lines += ["", "## Floors", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in floors(record)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, bench and server")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per kind")
    parser.add_argument("--requests", type=int, default=64, help="requests per client count")
    parser.add_argument("--skip-perplexity", action="store_true", help="no test-split figures")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "bandwidth.md")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/nextword-bench-logs"))
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    record = run(args)
    command = "python -m bench.bandwidth --checkpoint " + str(args.checkpoint)
    if args.device != "cpu":
        command += f" --device {args.device}"
    record["command"] = command
    args.output.write_text(page(record, str(command)), encoding="utf-8")
    write_record(args.output.with_suffix(".json"), record)
    print(page(record, command))


if __name__ == "__main__":
    main()
