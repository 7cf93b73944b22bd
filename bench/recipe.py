"""The stronger-recipe study: each strong-recipe option added alone to the default preset,
trained at the default budget on peoples-daily, one run at a time with every core.

    python -m bench.recipe                                   # base + the default variants
    python -m bench.recipe --variants base tied fp32         # any subset, in that order
    python -m bench.recipe --variants base fp32 --max-steps 600 --name precision  # equal tokens

Each variant is the default preset plus its flags (VARIANTS), at the preset's budget; the
preset starts from word2vec vectors trained inside that budget, and `no-word2vec` turns them
off, so both are compared at equal budget; --max-steps compares them at equal tokens instead.
A variant this machine cannot run (`bf16` without native bf16) is a `skipped: <reason>` row.
Figures come from each run's metrics.jsonl and config.json; prints each row as its run ends,
and writes OUT/NAME.md and .json (OUT = --output, default docs/; NAME = --name, default
recipe).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from bench.records import write_record
from bench.skips import skipped_row
from bench.time_to_ppl import ROOT, Run, run_lane
from model.hardware import describe_cpu
from model.train.config import PRESETS

# the settings that make up the default preset's training budget (it sets one or more)
BUDGET_KEYS = ("max_minutes", "max_tokens")
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": (),
    "average": ("--average-from", "0.5"),
    "variable-bptt": ("--variable-bptt",),
    "variational-dropout": (
        "--variational-dropout",
        "--dropout-embedding",
        "0.1",
        "--dropout-words",
        "0.05",
    ),
    "no-word2vec": ("--no-word2vec-init",),
    "tied": ("--tie-weights",),
    "weight-decay": ("--weight-decay", "0.1"),
    "fp32": ("--precision", "fp32"),
    "bf16": ("--precision", "bf16"),  # skipped where the CPU has no native bf16
}
DEFAULT_VARIANTS = ("base", "average", "variable-bptt", "variational-dropout", "no-word2vec")


def plan_run(variant: str, work_dir: Path, max_steps: int | None = None) -> Run:
    """The model.train command of one variant: at the preset's budget, or at `max_steps`
    optimizer steps (equal tokens; the cosine schedule then runs over the steps)."""
    output = work_dir / variant
    command = [sys.executable, "-m", "model.train", "--preset", "default", *VARIANTS[variant]]
    if max_steps is not None:
        for key in preset_budget():  # 0: no budget of that kind
            command += [f"--{key.replace('_', '-')}", "0"]
        command += ["--max-steps", str(max_steps)]
    command += ["--output", str(output), "--no-progress"]
    return Run("peoples-daily", variant, command, str(output), str(work_dir / f"{variant}.log"))


def preset_budget() -> dict[str, float]:
    """The default preset's training budget: its settings among BUDGET_KEYS."""
    return {key: PRESETS["default"][key] for key in BUDGET_KEYS if key in PRESETS["default"]}


def table(runs: list[Run]) -> list[str]:
    """Markdown rows: each variant's flags, tokens, speed, valid and test ppl, test vs base."""
    base = next((r.test_ppl for r in runs if r.mode == "base" and r.test_ppl), None)
    out = [
        "| variant | flags added to `--preset default` | training min | tokens | tokens/s "
        "| best valid ppl | test ppl | test vs base |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        flags = " ".join(VARIANTS[run.mode])
        if run.skipped:
            out.append(skipped_row([run.mode, f"`{flags}`"], run.skipped, columns=8))
            continue
        if run.returncode != 0 or not run.curve or run.test_ppl is None:
            out.append(f"| {run.mode} | `{flags}` | failed: see {run.log} | | | | | |")
            continue
        tokens = run.curve[-1]["tokens_seen"]
        versus = f"{run.test_ppl / base - 1:+.1%}" if base else "—"
        minutes = run.trained_seconds / 60
        out.append(
            f"| {run.mode} | `{flags or '—'}` | {minutes:.1f} | {tokens / 1e6:.2f}M "
            f"| {run.tokens_per_second or 0:,.0f} | {run.best_valid_ppl:.1f} | {run.test_ppl:.1f} "
            f"| {versus} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Train every variant asked for, one after another; print and write the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.recipe", description=__doc__)
    parser.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), default=list(DEFAULT_VARIANTS)
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="train every variant this many steps instead of the preset's budget (equal tokens)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="keep checkpoints here")
    parser.add_argument("--output", type=Path, default=ROOT / "docs", help="writes NAME.* here")
    parser.add_argument("--name", default="recipe", help="report file name (NAME.md, NAME.json)")
    args = parser.parse_args(argv)
    work_dir = (args.work_dir or Path(tempfile.mkdtemp(prefix="recipe-"))).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m bench.recipe", *map(shlex.quote, argv or sys.argv[1:])])
    budget = ", ".join(f"{key} {value:g}" for key, value in preset_budget().items())
    if args.max_steps:
        budget = f"{args.max_steps} optimizer steps (equal tokens; cosine schedule over the steps)"
    header = [
        "# The default preset, one option at a time (peoples-daily)",
        "",
        f"Machine: {describe_cpu()}.",
        f"Command: `{command.strip()}`, one run at a time.",
        f"Each variant is `--preset default` ({budget or 'no budget'}) plus its flags.",
        "",
    ]
    print("\n".join([*header, *table([])]), flush=True)
    started, lock, runs = time.monotonic(), threading.Lock(), []
    for variant in args.variants:
        runs.append(plan_run(variant, work_dir, args.max_steps))
        run_lane(runs[-1:], started, lock)
        print(table(runs)[-1], flush=True)  # its row, as soon as it is measured
    args.output.mkdir(parents=True, exist_ok=True)
    text = "\n".join([*header, *table(runs)])
    (args.output / f"{args.name}.md").write_text(text + "\n", encoding="utf-8")
    report = {"machine": describe_cpu(), "command": command, "runs": [asdict(r) for r in runs]}
    write_record(args.output / f"{args.name}.json", report)


if __name__ == "__main__":
    main()
