"""Train the default model into $NEXTWORD_MODEL_DIR unless a finished checkpoint is there.

The one skip-if-present rule, run as written by `make serve` on the host and by the compose
`trainer` service in the image:
- a checkpoint whose run finished, or one with no run state (copied in by hand): keep it;
- a run that was interrupted (run state, but no test perplexity yet): continue it with --resume;
- no checkpoint: train one with `--preset default`.
Arguments are passed on to `python -m model.train` (e.g. `--corpus my.txt`). A checkpoint it
trained is then tuned on the valid split of the corpus it was trained on
(`python -m model.evaluate.tune_cache`: line or document context, and the cache pointer), so
that the service reads text the way that scored best.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from model.checkpoint import CONFIG, INFERENCE, CheckpointError, load_inference_config, read_config
from model.evaluate.tune_cache import main as tune_main
from model.train.config import add_config_flags, preset_differences
from model.train.resume import RESUME_STATE
from model.train.trainer import main as train_main

DEFAULT_MODEL_DIR = "checkpoints/default"


def training_arguments(model_dir: Path, extra: list[str]) -> list[str] | None:
    """The model.train arguments still needed for `model_dir`, or None when it is complete."""
    arguments = ["--preset", "default", "--output", str(model_dir)]
    if not (model_dir / CONFIG).is_file():
        return [*arguments, *extra]
    training = read_config(model_dir).get("training", {})
    finished = training.get("test_ppl") is not None  # only a run's last write scores test
    if finished or not (model_dir / RESUME_STATE).is_file():
        return None
    return [*arguments, "--resume", *extra]


def describe_checkpoint(model_dir: Path) -> str:
    """One line naming what a kept checkpoint is: the default preset, or which settings differ
    from it (a model copied in, or trained by another command, is never served silently)."""
    if not (model_dir / CONFIG).is_file():
        return f"checkpoint {model_dir} has no {CONFIG}"
    training = read_config(model_dir).get("training", {})
    settings = training.get("config")
    if not settings:
        return f"checkpoint {model_dir} records no training settings: not the default preset's"
    differences = preset_differences("default", settings)
    scores = f"test ppl {training['test_ppl']:.1f}" if training.get("test_ppl") else "no test ppl"
    if not differences:
        return f"checkpoint {model_dir}: the default preset's model ({scores})"
    listed = ", ".join(
        f"{k}={mine!r} (preset: {theirs!r})" for k, (theirs, mine) in differences.items()
    )
    return f"checkpoint {model_dir} is NOT the default preset's ({scores}): {listed}"


def describe_reading(model_dir: Path) -> str:
    """One line saying how the service will read text with a kept checkpoint: its tuned
    context and cache, or the command that tunes them."""
    config = read_config(model_dir)
    try:
        context, cache = load_inference_config(config)
    except CheckpointError as error:
        return f"checkpoint {model_dir}: {error}"
    if not config.get(INFERENCE):
        return (
            f"checkpoint {model_dir} reads text line by line without a cache (not tuned: "
            f"python -m model.evaluate.tune_cache --checkpoint {model_dir})"
        )
    if cache is None:
        return f"checkpoint {model_dir} reads text in {context} context without a cache"
    return (
        f"checkpoint {model_dir} reads text in {context} context with a cache of "
        f"{cache.window} words (theta {cache.theta}, lambda {cache.lam}, half fill "
        f"{cache.half_fill}, min fill {cache.min_fill})"
    )


def tuning_arguments(model_dir: Path, extra: list[str]) -> list[str]:
    """model.evaluate.tune_cache's arguments for a checkpoint just trained with extra: the
    checkpoint (whose recorded corpus tune_cache reads) and training's --threads, if given."""
    machine = argparse.ArgumentParser(add_help=False)
    add_config_flags(machine, ["threads"])
    threads = machine.parse_known_args(extra)[0].threads
    return ["--checkpoint", str(model_dir), *(["--threads", str(threads)] if threads else [])]


def main(argv: list[str]) -> None:
    """Train, resume or skip, as training_arguments decides; says which on stdout, and what a
    kept checkpoint is."""
    model_dir = Path(os.environ.get("NEXTWORD_MODEL_DIR") or DEFAULT_MODEL_DIR)
    arguments = training_arguments(model_dir, argv)
    if arguments is None:
        print(f"checkpoint {model_dir} is complete: not training", flush=True)
        print(describe_checkpoint(model_dir), flush=True)
        if (model_dir / CONFIG).is_file():
            print(describe_reading(model_dir), flush=True)
        return
    print(f"training: python -m model.train {' '.join(arguments)}", flush=True)
    train_main(arguments)
    tuning = tuning_arguments(model_dir, argv)
    print(f"tuning: python -m model.evaluate.tune_cache {' '.join(tuning)}", flush=True)
    tune_main(tuning)


if __name__ == "__main__":
    main(sys.argv[1:])
