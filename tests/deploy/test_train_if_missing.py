"""`python -m deploy.train_if_missing`, run exactly as the compose trainer runs it: keeps a
finished checkpoint, trains a missing one, resumes an interrupted one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from deploy.train_if_missing import describe_reading, training_arguments, tuning_arguments
from tests.deploy.support import ROOT

TINY_TRAINING = [
    "--embedding-size", "32", "--hidden-size", "32", "--num-layers", "1",
    "--cutoffs", "200", "600", "--epochs", "1", "--threads", "1", "--no-progress",
]  # fmt: skip


def trainer_command() -> list[str]:
    """The compose trainer service's command, read from docker-compose.yml."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return compose["services"]["trainer"]["command"]


def run_trainer(model_dir: Path, extra: list[str]) -> subprocess.CompletedProcess:
    """The trainer's command in the repository root, with this interpreter as `python`."""
    env = dict(os.environ, NEXTWORD_MODEL_DIR=str(model_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        trainer_command() + extra,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_finished_checkpoint_is_kept_untouched(tiny_checkpoint: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_checkpoint, tmp_path / "default")
    weights = (model_dir / "model.safetensors").stat().st_mtime_ns
    result = run_trainer(model_dir, [])
    assert result.returncode == 0, result.stderr
    assert "not training" in result.stdout
    # the tiny checkpoint is not the default preset's, and make serve says so before serving it
    assert f"checkpoint {model_dir} is NOT the default preset's" in result.stdout
    assert "hidden_size=32 (preset: 512)" in result.stdout
    assert (
        f"python -m model.evaluate.tune_cache --checkpoint {model_dir}" in result.stdout
    )  # not tuned
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == weights


def test_a_tuned_checkpoint_says_how_it_reads_text(tuned_checkpoint: Path) -> None:
    line = describe_reading(tuned_checkpoint)
    assert "reads text in document context with a cache of 40 words" in line


def test_missing_checkpoint_is_trained(tiny_corpus_file: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "default"
    result = run_trainer(model_dir, ["--corpus", str(tiny_corpus_file), *TINY_TRAINING])
    assert result.returncode == 0, result.stderr
    assert "training: python -m model.train --preset default" in result.stdout
    assert (
        f"tuning: python -m model.evaluate.tune_cache --checkpoint {model_dir} --threads 1"
        in result.stdout
    )
    assert f"valid split of {tiny_corpus_file}:" in result.stdout  # the corpus it trained on
    assert (model_dir / "model.safetensors").is_file()
    inference = json.loads((model_dir / "config.json").read_text())["inference"]
    assert inference["context"] in ("line", "document")


def test_tuning_takes_the_checkpoint_and_the_threads_of_training_only() -> None:
    extra = ["--corpus", "my.txt", "--max-minutes", "3", "--threads", "2"]
    assert tuning_arguments(Path("m"), extra) == ["--checkpoint", "m", "--threads", "2"]
    assert tuning_arguments(Path("m"), ["--corpus", "my.txt"]) == ["--checkpoint", "m"]


def test_interrupted_run_is_resumed_with_the_same_arguments(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"training": {"test_ppl": None}}))
    (tmp_path / "resume.json").write_text("{}")
    assert training_arguments(tmp_path, ["--corpus", "x.txt"]) == [
        "--preset", "default", "--output", str(tmp_path), "--resume", "--corpus", "x.txt",
    ]  # fmt: skip


def test_checkpoint_without_run_state_is_kept(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")  # copied in by hand
    assert training_arguments(tmp_path, []) is None
