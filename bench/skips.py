"""What a bench cannot run on this machine, and the table row that says so.

CPUs differ (model/hardware.py): bf16 training is native on some Xeons and missing or emulated
(extremely slowly) elsewhere. A bench asks here before it measures a configuration, and a
configuration the hardware cannot run becomes a `skipped: <reason>` row rather than a crash or
a measurement that never ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from model.hardware import resolve_device, resolve_precision
from model.train.config import TrainConfig, parse_config


def unavailable(config: TrainConfig) -> str | None:
    """Why a training config cannot run here (today: a precision the device lacks, in the words
    `model.train` would stop with), or None when it can."""
    try:
        resolve_precision(config.precision, resolve_device(config.device))
    except ValueError as error:
        return str(error)
    return None


def command_unavailable(command: Sequence[str]) -> str | None:
    """unavailable() for a `python -m model.train FLAGS...` command line."""
    flags = list(command[list(command).index("model.train") + 1 :])
    return unavailable(parse_config(flags))


def skipped_row(labels: Sequence[str], reason: str, columns: int) -> str:
    """A Markdown row of `columns` cells: the labels, then `skipped: reason`, then blanks."""
    cells = [*labels, f"skipped: {reason}"]
    cells += [""] * (columns - len(cells))
    return "| " + " | ".join(cells) + " |"
