"""Training killed with SIGKILL at several points always leaves a complete, loadable checkpoint,
and --resume finishes the run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from model.checkpoint import load_checkpoint

ROOT = Path(__file__).parents[2]


def _command(corpus: Path, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "model.train", "--corpus", str(corpus), "--output", str(output),
        "--embedding-size", "32", "--hidden-size", "32", "--num-layers", "1",
        "--cutoffs", "200", "600", "--step-tokens", "256", "--epochs", "4",
        "--snapshot-minutes", "0", "--no-progress", "--threads", "1", "--precision", "fp32",
        *extra,
    ]  # fmt: skip


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigkill_at_random_points_never_breaks_the_checkpoint(tiny_corpus_file, tmp_path):
    output = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    chooser = random.Random(2026)
    first = True
    for _ in range(3):
        extra = () if first else ("--resume",)
        process = subprocess.Popen(
            _command(tiny_corpus_file, output, *extra),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(output / "config.json", timeout=60)
            time.sleep(chooser.uniform(0.0, 0.8))
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        first = False
        checkpoint = load_checkpoint(output)  # complete after every kill
        assert checkpoint.model is not None
        assert (output / "resume.json").is_file()
    finished = subprocess.run(
        _command(tiny_corpus_file, output, "--resume"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    config = json.loads((output / "config.json").read_text())
    assert config["training"]["test_ppl"] > 1 and config["training"]["epochs_done"] == 4
