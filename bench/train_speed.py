"""Training speed on peoples-daily: tokens/s of each cell at one size, full vs adaptive softmax,
bf16 vs fp32, and the default preset's perplexity and wall time (read from its checkpoint).

    python -m bench.train_speed [--batches 12] [--size 256] [--checkpoint checkpoints/default]

Every configuration trains on the same seeded batches (real lines, step_tokens 2048), after
two warm-up batches; the table goes to stdout and to docs/train_speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from model.batching import make_batches
from model.config import PRESETS, TrainConfig
from model.data import prepare_data
from model.rnn import CELLS
from model.train import Trainer


def tokens_per_second(config: TrainConfig, data, batches) -> float:
    """Training tokens/s of a config over the given batches (two warm-ups not counted)."""
    trainer = Trainer(config, data)
    trainer.model.train()
    for batch in batches[:2]:
        trainer.train_batch(batch)
    started, tokens = time.perf_counter(), 0
    for batch in batches[2:]:
        tokens += trainer.train_batch(batch)[1]
    return tokens / (time.perf_counter() - started)


def machine() -> str:
    """One line naming the CPU and thread count."""
    cpu = next(
        (
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        ),
        platform.processor(),
    )
    threads = torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads)"


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=12, help="timed batches per configuration")
    parser.add_argument("--size", type=int, default=256, help="embedding and hidden size")
    parser.add_argument(
        "--checkpoint", default="checkpoints/default", help="default model to report"
    )
    parser.add_argument("--out", default="docs/train_speed.md", help="Markdown table to write")
    args = parser.parse_args()
    base = TrainConfig(
        embedding_size=args.size,
        hidden_size=args.size,
        progress=False,
        step_tokens=2048,
        output="/tmp/unused",
    )
    data = prepare_data(base)
    batches = make_batches(
        data.ids["train"],
        data.vocab.eos_id,
        base.batch_size,
        seed=1,
        step_tokens=2048,
        bptt=base.bptt,
    )
    batches = batches[: args.batches + 2]
    rows = [
        "| cell | output layer | precision | tokens/s | vs full softmax (same cell, precision) |",
        "|---|---|---|---|---|",
    ]
    for cell in CELLS:
        for precision in ("bf16", "fp32") if cell == "lstm" else ("bf16",):
            speeds = {}
            for output in ("full", "adaptive"):
                config = replace(base, cell=cell, output_layer=output, precision=precision)
                speeds[output] = tokens_per_second(config, data, batches)
                ratio = speeds[output] / speeds["full"]
                rows.append(
                    f"| {cell} | {output} | {precision} | {speeds[output]:,.0f} | {ratio:.2f}x |"
                )
                print(rows[-1], flush=True)
    lines = [
        f"# Training speed (peoples-daily, 2 layers of {args.size}, step_tokens 2048)",
        "",
        f"Machine: {machine()}. Command: "
        f"`python -m bench.train_speed --batches {args.batches} --size {args.size}`.",
        "",
        *rows,
    ]
    config_path = Path(args.checkpoint) / "config.json"
    if config_path.is_file():
        training = json.loads(config_path.read_text(encoding="utf-8"))["training"]
        lines += [
            "",
            f"Default preset ({json.dumps(PRESETS['default'])}): best valid ppl "
            f"{training['best_valid_ppl']:.1f}, test ppl {training['test_ppl']:.1f}, "
            f"{training['tokens_seen']:,} tokens in {training['wall_seconds'] / 60:.1f} minutes.",
        ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
