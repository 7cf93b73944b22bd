"""Choose the context and the continuous cache of a checkpoint on its VALID split, and record
them in its config.json (key "inference"), where `model.evaluate --cache` and the service read
them: `python -m model.evaluate.tune_cache --checkpoint DIR [--context line|document]`.

The valid split is read once per context (each target's feature and model log-probability);
every grid point after that is cache arithmetic only. `--dynamic` also searches the dynamic
evaluation's step size and decay (slow: a backward pass per segment), on the first lines.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    update_inference_config,
)
from model.evaluate.cli import add_checkpoint_flags, split_files_of, split_ids
from model.evaluate.dynamic import DynamicConfig, read_document_dynamic
from model.pointer_cache import CacheConfig, mix_log_probs
from model.scoring import (
    CONTEXTS,
    Reading,
    cache_target_log_probs,
    line_starts,
    read_split,
)


@dataclass
class GridPoint:
    """One row of the table: the settings and the valid perplexity they give."""

    context: str
    scope: str  # where the cache starts empty: every line, or once for the split
    cache: CacheConfig | None
    perplexity: float


def cache_grid(
    reading: Reading,
    context: str,
    scope: str,
    windows: list[int],
    thetas: list[float],
    lambdas: list[float],
    unk_id: int,
    unk_takes_mass: bool = False,
) -> list[GridPoint]:
    """Valid perplexity of every (window, theta, lambda) on one reading, whose segment_starts
    say the scope. The cache's votes depend only on window and theta; each lambda is one more
    mix."""
    points = []
    for window, theta in itertools.product(windows, thetas):
        probe = CacheConfig(window, theta, 0.0, unk_takes_mass)
        cache_logp, seen = cache_target_log_probs(reading, probe, unk_id)
        for lam in lambdas:
            mixed = mix_log_probs(reading.log_probs, cache_logp, seen, lam)
            config = CacheConfig(window, theta, lam, unk_takes_mass)
            points.append(GridPoint(context, scope, config, reading.perplexity(mixed)))
    return points


def context_grid(
    reading: Reading, context: str, line_offsets: list[int], args: argparse.Namespace, unk_id: int
) -> list[GridPoint]:
    """The model alone, then the cache grid in each scope the context allows: a line-context
    reading takes a cache per line or one across the split; a document reading, whose state
    runs across lines, takes a cache that does too."""
    points = [GridPoint(context, context, None, reading.perplexity())]
    for scope in CONTEXTS if context == "line" else ("document",):
        reading.segment_starts = line_offsets if scope == "line" else [0]
        points += cache_grid(
            reading,
            context,
            scope,
            args.windows,
            args.thetas,
            args.lambdas,
            unk_id,
            args.unk_takes_mass,
        )
    return points


def dynamic_grid(
    checkpoint: Checkpoint, ids: Sequence[Sequence[int]], lrs: list[float], decays: list[float]
) -> list[tuple[DynamicConfig, float]]:
    """Perplexity of dynamic evaluation for every (lr, decay) on the given lines."""
    results = []
    for lr, decay in itertools.product(lrs, decays):
        config = DynamicConfig(lr, decay)
        reading = read_document_dynamic(checkpoint.model, ids, checkpoint.vocab.eos_id, config)
        results.append((config, reading.perplexity()))
    return results


def format_point(point: GridPoint) -> str:
    """One table row."""
    c = point.cache
    settings = ("-", "-", "-") if c is None else (c.window, c.theta, c.lam)
    return (
        f"{point.context:>8}  {point.scope if c else '-':>8}  {settings[0]:>6}  {settings[1]:>5}  "
        f"{settings[2]:>6}  {point.perplexity:9.2f}"
    )


def check_grid(args: argparse.Namespace) -> None:
    """Raise ValueError, before any reading, on a grid value the configs refuse."""
    for window, theta in itertools.product(args.windows, args.thetas):
        CacheConfig(window, theta, 0.0)
    for lam in args.lambdas:
        CacheConfig(1, 0.0, lam)
    for lr, decay in itertools.product(args.dynamic_lrs, args.dynamic_decays):
        DynamicConfig(lr, decay)


def choose(points: list[GridPoint], tolerance: float) -> GridPoint:
    """The point to record: the smallest cache window whose valid perplexity is within
    `tolerance` (a fraction) of the best, and the best of those. A served sequence reads its
    whole window at every token and holds it in memory, so a window that buys almost nothing
    is not worth its cost; without a cache in reach, the best point."""
    best = min(points, key=lambda p: p.perplexity)
    close = [p for p in points if p.perplexity <= best.perplexity * (1 + tolerance)]
    return min(close, key=lambda p: (p.cache.window if p.cache else 0, p.perplexity))


def build_parser() -> argparse.ArgumentParser:
    """The command line's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate.tune_cache", description=__doc__.split("\n")[0]
    )
    add_checkpoint_flags(parser)
    parser.add_argument(
        "--context", choices=CONTEXTS, help="search only this context (default: both)"
    )
    parser.add_argument(
        "--windows", type=int, nargs="+", default=[100, 300, 1000], help="cache sizes W"
    )
    parser.add_argument(
        "--thetas", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.8], help="flatness"
    )
    parser.add_argument(
        "--lambdas",
        type=float,
        nargs="+",
        default=[0.05, 0.1, 0.15, 0.2, 0.3],
        help="cache interpolation weights",
    )
    parser.add_argument(
        "--unk-takes-mass",
        action="store_true",
        help="let <unk> targets take cache mass (flatters the figure; default: they do not)",
    )
    parser.add_argument(
        "--dynamic", action="store_true", help="also tune dynamic evaluation (slow)"
    )
    parser.add_argument(
        "--dynamic-lrs", type=float, nargs="+", default=[0.1, 0.3, 1.0], help="SGD step sizes"
    )
    parser.add_argument(
        "--dynamic-decays",
        type=float,
        nargs="+",
        default=[0.0, 0.001, 0.01],
        help="pulls toward the trained weights",
    )
    parser.add_argument(
        "--dynamic-lines", type=int, default=200, help="valid lines the dynamic search reads"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="record the smallest window within this fraction of the best valid perplexity (a "
        "served row reads its whole window at every token: on the large model, W 1000 instead "
        "of 300 cost 1.48x the step for 0.7%% on valid)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the table, leave config.json alone"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="lines per batch (line mode)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints the grid, records the winner."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        checkpoint = load_checkpoint(args.checkpoint, args.device)
        check_grid(args)
        source, ids = split_ids(
            checkpoint,
            args.corpus,
            "valid",
            split_files_of(args),
            args.text_field,
            args.cache_dir,
        )
    except (CheckpointError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    model, vocab = checkpoint.model, checkpoint.vocab
    print(f"valid split of {source}: {len(ids):,} lines")
    points: list[GridPoint] = []
    header = ("context", "scope", "window", "theta", "lambda", "valid ppl")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, (8, 8, 6, 5, 6, 9), strict=True)))
    for context in [args.context] if args.context else list(CONTEXTS):
        reading = read_split(model, ids, vocab.eos_id, context, args.batch_size)
        grid = context_grid(reading, context, line_starts(ids), args, vocab.unk_id)
        for point in grid:
            print(format_point(point), flush=True)
        points += grid
    best = choose(points, args.tolerance)
    inference: dict = {
        "context": best.context,
        "cache_scope": best.scope,
        "cache": best.cache and best.cache.to_dict(),
    }
    print(f"chosen (smallest window within {100 * args.tolerance:g}% of the best): "
          f"{format_point(best).strip()}")  # fmt: skip
    if args.dynamic:
        lines = ids[: args.dynamic_lines]
        print(f"dynamic evaluation on the first {len(lines)} valid lines (document context):")
        results = dynamic_grid(checkpoint, lines, args.dynamic_lrs, args.dynamic_decays)
        for config, ppl in results:
            print(f"  lr {config.lr:<6} decay {config.decay:<6} valid ppl {ppl:9.2f}", flush=True)
        inference["dynamic"] = min(results, key=lambda r: r[1])[0].to_dict()
    if not args.dry_run:
        update_inference_config(checkpoint.directory, inference)
        print(f"wrote inference settings to {checkpoint.directory / 'config.json'}")


if __name__ == "__main__":
    main()
