"""Training curves: train and valid perplexity against tokens seen and against wall time, drawn
from the run's JSON-lines log into a PNG next to the checkpoint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from model.train.extras import import_training_package

matplotlib = import_training_package("matplotlib", "drawing training curves")
matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history: Sequence[dict], path: Path, title: str = "") -> None:
    """Write a two-panel PNG (ppl vs tokens seen, ppl vs minutes) of the logged rows."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    x_axes = (("tokens_seen", 1e6, "tokens seen (millions)"), ("wall_seconds", 60, "minutes"))
    for axis, (key, scale, label) in zip(axes, x_axes, strict=True):
        xs = [row[key] / scale for row in history]
        train = [math.nan if row["train_ppl"] is None else row["train_ppl"] for row in history]
        axis.plot(xs, train, "o-", label="train")  # nan: a validation before any training
        axis.plot(xs, [row["valid_ppl"] for row in history], "s-", label="valid")
        axis.set_xlabel(label)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("perplexity")
    axes[0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
