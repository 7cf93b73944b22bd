"""What the continuous cache costs the service per generated token: milliseconds of one
`mix_rows` over a batch whose every cache is full, beside one model step of the same batch
(forward one token from a state, then the full next-token log-distribution).

    python -m bench.cache_speed --checkpoint checkpoints/default --batch 32 --windows 500 2000

Each row is the median of --repeats timed calls after one warm-up call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from model.hardware import describe_cpu
from model.pointer_cache import CacheConfig, PointerCache, mix_rows
from model.served import load_served_model


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of call() in milliseconds, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def full_caches(batch: int, window: int, feature_size: int, vocab_size: int) -> list[PointerCache]:
    """batch caches holding `window` random pairs each (the cost depends on sizes only)."""
    generator = torch.Generator().manual_seed(0)
    caches = [PointerCache(CacheConfig(window, 0.3, 0.1), feature_size, 0) for _ in range(batch)]
    for cache in caches:
        cache.score_targets(
            torch.randn(window, feature_size, generator=generator),
            torch.zeros(window),
            torch.randint(1, vocab_size, (window,), generator=generator),
        )
    return caches


@torch.inference_mode()
def measure(checkpoint_dir: str, batch: int, windows: list[int], repeats: int) -> list[str]:
    """The table's lines: the model step, then mix_rows per window."""
    model = load_served_model(checkpoint_dir).model  # the weights the service runs here
    state = model.init_state(batch)
    tokens = torch.randint(0, model.config.vocab_size, (batch, 1))

    def step() -> torch.Tensor:
        features, _ = model(tokens, state)
        return model.log_probs(features[:, -1])

    log_probs = step()
    features = model(tokens, state)[0][:, -1]
    lines = [
        f"batch {batch}, vocabulary {model.config.vocab_size:,}, features "
        f"{model.config.feature_size}; {describe_cpu()}",
        "| what | window | ms | MiB of cache per row |",
        "|---|---:|---:|---:|",
        f"| model step (forward + log_probs) | - | {median_ms(step, repeats):.2f} | - |",
    ]
    for window in windows:
        caches = full_caches(batch, window, model.config.feature_size, model.config.vocab_size)
        ms = median_ms(lambda c=caches: mix_rows(c, features, log_probs), repeats)
        lines.append(f"| mix_rows | {window} | {ms:.2f} | {caches[0].nbytes / 2**20:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints a markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.cache_speed", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--batch", type=int, default=32, help="rows (streams) in the batch")
    parser.add_argument(
        "--windows", type=int, nargs="+", default=[100, 500, 1000, 2000], help="cache sizes W"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per row")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for line in measure(args.checkpoint, args.batch, args.windows, args.repeats):
        print(line, flush=True)


if __name__ == "__main__":
    main()
