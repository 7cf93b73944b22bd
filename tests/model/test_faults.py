"""Training killed with SIGKILL at several points always leaves a complete, loadable checkpoint,
and --resume finishes the run."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from model.checkpoint import load_checkpoint, recover_interrupted_swap
from model.evaluate.cli import evaluate

ROOT = Path(__file__).parents[2]


def _command(corpus: Path, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "model.train", "--corpus", str(corpus), "--output", str(output),
        "--embedding-size", "32", "--hidden-size", "32", "--num-layers", "1",
        "--cutoffs", "200", "600", "--step-tokens", "256", "--epochs", "4",
        "--snapshot-minutes", "0", "--no-progress", "--threads", "1", "--precision", "fp32",
        *extra,
    ]  # fmt: skip


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.01)


def _mtime(path: Path) -> int:
    """path's modification time in ns (0 while it is missing, its directory mid-swap)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _validated(config: Path) -> bool:
    """Whether the checkpoint's config records a validated run (read whole: it is replaced by
    rename, never written in place)."""
    try:
        recorded = json.loads(config.read_text(encoding="utf-8"))["training"]["best_valid_ppl"]
    except OSError:  # not written yet, or its directory mid-swap: ask again
        return False
    return math.isfinite(recorded)


def test_sigkill_at_several_points_never_breaks_the_checkpoint(tiny_corpus_file, tmp_path):
    """Killed as soon as a validated checkpoint is on disk, then (resumed) as soon as the next
    snapshot is written, twice: the checkpoint left each time is whole, weights and config of
    one write (its weights give the valid perplexity its config records)."""
    output = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    snapshot = output / "resume.json"
    for resume in (False, True, True):
        since = _mtime(snapshot)
        process = subprocess.Popen(
            _command(tiny_corpus_file, output, *(("--resume",) if resume else ())),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if resume:
                _wait_until(lambda s=since: _mtime(snapshot) not in (0, s), timeout=60)
            else:
                _wait_until(lambda: _validated(output / "config.json"), timeout=60)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        recover_interrupted_swap(output)  # a kill between a swap's two renames: the writer's fix
        checkpoint = load_checkpoint(output)  # complete after every kill
        recorded = checkpoint.metadata["training"]["best_valid_ppl"]
        figure = evaluate(checkpoint, split="valid")["perplexity"]
        assert figure == pytest.approx(recorded, rel=1e-3)
        assert snapshot.is_file()
    finished = subprocess.run(
        _command(tiny_corpus_file, output, "--resume"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a bound on a hang, not a speed check: a shared machine may be slow
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    config = json.loads((output / "config.json").read_text())
    assert config["training"]["test_ppl"] > 1 and config["training"]["epochs_done"] == 4
