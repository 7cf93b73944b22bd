"""Training speed: tokens/s of each cell at one size, full vs adaptive softmax, bf16 vs fp32, and
the default preset with what its checkpoint recorded.

    python -m bench.train_speed [--batches 6] [--size 256] [--checkpoint checkpoints/default]

Every cell is measured at the precision `--precision auto` picks on this machine (bf16 where the
CPU runs it natively, else fp32), and the LSTM at both; a bf16 row this machine cannot run
(model/hardware.py says why) is a `skipped: <reason>` row. Every configuration trains on the same
seeded batches of real lines (step_tokens 2048), after one warm-up batch. The page is printed as
it is measured, row by row, and written to --output (default docs/train_speed.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from bench.skips import skipped_row, unavailable
from model.batching import LineBatch, make_batches
from model.checkpoint import CONFIG, read_config
from model.hardware import describe_cpu, resolve_device, resolve_precision
from model.rnn import CELLS
from model.train.config import PRESETS, TrainConfig, add_config_flags
from model.train.data import Data, prepare_data
from model.train.trainer import Trainer

WARMUP_BATCHES = 1  # the first batch pays for thread pools, allocations and oneDNN primitives
OUTPUTS = ("full", "adaptive")
TABLE_HEAD = [
    "| cell | output layer | precision | tokens/s | vs full softmax (same cell, precision) |",
    "|---|---|---|---|---|",
]


def tokens_per_second(config: TrainConfig, data: Data, batches: list[LineBatch]) -> float:
    """Training tokens/s of a config over the batches (the warm-up batches not counted)."""
    trainer = Trainer(config, data)
    trainer.model.train()
    for batch in batches[:WARMUP_BATCHES]:
        trainer.train_batch(batch)
    started, tokens = time.perf_counter(), 0
    for batch in batches[WARMUP_BATCHES:]:
        tokens += trainer.train_batch(batch)[1]
    return tokens / (time.perf_counter() - started)


def plan(base: TrainConfig, cells: Sequence[str] = CELLS) -> list[tuple[str, str]]:
    """(cell, precision) pairs to measure: each cell at the precision training picks here, and
    the LSTM at both bf16 and fp32."""
    picked = resolve_precision("auto", resolve_device(base.device))
    auto = "bf16" if picked == torch.bfloat16 else "fp32"
    return [
        (cell, precision)
        for cell in cells
        for precision in (("bf16", "fp32") if cell == "lstm" else (auto,))
    ]


def measure(
    base: TrainConfig, data: Data, batches: list[LineBatch], cells: Sequence[str] = CELLS
) -> Iterator[str]:
    """Table rows, each yielded as soon as it is measured (or skipped, with the reason)."""
    for cell, precision in plan(base, cells):
        speeds: dict[str, float] = {}
        for output in OUTPUTS:
            config = replace(base, cell=cell, output_layer=output, precision=precision)
            reason = unavailable(config)
            if reason is not None:
                yield skipped_row([cell, output, precision], reason, columns=5)
                continue
            speeds[output] = tokens_per_second(config, data, batches)
            ratio = f"{speeds[output] / speeds['full']:.2f}x" if "full" in speeds else "—"
            yield f"| {cell} | {output} | {precision} | {speeds[output]:,.0f} | {ratio} |"


def figure(value: object) -> str:
    """A number as a table reads it: 6,739,217 or 259.6."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def default_model(checkpoint: Path) -> list[str]:
    """Lines on the default preset and, when its checkpoint exists, every figure of its training
    record (whatever the record holds: the preset's budget and figures change over time)."""
    lines = [f"Default preset: `{json.dumps(PRESETS.get('default', {}))}`."]
    if (checkpoint / CONFIG).is_file():
        training = read_config(checkpoint).get("training", {})
        figures = [
            f"{key.replace('_', ' ')} {figure(value)}"
            for key, value in training.items()
            if not isinstance(value, dict | list)
        ]
        lines.append(f"Its checkpoint `{checkpoint}`: {', '.join(figures) or 'no figures'}.")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.train_speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--batches", type=int, default=6, help="timed batches per configuration")
    parser.add_argument("--size", type=int, default=256, help="embedding and hidden size")
    parser.add_argument(
        "--cells", nargs="+", choices=CELLS, default=list(CELLS), help="cells to measure"
    )
    add_config_flags(parser, ["corpus"])  # model.train's, as it reads it
    parser.add_argument(
        "--checkpoint", type=Path, default=Path("checkpoints/default"), help="default model"
    )
    parser.add_argument(
        "--output", type=Path, default=Path("docs/train_speed.md"), help="the page to write"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Print the page as it is measured, then write it."""
    args = parse_args(argv)
    command = " ".join(["python -m bench.train_speed", *map(shlex.quote, argv or sys.argv[1:])])
    corpus = {"corpus": args.corpus} if args.corpus else {}  # else model.train's default
    base = TrainConfig(
        **corpus,
        embedding_size=args.size,
        hidden_size=args.size,
        progress=False,
        step_tokens=2048,
        output="/tmp/unused",
    )
    page: list[str] = []

    def emit(*lines: str) -> None:
        page.extend(lines)
        print(*lines, sep="\n", flush=True)

    emit(
        f"# Training speed ({Path(base.corpus).name}, 2 layers of {args.size}, step_tokens 2048)",
        "",
        f"Machine: {describe_cpu()}.",
        f"Command: `{command}` ({args.batches} timed batches a configuration, after "
        f"{WARMUP_BATCHES} warm-up).",
        "",
        *TABLE_HEAD,
    )
    data = prepare_data(base)
    batches = make_batches(
        data.ids["train"], data.vocab.eos_id, base.batch_size, 1, base.step_tokens, base.bptt
    )[: args.batches + WARMUP_BATCHES]
    for row in measure(base, data, batches, args.cells):
        emit(row)
    emit("", *default_model(args.checkpoint))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(page) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
