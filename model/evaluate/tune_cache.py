"""Choose the context and the continuous cache of a checkpoint on its VALID split, and record
them in its config.json (key "inference"), where `model.evaluate --cache` and the service read
them: `python -m model.evaluate.tune_cache --checkpoint DIR [--context line|document]`.

Every setting is judged on two kinds of text together, their targets pooled: the valid split
read in the setting's context and scope (a cache that fills up), and the valid lines each read
alone with a cache of its own (a one-line request: a cache that holds a handful of words). The
cache's weight grows with what it holds, lam · n / (n + half_fill), and is 0 until it holds
min_fill pairs, so both can be served well.

The valid split is read once per context (each target's feature and model log-probability);
every grid point after that is cache arithmetic only. A progress bar runs while the grid is
tried, then the five best points and the one recorded are printed (`--grid-file` keeps every
point). `--dynamic` also searches the dynamic evaluation's step size and decay (slow: a
backward pass per segment), on the first lines.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

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
    perplexity_of,
    read_split,
)

TUNING_TOKENS = 200_000  # peoples-daily's valid split (about 48,000) is read whole
Votes = tuple[torch.Tensor, torch.Tensor]  # (log p_cache (N,), usable pairs held (N,))


@dataclass
class GridPoint:
    """One row of the table: the settings and the valid perplexities they give."""

    context: str
    scope: str  # where the cache starts empty: every line, or once for the split
    cache: CacheConfig | None
    perplexity: float  # the valid split read in this context, the cache in this scope
    alone: float  # the valid lines each read alone, each with a fresh cache
    joint: float  # both readings' targets pooled: what the choice minimises


def scored_point(
    context: str, scope: str, cache: CacheConfig | None, read: torch.Tensor, alone: torch.Tensor
) -> GridPoint:
    """The grid point of these settings, from the log-probabilities of every valid target (N,)
    in the two readings."""
    joint, _ = perplexity_of([read, alone])
    return GridPoint(
        context, scope, cache, perplexity_of([read])[0], perplexity_of([alone])[0], joint
    )


@dataclass
class Search:
    """What the grid reads: the valid split in each context searched, the lines alone (the line
    reading, a cache per line), and the grid's values."""

    readings: dict[str, Reading]  # context → its reading, segment_starts per line
    alone: Reading
    windows: list[int]
    thetas: list[float]
    lambdas: list[float]
    half_fills: list[float]
    min_fills: list[int]
    unk_id: int
    unk_takes_mass: bool = False

    def scopes(self) -> Iterator[tuple[str, str, Reading]]:
        """(context, scope, reading whose segment_starts say the scope): a line-context reading
        takes a cache per line or one across the split; a document reading, whose state runs
        across lines, takes a cache that does too."""
        for context, reading in self.readings.items():
            for scope in CONTEXTS if context == "line" else ("document",):
                starts = self.alone.segment_starts if scope == "line" else [0]
                yield context, scope, replace(reading, segment_starts=starts)

    def size(self) -> int:
        """Grid points with a cache."""
        weights = len(self.lambdas) * len(self.half_fills) * len(self.min_fills)
        settings = len(self.windows) * len(self.thetas) * weights
        return sum(1 for _ in self.scopes()) * settings

    def points(self) -> list[GridPoint]:
        """Every context without a cache, then every (scope, window, theta, lambda, half fill,
        min fill),
        with a progress bar over the settings. The cache's votes depend only on the reading,
        window and theta (the lines-alone votes are computed once for all scopes); each weight
        is one more mix."""
        points = [
            scored_point(context, context, None, reading.log_probs, self.alone.log_probs)
            for context, reading in self.readings.items()
        ]
        alone_votes: dict[tuple[int, float], Votes] = {}
        with tqdm(total=self.size(), desc="cache settings", unit="setting") as progress:
            for (context, scope, reading), window, theta in itertools.product(
                self.scopes(), self.windows, self.thetas
            ):
                probe = CacheConfig(window, theta, 0.0, self.unk_takes_mass)
                if (window, theta) not in alone_votes:
                    alone_votes[window, theta] = cache_target_log_probs(
                        self.alone, probe, self.unk_id
                    )
                if reading.log_probs is self.alone.log_probs and scope == "line":
                    votes = alone_votes[window, theta]  # this reading is the lines alone
                else:
                    votes = cache_target_log_probs(reading, probe, self.unk_id)
                for lam, half_fill, min_fill in itertools.product(
                    self.lambdas, self.half_fills, self.min_fills
                ):
                    config = replace(probe, lam=lam, half_fill=half_fill, min_fill=min_fill)
                    read = mix_log_probs(reading.log_probs, *votes, config)
                    alone = mix_log_probs(self.alone.log_probs, *alone_votes[window, theta], config)
                    points.append(scored_point(context, scope, config, read, alone))
                    progress.update()
                progress.set_postfix(best=f"{min(p.joint for p in points):.2f}")
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


COLUMNS = (("context", 8), ("scope", 8), ("window", 6), ("theta", 5), ("lambda", 6),
           ("half", 5), ("min", 3), ("read", 9), ("alone", 9), ("joint", 9))  # fmt: skip


def table_header() -> str:
    """The header of the table's rows (format_point)."""
    return "  ".join(f"{name:>{width}}" for name, width in COLUMNS)


def format_point(point: GridPoint) -> str:
    """One table row: the settings, valid perplexity as read, of the lines alone, and joint."""
    c = point.cache
    settings = ("-",) * 5 if c is None else (c.window, c.theta, c.lam, c.half_fill, c.min_fill)
    values = (point.context, point.scope if c else "-", *settings)
    figures = (f"{point.perplexity:.2f}", f"{point.alone:.2f}", f"{point.joint:.2f}")
    return "  ".join(f"{v!s:>{w}}" for v, (_, w) in zip((*values, *figures), COLUMNS, strict=True))


def write_grid(points: list[GridPoint], path: Path) -> None:
    """Every grid point, one tab-separated row each under the table's header, to a file."""
    rows = [table_header().split()] + [format_point(p).split() for p in points]
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def check_grid(args: argparse.Namespace) -> None:
    """Raise ValueError, before any reading, on a grid value the configs refuse."""
    for window, theta in itertools.product(args.windows, args.thetas):
        CacheConfig(window, theta, 0.0)
    for lam, half_fill, min_fill in itertools.product(
        args.lambdas, args.half_fills, args.min_fills
    ):
        CacheConfig(1, 0.0, lam, half_fill=half_fill, min_fill=min_fill)
    for lr, decay in itertools.product(args.dynamic_lrs, args.dynamic_decays):
        DynamicConfig(lr, decay)


def choose(points: list[GridPoint], tolerance: float) -> GridPoint:
    """The point to record: among those whose joint valid perplexity is within `tolerance` (a
    fraction) of the best, the smallest cache window, then the largest min_fill, then the best
    joint. A served sequence reads its whole window at every token and holds it in memory, so a
    window that buys almost nothing is not worth its cost; a cache that speaks before a text
    can have repeated a word costs every word of a short request log(1 - λ), which the pooled
    valid targets barely see. Without a cache in reach, the best point."""
    best = min(points, key=lambda p: p.joint)
    close = [p for p in points if p.joint <= best.joint * (1 + tolerance)]
    return min(
        close,
        key=lambda p: (p.cache.window, -p.cache.min_fill, p.joint) if p.cache else (0, 0, p.joint),
    )


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
        "--valid-tokens",
        type=int,
        default=TUNING_TOKENS,
        help="tune on at most this many targets of the valid split, its first lines (every "
        "reading keeps a feature vector per target, so a large corpus's split would not fit)",
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
        default=[0.05, 0.1, 0.15, 0.2, 0.3, 0.4],
        help="cache interpolation weights (of a well-filled cache)",
    )
    parser.add_argument(
        "--half-fills",
        type=float,
        nargs="+",
        default=[0.0, 10.0, 30.0, 100.0, 300.0],
        help="pairs held at which the weight is half of lambda (0: constant lambda)",
    )
    parser.add_argument(
        "--min-fills",
        type=int,
        nargs="+",
        default=[0, 4, 8, 16],
        help="pairs the cache must hold before it speaks (0: from its first pair)",
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
    parser.add_argument(
        "--grid-file", type=Path, help="also write every grid point to this file (tab-separated)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="lines per batch (line mode)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: tries the grid, prints the best points, records the winner."""
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
    except (CheckpointError, ValueError, OSError) as error:  # a bad file or setting: one line
        raise SystemExit(f"error: {error}") from None
    model, vocab = checkpoint.model, checkpoint.vocab
    whole = len(ids)
    ids = ids.head(args.valid_tokens)
    print(f"valid split of {source}: {len(ids):,} of its {whole:,} lines")
    alone = read_split(model, ids, vocab.eos_id, "line", args.batch_size)
    contexts = [args.context] if args.context else list(CONTEXTS)
    readings = {
        context: alone if context == "line" else read_split(model, ids, vocab.eos_id, context)
        for context in contexts
    }
    grid = (args.windows, args.thetas, args.lambdas, args.half_fills, args.min_fills)
    search = Search(readings, alone, *grid, vocab.unk_id, args.unk_takes_mass)
    points = search.points()
    if args.grid_file:
        write_grid(points, args.grid_file)
        print(f"wrote all {len(points)} grid points to {args.grid_file}")
    best = choose(points, args.tolerance)
    print("perplexity on valid: as read in the context and scope, each line alone, both pooled")
    print(table_header())
    for point in sorted(points, key=lambda p: p.joint)[:5]:
        print(format_point(point))
    print("without a cache:")
    for point in (p for p in points if p.cache is None):
        print(format_point(point))
    print(
        f"chosen (within {100 * args.tolerance:g}% of the best joint: smallest window, then "
        f"largest min fill):"
    )
    print(format_point(best))
    inference: dict = {
        "context": best.context,
        "cache_scope": best.scope,
        "cache": best.cache and best.cache.to_dict(),
    }
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
