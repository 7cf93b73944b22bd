"""Time to perplexity: the reference PyTorch recipe (`plain`) against ours, on this machine.

    python -m bench.time_to_ppl            # both corpora, one run at a time
    python -m bench.time_to_ppl --corpus peoples-daily --plain-minutes 25 --ours-minutes 5

Three modes, each a real `python -m model.train` process, validating every
--eval-every-minutes of training:
  plain         --preset plain: 2-layer LSTM 200, full softmax, SGD lr 20 annealed on plateaus,
                clip 0.25, 20 lines a batch, BPTT 35, dropout 0.2, fp32; capped at
                --plain-minutes (30) on peoples-daily, --plain-minutes-wikitext (10) on
                wikitext-2;
  ours-small    --preset default at the plain size (--embedding-size 200 --hidden-size 200);
  ours-default  --preset default (both ours modes: the preset's own budget in training tokens,
                max_tokens in model/train/config.py, unless --ours-minutes caps it).

By default one run at a time, with all the cores (torch's default threads). --two-lanes trains
two processes at once, one thread each: plain in one lane, the ours modes in the other (on this
2-core machine the two then slow each other down 2-3x, so the default is one at a time).
Corpora: peoples-daily, target valid ppl 295 (the Kneser-Ney 5-gram's valid figure in
docs/data.md), and wikitext-2 trained on valid.txt with test.txt held out (docs/data.md), target the
plain mode's best held-out ppl. Figures come from each run's
metrics.jsonl (wall_seconds: training time) and config.json (test ppl). Writes OUT/time_to_ppl
.md, .json and .png (OUT = --output, default docs/) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bench.records import write_record
from bench.skips import command_unavailable, skipped_row
from model.checkpoint import read_config
from model.hardware import describe_cpu
from model.train.config import PRESETS, TrainConfig, parse_config

ROOT = Path(__file__).resolve().parents[1]
KN5_VALID_PPL = 295.0  # docs/data.md: interpolated modified Kneser-Ney 5-gram, peoples-daily valid
FLOOR = 5.0  # the floor: ours-small >= 5x plain's tokens/s, and <= 1/5 of its time to target
MODES: dict[str, tuple[str, ...]] = {
    "plain": ("--preset", "plain"),
    "ours-small": ("--preset", "default", "--embedding-size", "200", "--hidden-size", "200"),
    "ours-default": ("--preset", "default"),
}
CORPORA = ("peoples-daily", "wikitext-2")


# -- the pure figures ------------------------------------------------------------------------
def row_ppl(row: dict) -> float:
    """A validation's perplexity: of the live weights, or of their running average when the
    run averages weights and that is better (the model the run would keep)."""
    return min(row["valid_ppl"], row.get("average_valid_ppl") or math.inf)


def time_to_target(curve: Sequence[dict], target: float) -> float | None:
    """Training seconds at which valid ppl first reaches `target`: linear interpolation (ppl
    against wall_seconds) between the first validation at or below it and the one before; that
    validation's own time when it is the first. None when no validation reaches it."""
    previous = None
    for row in curve:
        if row_ppl(row) <= target:
            if previous is None:
                return float(row["wall_seconds"])
            t0, p0 = previous["wall_seconds"], row_ppl(previous)
            t1, p1 = row["wall_seconds"], row_ppl(row)
            return t0 + (t1 - t0) * (p0 - target) / (p0 - p1)  # p0 > target >= p1
        previous = row
    return None


def overall_tokens_per_second(curve: Sequence[dict]) -> float:
    """Tokens seen ÷ training seconds over the whole run (its last logged row)."""
    last = curve[-1]
    return last["tokens_seen"] / max(last["wall_seconds"], 1e-9)


@dataclass(frozen=True)
class Ratio:
    """How many times better ours is than plain (tokens/s ratio, or plain's time ÷ ours), known
    exactly ("="), only from below (">=") or from above ("<="), or not at all (value None)."""

    value: float | None
    bound: str = "="

    def verdict(self, floor: float = FLOOR) -> str:
        """'met', 'not met' or 'undetermined' for the floor `ratio >= floor`."""
        if self.value is None:
            return "undetermined"
        if self.bound == "=":
            return "met" if self.value >= floor else "not met"
        if self.bound == ">=":
            return "met" if self.value >= floor else "undetermined"
        return "not met" if self.value < floor else "undetermined"


def time_ratio(
    plain_seconds: float | None,
    plain_trained: float,
    ours_seconds: float | None,
    ours_trained: float,
) -> Ratio:
    """Plain's time to target ÷ ours. A run that never reached it took longer than it trained
    (`*_trained` seconds), so the ratio is then a bound: plain missing it gives at least
    plain_trained ÷ ours; ours missing it gives at most plain ÷ ours_trained."""
    if ours_seconds is not None and plain_seconds is not None:
        return Ratio(plain_seconds / max(ours_seconds, 1e-9))
    if ours_seconds is not None:
        return Ratio(plain_trained / max(ours_seconds, 1e-9), ">=")
    if plain_seconds is not None:
        return Ratio(plain_seconds / max(ours_trained, 1e-9), "<=")
    return Ratio(None)


def format_speed_ratio(ratio: Ratio) -> str:
    """'7.3×' (ours ÷ plain tokens/s)."""
    return "—" if ratio.value is None else f"{ratio.value:.1f}×"


def format_time_ratio(ratio: Ratio) -> str:
    """Ours' time as a fraction of plain's: '1/7.3', '≤ 1/7.3' (plain never reached the
    target), '≥ 1/2.0' (ours never did), '2.0×' when ours is slower, '—' when unknown."""
    if ratio.value is None:
        return "—"
    value = ratio.value
    text = f"1/{value:.1f}" if value >= 1 else f"{1 / value:.1f}×"
    prefix = {"=": "", ">=": "≤ ", "<=": "≥ "}[ratio.bound]  # the bound flips with 1/x
    return prefix + text


def format_time(seconds: float | None, trained_seconds: float) -> str:
    """'3.2 min' ('42 s' under a minute), or 'not reached in 30.0 min' of training."""
    if seconds is None:
        return f"not reached in {trained_seconds / 60:.1f} min"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


# -- running the modes -------------------------------------------------------------------------
@dataclass
class Run:
    """One mode trained on one corpus: its command, log and (once done) its figures."""

    corpus: str
    mode: str
    command: list[str]
    output: str
    log: str
    returncode: int | None = None
    started_s: float | None = None  # seconds after the benchmark started (shows the overlap)
    finished_s: float | None = None
    size: str = ""
    budget_minutes: float | None = None
    trained_seconds: float = 0.0
    tokens_per_second: float | None = None
    time_to_target_seconds: float | None = None
    best_valid_ppl: float | None = None
    test_ppl: float | None = None
    reused: bool = False  # read from an earlier invocation's --work-dir (same command)
    skipped: str | None = None  # why this machine cannot run it (see bench/skips.py)
    extended_from: float | None = None  # minutes of the finished run it resumed (see `extends`)
    curve: list[dict] = field(default_factory=list)


def corpus_args(corpus: str, wikitext_dir: Path) -> list[str]:
    """model.train flags selecting a corpus as docs/data.md defines it (wikitext-2: valid.txt is the
    training text, test.txt the held-out text; whitespace tokens without NFKC, which would
    rewrite 84 of its tokens such as ″ and ½)."""
    if corpus == "peoples-daily":
        return ["--corpus", "peoples-daily"]
    valid, test = str(wikitext_dir / "valid.txt"), str(wikitext_dir / "test.txt")
    return [
        "--train-file", valid, "--valid-file", test, "--test-file", test,
        "--tokenizer", "whitespace", "--no-nfkc",
    ]  # fmt: skip


def plan(args: argparse.Namespace, work_dir: Path) -> list[Run]:
    """Every (corpus, mode) run the arguments ask for, corpus by corpus."""
    runs = []
    for corpus in CORPORA if args.corpus == "both" else (args.corpus,):
        for mode, mode_args in MODES.items():
            output = work_dir / f"{corpus}-{mode}"
            command = [sys.executable, "-m", "model.train", *mode_args]
            command += corpus_args(corpus, args.wikitext_dir)
            command += ["--output", str(output), "--no-progress"]
            if args.two_lanes:
                command += ["--threads", "1"]
            command += ["--device", args.device]
            command += ["--eval-every-minutes", str(args.eval_every_minutes)]
            minutes = args.ours_minutes if corpus == "peoples-daily" else args.ours_minutes_wikitext
            if mode == "plain":
                minutes = (
                    args.plain_minutes if corpus == "peoples-daily" else args.plain_minutes_wikitext
                )
            if minutes is not None:
                command += ["--max-minutes", str(minutes)]
            if args.max_train_lines is not None:
                command += ["--max-train-lines", str(args.max_train_lines)]
            log = work_dir / f"{corpus}-{mode}.log"
            runs.append(Run(corpus, mode, command, str(output), str(log)))
    return runs


def describe_size(directory: Path, config: dict) -> str:
    """'2×200 LSTM (emb 200), full softmax, fp32, 7.9M params' from a checkpoint."""
    from safetensors.torch import load_file

    from model.hardware import resolve_device, resolve_precision

    params = sum(t.numel() for t in load_file(str(directory / "model.safetensors")).values())
    dtype = resolve_precision(config["precision"], resolve_device(config["device"]))
    precision = "fp32" if dtype == torch.float32 else "bf16"
    return (
        f"{config['num_layers']}×{config['hidden_size']} {config['cell'].upper()} "
        f"(emb {config['embedding_size']}), {config['output_layer']} softmax, {precision}, "
        f"{params / 1e6:.1f}M params"
    )


def read_results(run: Run) -> None:
    """Fill a finished run's figures from its metrics.jsonl and config.json."""
    output = Path(run.output)
    lines = (output / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    run.curve = [json.loads(line) for line in lines if line.strip()]
    training = read_config(output)["training"]
    run.size = describe_size(output, training["config"])
    run.budget_minutes = training["config"]["max_minutes"]
    run.best_valid_ppl = training["best_valid_ppl"]
    run.test_ppl = training["test_ppl"]
    if run.curve:
        run.trained_seconds = float(run.curve[-1]["wall_seconds"])
        run.tokens_per_second = overall_tokens_per_second(run.curve)


def _without_budget(command: Sequence[str]) -> tuple[list[str], float | None]:
    """A command without its --max-minutes, and that budget."""
    rest, minutes, items = [], None, iter(command)
    for item in items:
        if item == "--max-minutes":
            minutes = float(next(items))
        else:
            rest.append(item)
    return rest, minutes


def same_settings(command: Sequence[str], output: Path) -> bool:
    """Whether the run in output was trained with every setting `command` resolves to now (a
    preset may have changed since), leaving out the budget and --resume."""
    arguments = list(command[list(command).index("model.train") + 1 :])
    now = json.loads(json.dumps(parse_config(arguments).to_dict()))
    # a setting added since that run was trained did not exist then: it ran as its default
    then = (
        json.loads(json.dumps(TrainConfig().to_dict())) | read_config(output)["training"]["config"]
    )
    ignored = ("max_minutes", "resume")
    return {k: v for k, v in now.items() if k not in ignored} == {
        k: v for k, v in then.items() if k not in ignored
    }


def extends(finished: Sequence[str], command: Sequence[str], output: Path) -> bool:
    """Whether the finished run in output can be resumed into the run `command` asks for: the
    same command with a larger --max-minutes, on the plateau schedule, whose course does not
    depend on the budget (a cosine run's does), so that resuming gives what a fresh run would."""
    before, old_minutes = _without_budget(finished)
    after, new_minutes = _without_budget(command)
    if before != after or old_minutes is None or new_minutes is None:
        return False
    schedule = read_config(output)["training"]["config"]["schedule"]
    return new_minutes > old_minutes and schedule == "plateau"


def run_lane(runs: Sequence[Run], started: float, print_lock: threading.Lock) -> None:
    """Train the runs one after another (a lane), each logging to its own file. A run whose
    exact command already finished in --work-dir with the settings it resolves to now is read
    back; one that `extends` a finished run resumes it with the larger budget. A run this
    machine cannot train (bf16 without the CPU for it) is skipped, with the reason."""
    for run in runs:
        run.started_s = time.monotonic() - started
        run.skipped = command_unavailable(run.command)
        if run.skipped:
            with print_lock:
                print(f"{run.mode} on {run.corpus}: skipped: {run.skipped}", flush=True)
            continue
        done = Path(run.output + ".command")  # the command of the finished run in run.output
        finished = shlex.split(done.read_text(encoding="utf-8")) if done.is_file() else None
        if finished and not same_settings(run.command, Path(run.output)):
            finished = None  # the same command trains something else now: train it again
        reuse = finished == run.command
        if finished and not reuse and extends(finished, run.command, Path(run.output)):
            run.extended_from = _without_budget(finished)[1]
        with print_lock:
            verb = "reusing the finished run in " + run.output if reuse else "start"
            if run.extended_from:
                verb = f"resuming the finished {run.extended_from:g}-minute run in {run.output}"
            print(f"[{run.started_s / 60:5.1f} min] {run.mode} on {run.corpus}: {verb}", flush=True)
        if reuse:
            run.returncode, run.reused = 0, True
        else:
            if not run.extended_from:  # a stale or failed run there is trained again afresh
                shutil.rmtree(run.output, ignore_errors=True)
                done.unlink(missing_ok=True)
            resume = ["--resume"] if run.extended_from else []
            with open(run.log, "a" if resume else "w", encoding="utf-8") as log:
                process = subprocess.run(
                    [*run.command, *resume], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
            run.returncode = process.returncode
        run.finished_s = time.monotonic() - started
        if run.returncode == 0:
            done.write_text(shlex.join(run.command), encoding="utf-8")
            read_results(run)
            speed = f"{run.tokens_per_second or 0:,.0f} tokens/s"
            note = f"{speed}, best valid {run.best_valid_ppl or math.nan:.1f}"
        else:
            tail = Path(run.log).read_text(encoding="utf-8").splitlines()[-15:]
            note = f"FAILED (exit {run.returncode}, log {run.log}):\n  " + "\n  ".join(tail)
        with print_lock:
            print(
                f"[{run.finished_s / 60:5.1f} min] {run.mode} on {run.corpus}: {note}", flush=True
            )


def lanes(runs: Sequence[Run], two_lanes: bool) -> list[list[Run]]:
    """One lane of everything, or two: plain runs in one, ours runs in the other."""
    if not two_lanes:
        return [list(runs)]
    return [[r for r in runs if r.mode == "plain"], [r for r in runs if r.mode != "plain"]]


# -- the report --------------------------------------------------------------------------------
def ratio_record(ratio: Ratio, text: str) -> dict:
    """A ratio as the JSON keeps it: value, bound, its text in the table, the floor's verdict."""
    return {**asdict(ratio), "text": text, "verdict": ratio.verdict()}


def summarise(runs: Sequence[Run], corpus: str, kn5_target: float) -> dict:
    """One corpus' target, each run's time to it, and ours-vs-plain ratios and floor verdicts."""
    mine = [r for r in runs if r.corpus == corpus]
    plain = next((r for r in mine if r.mode == "plain" and r.curve), None)
    target: float | None = kn5_target
    source = "Kneser-Ney 5-gram valid ppl (docs/data.md)"
    if kn5_target != KN5_VALID_PPL:
        source = f"set by --target (the Kneser-Ney 5-gram's is {KN5_VALID_PPL:g})"
    if corpus != "peoples-daily":
        target = min(row_ppl(row) for row in plain.curve) if plain else None
        source = "the plain mode's best held-out ppl within its budget"
    for run in mine:
        if run.curve and target is not None:
            run.time_to_target_seconds = time_to_target(run.curve, target)
    ratios = {}
    for run in mine:
        if run.mode == "plain" or plain is None or not run.curve:
            continue
        speed = Ratio((run.tokens_per_second or 0) / max(plain.tokens_per_second or 0, 1e-9))
        clock = Ratio(None)
        if target is not None:
            clock = time_ratio(
                plain.time_to_target_seconds,
                plain.trained_seconds,
                run.time_to_target_seconds,
                run.trained_seconds,
            )
        ratios[run.mode] = {
            "tokens_per_second": ratio_record(speed, format_speed_ratio(speed)),
            "time": ratio_record(clock, format_time_ratio(clock)),
        }
    return {"target_ppl": target, "target_source": source, "ratios": ratios}


def corpus_table(runs: Sequence[Run], corpus: str, summary: dict) -> list[str]:
    """Markdown: the corpus' table of modes, then its floors."""
    target = summary["target_ppl"]
    target_text = "unknown (no plain run)" if target is None else f"{target:g}"
    out = [
        f"## {corpus}: target valid ppl {target_text}, {summary['target_source']}",
        "",
        "| mode | size | tokens/s | vs plain | time to target | vs plain | best valid ppl "
        "| test ppl |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in (r for r in runs if r.corpus == corpus):
        if run.skipped:
            out.append(skipped_row([run.mode], run.skipped, columns=8))
            continue
        if run.returncode != 0 or not run.curve:
            out.append(f"| {run.mode} | failed: see {run.log} | | | | | | |")
            continue
        ratios = summary["ratios"].get(run.mode)
        speed = ratios["tokens_per_second"]["text"] if ratios else "—"
        clock = ratios["time"]["text"] if ratios else "—"
        reached = "—"
        if target is not None:
            reached = format_time(run.time_to_target_seconds, run.trained_seconds)
        test = "—" if run.test_ppl is None else f"{run.test_ppl:.1f}"
        mode = f"{run.mode} (reused)" if run.reused else run.mode
        if run.extended_from:
            mode = f"{run.mode} (resumed from {run.extended_from:g} min)"
        out.append(
            f"| {mode} | {run.size} | {run.tokens_per_second:,.0f} | {speed} | {reached} "
            f"| {clock} | {run.best_valid_ppl:.1f} | {test} |"
        )
    ratios = summary["ratios"].get("ours-small")
    if ratios:
        speed, clock = ratios["tokens_per_second"], ratios["time"]
        out += ["", "| floor | measured | met |", "|---|---|---|"]
        out.append(
            f"| ours-small tokens/s ≥ {FLOOR:g}× plain's | {speed['text']} | {speed['verdict']} |"
        )
        out.append(
            f"| ours-small time to target ≤ 1/{FLOOR:g} of plain's | {clock['text']} "
            f"| {clock['verdict']} |"
        )
    return out


def markdown(report: dict, runs: Sequence[Run]) -> str:
    """The whole Markdown page: machine, command, method, one table per corpus."""
    lanes_text = (
        "one run at a time, each with every core"
        if not report["two_lanes"]
        else "two training processes at a time, one thread each: plain in one lane, ours-small "
        "then ours-default in the other"
    )
    out = [
        "# Time to perplexity: the reference recipe (`plain`) against ours",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}` ({lanes_text}).",
        "",
        "- Modes: `plain` = `--preset plain` (the reference PyTorch word_language_model recipe: "
        "2-layer LSTM 200, full softmax, SGD lr 20 divided by 4 when valid stops improving, clip "
        "0.25, 20 lines a batch, BPTT 35, dropout 0.2; lines read as our trainer reads them, each "
        "from the `<eos>` state, as docs/data.md defines); `ours-small` = `--preset "
        "default --embedding-size 200 --hidden-size 200`; `ours-default` = `--preset default`.",
        f"- Every run is `python -m model.train <mode> --eval-every-minutes "
        f"{report['eval_every_minutes']:g}` (see the JSON for each command). Times are training "
        "time (`wall_seconds` of metrics.jsonl: validation and checkpoint writes do not count).",
        "- tokens/s: tokens seen ÷ training seconds over the whole run. Time to target: the first "
        "validation at or below the target, linearly interpolated (ppl against time) from the "
        'validation before it; "not reached in N min" when none reaches it, and the ratio is '
        "then a bound. \"vs plain\": tokens/s ÷ plain's, and time as a fraction of plain's.",
        "- wikitext-2: trained on `valid.txt` (217,646 tokens), `test.txt` (245,569) held out as "
        "both valid and test; whitespace tokens without NFKC, one `<eos>` a line, blank lines "
        "included (docs/data.md); not comparable with published WikiText-2 figures.",
        "- The JSON holds every run's command, validation curve, and start and end (`started_s`, "
        "`finished_s`: seconds into the benchmark, to see which runs overlapped). A mode marked "
        "(reused) was trained by an earlier invocation with the same command and --work-dir on "
        "the same machine, and read back rather than trained again. One marked (resumed from N "
        "min) continued such a run of the same command with a smaller budget: only for the "
        "plateau schedule, whose course does not depend on the budget, so it ends where a fresh "
        "run would.",
    ]
    for corpus, summary in report["corpora"].items():
        out += ["", *corpus_table(runs, corpus, summary)]
    return "\n".join(out) + "\n"


def chart(report: dict, path: Path) -> None:
    """One panel per corpus: valid ppl (log scale) against training minutes, each mode a line,
    the target a dashed horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = report["corpora"]
    figure, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 4.5), squeeze=False)
    for axis, (corpus, summary) in zip(axes[0], corpora.items(), strict=True):
        for run in (r for r in report["runs"] if r["corpus"] == corpus and r["curve"]):
            minutes = [row["wall_seconds"] / 60 for row in run["curve"]]
            axis.plot(minutes, [row_ppl(row) for row in run["curve"]], ".-", label=run["mode"])
        if summary["target_ppl"] is not None:
            axis.axhline(summary["target_ppl"], color="grey", linestyle="--", label="target")
        axis.set(yscale="log", xlabel="training minutes", ylabel="valid ppl", title=corpus)
        axis.set_xlim(left=0)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# -- entry point -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's flags (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.time_to_ppl", description=__doc__)
    parser.add_argument("--corpus", choices=(*CORPORA, "both"), default="both", help="corpora")
    parser.add_argument(
        "--wikitext-dir",
        type=Path,
        default=ROOT.parent / "shared/corpora/wikitext-2",
        help="folder with WikiText-2's valid.txt and test.txt (this machine's shared corpora)",
    )
    parser.add_argument(
        "--two-lanes",
        action="store_true",
        help="two runs at a time, one thread each, instead of one run with every core",
    )
    parser.add_argument(
        "--plain-minutes", type=float, default=30.0, help="plain's training cap on peoples-daily"
    )
    parser.add_argument(
        "--plain-minutes-wikitext",
        type=float,
        default=10.0,
        help="plain's training cap on wikitext-2 (217k training tokens: its best comes early)",
    )
    parser.add_argument(
        "--ours-minutes",
        type=float,
        default=None,
        help="cap on the ours modes' training minutes (default: none, the default preset's own "
        f"budget of {PRESETS['default']['max_tokens']:,} training tokens)",
    )
    parser.add_argument(
        "--ours-minutes-wikitext",
        type=float,
        default=None,
        help="the same cap on wikitext-2 (default: none, the default preset's budget)",
    )
    parser.add_argument(
        "--eval-every-minutes", type=float, default=0.5, help="validate every this many minutes"
    )
    parser.add_argument(
        "--target", type=float, default=KN5_VALID_PPL, help="peoples-daily target valid ppl"
    )
    parser.add_argument("--device", default="cpu", help="model.train --device (threads are CPU's)")
    parser.add_argument(
        "--max-train-lines", type=int, default=None, help="first N training lines (smoke runs)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="checkpoints and logs, kept (default: a temporary folder, removed unless a run "
        "fails); a run whose exact command already finished there is read, not trained again",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs", help="writes time_to_ppl.{md,json,png} here"
    )
    args = parser.parse_args(argv)
    wikitext = [args.wikitext_dir / name for name in ("valid.txt", "test.txt")]
    if args.corpus != "peoples-daily" and not all(path.is_file() for path in wikitext):
        parser.error(
            f"wikitext-2 needs {wikitext[0]} and {wikitext[1]} (this machine's shared corpora, "
            "see docs/data.md); pass --wikitext-dir DIR, or --corpus peoples-daily"
        )
    args.wikitext_dir = args.wikitext_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    """Train every mode, then print and write the table, JSON and chart."""
    args = parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="time_to_ppl-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    runs = plan(args, work_dir.resolve())
    print(f"Machine: {describe_cpu()}.", flush=True)
    started, print_lock = time.monotonic(), threading.Lock()
    groups = [lane for lane in lanes(runs, args.two_lanes) if lane]
    with ThreadPoolExecutor(len(groups)) as pool:
        for done in [pool.submit(run_lane, lane, started, print_lock) for lane in groups]:
            done.result()
    if args.two_lanes:
        torch.set_num_threads(1)  # describe_cpu() then names the threads each training process had
    command = " ".join(["python -m bench.time_to_ppl", *map(shlex.quote, argv or sys.argv[1:])])
    report = {
        "machine": describe_cpu(),
        "command": command.strip(),
        "two_lanes": args.two_lanes,
        "eval_every_minutes": args.eval_every_minutes,
        "corpora": {
            corpus: summarise(runs, corpus, args.target)
            for corpus in dict.fromkeys(run.corpus for run in runs)
        },
    }
    report["runs"] = [asdict(run) for run in runs]
    args.output.mkdir(parents=True, exist_ok=True)
    text = markdown(report, runs)
    (args.output / "time_to_ppl.md").write_text(text, encoding="utf-8")
    write_record(args.output / "time_to_ppl.json", report)
    chart(report, args.output / "time_to_ppl.png")
    print(text)
    failed = [run for run in runs if run.returncode != 0 and not run.skipped]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed; logs and checkpoints kept in {work_dir}")
    if args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
