"""Serving benchmark: a real uvicorn on loopback, driven by a bounded load generator.

    python -m bench.serve --checkpoint checkpoints/default --int8   # docs/serve-bench.*

1. generated tokens/s with 1, 8, 32 and 64 concurrent /generate clients (max_new_tokens 64),
   batching on (NEXTWORD_MAX_BATCH_SIZE=64) and off (=1: one sequence per forward, same build);
2. ms per generated token (between streamed tokens) at output lengths 16, 128 and 512;
3. /predict-next requests/s and p50/p99 latency at 32 concurrent clients;
4. the bare model step, no server: the network alone, then the service's own step
   (model/runner.py's Runner.step over decoding rows: network, sampling, events), and the same
   step with the checkpoint's cache pointer (each row's cache full: W pairs) where it has one,
   at batch 1 and 32;
5. with --int8: the same step and the test-split perplexity with NEXTWORD_QUANTIZE=int8.

`--bare-only` measures item 4 (and 5) alone, written to docs/cache-cost.*: `python -m
bench.serve --bare-only --checkpoint DIR` is the cache's cost in ms per generated token.

Every client sends a fixed number of requests, so the load is bounded in count; nothing leaves
127.0.0.1. The serving floors are checked at the end of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.records import write_record
from tests.live_server import ROOT, uvicorn_server

CLIENTS = (1, 8, 32, 64)
LENGTHS = (16, 128, 512)
SAMPLING = {"temperature": 0.9, "top_k": 50, "top_p": 0.95}  # every generation, and the bare step


# -- load -------------------------------------------------------------------------------------
@dataclass
class Load:
    """What a bounded load produced."""

    seconds: float
    requests: int
    errors: int
    tokens: int
    latencies: list[float]


async def _drive(url: str, path: str, body: dict, clients: int, per_client: int) -> Load:
    """`clients` concurrent clients each sending `per_client` requests, one after another."""
    latencies: list[float] = []
    tokens = errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:

        async def client() -> None:
            nonlocal tokens, errors
            for _ in range(per_client):
                started = time.perf_counter()
                response = await http.post(path, json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1
                elif "usage" in response.json():
                    tokens += response.json()["usage"]["generated_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return Load(seconds, clients * per_client, errors, tokens, latencies)


def generation_throughput(url: str, clients: int, requests: int, sampling: dict = SAMPLING) -> Load:
    """Tokens/s of `clients` concurrent clients generating 64 tokens a request (sampling: the
    requests' sampling fields; {} samples as a request does by default)."""
    body = {"prompt": "我们", "max_new_tokens": 64, "ignore_eos": True, "seed": 1, **sampling}
    per_client = max(1, requests // clients)
    return asyncio.run(_drive(url, "/generate", body, clients, per_client))


def predict_latency(url: str, clients: int, per_client: int) -> Load:
    """/predict-next under `clients` concurrent clients."""
    body = {"text": "中国人民银行今天宣布", "top_k": 10}
    return asyncio.run(_drive(url, "/predict-next", body, clients, per_client))


def ms_per_token(url: str, length: int, repeats: int) -> float:
    """Median time between two streamed tokens of one client's generations of `length` tokens
    (the decode phase: the prompt and the HTTP round trip are left out; the median keeps
    other work on a shared machine out of the figure)."""
    body = {"prompt": "我们", "max_new_tokens": length, "ignore_eos": True, "stream": True}
    gaps: list[float] = []
    for seed in range(repeats):
        arrivals = []
        request = {**body, **SAMPLING, "seed": seed}
        with httpx.stream("POST", f"{url}/generate", json=request, timeout=300) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and '"token"' in line:
                    arrivals.append(time.perf_counter())
        gaps += [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return statistics.median(gaps)


# -- the model alone ----------------------------------------------------------------------------
def bare_step_ms(checkpoint: Path, batch: int, quantize: str, steps: int = 200) -> dict[str, float]:
    """Median ms of one batched decode step without the server: the network alone (forward
    and output distribution), the service's own step (model/runner.py: the network, the
    bench's sampling, each row's events) and, where the checkpoint has a cache pointer, that
    step with each row's cache full (W pairs) mixed in and the new pair stored."""
    import torch

    from model.served import load_served_model

    loaded = load_served_model(checkpoint, quantize=quantize)
    model, eos = loaded.model, loaded.vocab.eos_id
    runners = {"step": _decoding_runner(loaded, batch, cached=False)}
    if runners["step"].cache_config is not None:
        runners["cache step"] = _decoding_runner(loaded, batch, cached=True)
    state, tokens = model.init_state(batch), torch.full((batch, 1), eos)
    durations: dict[str, list[float]] = {name: [] for name in ("network", *runners)}
    with torch.inference_mode():
        # the kinds take turns step by step, so a change in the machine's load (another
        # process, a frequency step) falls on all of them alike and their ratios hold
        for _ in range(steps + 20):  # the first 20 warm up
            started = time.perf_counter()
            features, state = model(tokens, state)
            model.log_probs(features[:, -1]).float()
            durations["network"].append(time.perf_counter() - started)
            for name, runner in runners.items():
                started = time.perf_counter()
                runner.step()
                durations[name].append(time.perf_counter() - started)
    return {name: statistics.median(times[20:]) * 1000 for name, times in durations.items()}


def _decoding_runner(loaded, batch: int, cached: bool):
    """A Runner holding batch endless generations (the bench's sampling, seeds 0..batch-1)
    that have read their prompt; with cached, each row's cache already full of W pairs of
    plausible features: the dearest case."""
    import torch

    from model.decoding import Decoding
    from model.rows import GenerateRow
    from model.runner import Runner
    from model.sampling import SamplingOptions
    from model.tokenizers import build_tokenizer

    runner = Runner(loaded)
    tokenizer, eos = build_tokenizer(loaded.tokenizer_spec), loaded.vocab.eos_id
    rows = []
    for seed in range(batch):
        options = SamplingOptions(**SAMPLING, max_new_tokens=10**9, seed=seed, ignore_eos=True)
        cache = runner.new_cache(cached)
        if cache is not None:
            with torch.inference_mode():
                ids = torch.randint(0, min(2000, len(loaded.vocab)), (cache.config.window + 1,))
                features, _ = loaded.model(ids[None])
                cache.extend(features[0, :-1].float(), ids[1:])
        rows.append(GenerateRow(Decoding([], [], options, eos, tokenizer), 0, cache))
    runner.add(rows)
    runner.step()  # every row reads its <eos>: from here on, each step decodes one token a row
    return runner


def split_perplexity(checkpoint: Path, quantize: str) -> float:
    """Test-split perplexity of the checkpoint (quantised or not), as python -m model.evaluate
    reads it."""
    from model.evaluate.cli import evaluate
    from model.served import load_served_model

    served = load_served_model(checkpoint, quantize=quantize)
    return float(evaluate(served, split="test")["perplexity"])


# -- report -------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    """Every measurement, as one JSON-able dict."""
    from model.hardware import describe_cpu  # torch: not for the tests that import live_server

    results: dict = {"throughput": {}, "ms_per_token": {}, "checkpoint": str(args.checkpoint)}
    results["machine"] = describe_cpu()
    print(f"Machine: {results['machine']}.", flush=True)
    threads = str(args.threads)
    for mode, batch in () if args.bare_only else (("batched", "64"), ("unbatched", "1")):
        with uvicorn_server(
            args.checkpoint,
            args.log_dir,
            max_batch_size=batch,
            max_waiting="256",
            threads=threads,
            max_new_tokens="1024",
        ) as url:
            generation_throughput(url, 4, 4)  # warm-up
            for clients in CLIENTS:
                load = generation_throughput(url, clients, args.requests)
                results["throughput"][f"{mode}/{clients}"] = {
                    "tokens_per_s": load.tokens / load.seconds,
                    "errors": load.errors,
                    "requests": load.requests,
                }
                print(
                    f"{mode:9} {clients:2} clients: {load.tokens / load.seconds:8.0f} tok/s",
                    flush=True,
                )
            if mode == "batched":
                for length in LENGTHS:
                    results["ms_per_token"][length] = ms_per_token(url, length, args.repeats)
                    print(
                        f"length {length}: {results['ms_per_token'][length]:.3f} ms/token",
                        flush=True,
                    )
                load = predict_latency(url, 32, args.predict_per_client)
                ordered = sorted(load.latencies)
                results["predict"] = {
                    "requests_per_s": load.requests / load.seconds,
                    "errors": load.errors,
                    "p50_ms": 1000 * ordered[len(ordered) // 2],
                    "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
                }
                print(f"predict-next: {results['predict']}", flush=True)
    import torch

    from model.checkpoint import load_checkpoint, load_inference_config

    torch.set_num_threads(args.threads)
    cache = load_inference_config(load_checkpoint(args.checkpoint))[1]
    results["cache"] = cache.to_dict() if cache is not None else None
    modes = ("none", "int8") if args.int8 else ("none",)
    results["bare"] = {
        f"{q}/{b}": bare_step_ms(args.checkpoint, b, q) for q in modes for b in (1, 32)
    }
    if args.int8:
        results["perplexity"] = {q: split_perplexity(args.checkpoint, q) for q in modes}
    return results


def floors(results: dict) -> list[tuple[str, str, bool]]:
    """The serving floors that the results measure: (what, measured, met)."""
    bare = results["bare"]
    cached = []
    if "cache step" in bare["none/32"]:
        ratio = bare["none/32"]["cache step"] / bare["none/32"]["step"]
        cached = [("cache: ms/token at batch 32 ≤ 1.3× without", f"{ratio:.2f}×", ratio <= 1.3)]
    if not results["throughput"]:
        return cached
    batched = results["throughput"]["batched/32"]
    unbatched = results["throughput"]["unbatched/32"]
    speedup = batched["tokens_per_s"] / unbatched["tokens_per_s"]
    growth = results["ms_per_token"][512] / results["ms_per_token"][16]
    overhead = results["ms_per_token"][512] / results["bare"]["none/1"]["step"]
    errors = batched["errors"] + unbatched["errors"]
    return [
        (
            "32 clients: batched ≥ 5× unbatched, no errors",
            f"{speedup:.1f}×, {errors} errors",
            speedup >= 5 and errors == 0,
        ),
        ("ms/token at 512 ≤ 1.2× at 16", f"{growth:.2f}×", growth <= 1.2),
        ("1 client: ms/token ≤ 1.3× bare step", f"{overhead:.2f}×", overhead <= 1.3),
        *cached,
    ]


def markdown(results: dict) -> str:
    """The Markdown report."""
    out = [
        "# Serving benchmark",
        "",
        f"Machine: {results.get('machine', 'not recorded')}.",
        f"Checkpoint `{results['checkpoint']}`"
        + (", one uvicorn worker on 127.0.0.1" if results["throughput"] else "")
        + ", `python -m bench.serve` (see bench/serve.py).",
    ]
    if results.get("cache"):
        cache = results["cache"]
        out.append(
            f"Its cache: W {cache['window']}, theta {cache['theta']}, lambda {cache['lam']}; "
            "the bare steps take turns step by step, medians of 200 steps after 20 warm-up ones."
        )
    if results["throughput"]:
        out += _server_sections(results)
    out += _bare_section(results)
    out += ["", "## Floors", "", "| floor | measured | met |", "|---|---|---|"]
    out += [
        f"| {what} | {value} | {'yes' if met else 'NO'} |" for what, value, met in floors(results)
    ]
    return "\n".join(out) + "\n"


def _server_sections(results: dict) -> list[str]:
    """Throughput, ms per token and /predict-next latency, measured through the server."""
    out = [
        "",
        "## Generated tokens/s (max_new_tokens 64)",
        "",
        "| clients | batched | unbatched | speed-up |",
        "|---:|---:|---:|---:|",
    ]
    for clients in CLIENTS:
        on = results["throughput"][f"batched/{clients}"]["tokens_per_s"]
        off = results["throughput"][f"unbatched/{clients}"]["tokens_per_s"]
        out.append(f"| {clients} | {on:.0f} | {off:.0f} | {on / off:.1f}× |")
    out += [
        "",
        "## ms per generated token, one client (between streamed tokens)",
        "",
        "| output length | ms/token |",
        "|---:|---:|",
    ]
    out += [f"| {n} | {ms:.3f} |" for n, ms in results["ms_per_token"].items()]
    p = results["predict"]
    out += [
        "",
        "## /predict-next, 32 concurrent clients",
        "",
        "| requests/s | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|",
        f"| {p['requests_per_s']:.0f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} |",
    ]
    return out


def _bare_section(results: dict) -> list[str]:
    """The bare step's table (with the cache's cost where measured) and int8's perplexity."""
    out = [
        "",
        "## The bare model step (no server)",
        "",
        "The network alone (forward and output distribution), then the service's own step "
        "(model/runner.py: network, sampling and each row's events) without and with each row's "
        "cache full.",
        "",
        "| weights | batch | network ms | step ms | step with cache ms | cache cost |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, timing in results["bare"].items():
        quantize, batch = key.split("/")
        cached = timing.get("cache step")
        cache_cells = f"{cached:.3f} | {cached / timing['step']:.2f}×" if cached else "no cache | —"
        out.append(
            f"| {quantize} | {batch} | {timing['network']:.3f} | {timing['step']:.3f} | "
            f"{cache_cells} |"
        )
    if "perplexity" in results:
        ppl = results["perplexity"]
        change = 100 * (ppl["int8"] / ppl["none"] - 1)
        out += [
            "",
            "## int8 (NEXTWORD_QUANTIZE=int8)",
            "",
            f"Test-split perplexity: float {ppl['none']:.2f}, int8 {ppl['int8']:.2f} "
            f"({change:+.2f}%).",
        ]
    return out


def chart(results: dict, path: Path) -> None:
    """Two panels: tokens/s against clients, ms/token against output length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in ("batched", "unbatched"):
        values = [results["throughput"][f"{mode}/{c}"]["tokens_per_s"] for c in CLIENTS]
        left.plot(CLIENTS, values, marker="o", label=mode)
    left.set(
        xscale="log",
        xlabel="concurrent clients",
        ylabel="generated tokens/s",
        title="Throughput (max_new_tokens 64)",
    )
    left.set_xticks(CLIENTS, [str(c) for c in CLIENTS])
    left.minorticks_off()
    left.legend()
    lengths = list(results["ms_per_token"])
    right.plot(lengths, list(results["ms_per_token"].values()), marker="o", label="server")
    right.axhline(results["bare"]["none/1"]["step"], linestyle="--", label="bare step")
    right.set(
        xscale="log",
        xlabel="output length (tokens)",
        ylabel="ms per token",
        title="One client: cost per token",
        ylim=(0, None),
    )
    right.set_xticks(lengths, [str(n) for n in lengths])
    right.minorticks_off()
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=ROOT / "checkpoints/default",
        help="checkpoint directory to serve",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads, server and bare step (1: the load generator needs a core too)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=128,
        help="/generate requests per throughput point (split over the clients)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="generations per output length")
    parser.add_argument(
        "--predict-per-client", type=int, default=20, help="/predict-next requests per client"
    )
    parser.add_argument(
        "--int8", action="store_true", help="also measure int8: bare step and test-split perplexity"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="writes OUTPUT.md, OUTPUT.png and OUTPUT.json (default: docs/serve-bench, or "
        "docs/cache-cost with --bare-only)",
    )
    parser.add_argument(
        "--bare-only", action="store_true", help="only the bare step (and --int8): no server"
    )
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"), help="server logs")
    args = parser.parse_args(argv)
    page = "docs/cache-cost" if args.bare_only else "docs/serve-bench"
    args.output = args.output or ROOT / page
    results = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_record(args.output.with_suffix(".json"), results)
    args.output.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    if results["throughput"]:
        chart(results, args.output.with_suffix(".png"))
    print(markdown(results))


if __name__ == "__main__":
    main()
