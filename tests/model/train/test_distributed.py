"""Two-process training on CPU with torchrun (gloo): the loss falls, rank 0 writes one loadable
checkpoint, --resume continues the run, and both processes read one prepared store (made once,
by whichever came first, while the other waited on its lock)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from model.checkpoint import load_checkpoint

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun(
    corpus: Path, output: Path, *extra: str, cache: Path | None = None
) -> subprocess.CompletedProcess:
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "model.train",
        "--corpus", str(corpus), "--output", str(output), "--embedding-size", "32",
        "--hidden-size", "32", "--num-layers", "1", "--cutoffs", "200", "600",
        "--step-tokens", "512", "--no-progress", "--threads", "1", "--precision", "fp32",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if cache is not None:
        env["NEXTWORD_CORPUS_CACHE_DIR"] = str(cache)
    return subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=env, cwd=Path(__file__).parents[3]
    )


def test_two_processes_train_and_resume(tiny_corpus_file, tmp_path):
    output = tmp_path / "ddp"
    stores = tmp_path / "stores"  # empty: the two processes must share one preparation
    first = _torchrun(tiny_corpus_file, output, "--epochs", "2", cache=stores)
    assert first.returncode == 0, first.stderr[-3000:]
    made = [p.name for p in stores.iterdir() if not p.name.startswith(".")]
    assert [name.split("-")[0] for name in made] == ["tiny"]  # one store
    assert not list(stores.glob("*.partial"))  # whole
    second = _torchrun(tiny_corpus_file, output, "--epochs", "3", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    rows = [json.loads(x) for x in (output / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # the resumed run added the third epoch
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["valid_ppl"] < rows[0]["valid_ppl"]
    checkpoint = load_checkpoint(output)
    assert checkpoint.metadata["training"]["test_ppl"] > 1
    assert not list(tmp_path.glob(".ddp.tmp-*"))  # one writer, nothing left half-written
