"""The model as the service serves it: one checkpoint loaded onto its device with the weights a
quantize choice picks. The service's engines, `python -m model.generate`, `python -m
model.evaluate --quantize` and every bench load a served model here, so each runs the weights
the service would run on that machine."""

from __future__ import annotations

from pathlib import Path

from model.checkpoint import Checkpoint, load_checkpoint
from model.quantize import quantize_int8, served_weights


def load_served_model(
    directory: Path | str, device: str = "cpu", quantize: str = "auto"
) -> Checkpoint:
    """The checkpoint in directory on device, its network with the weights quantize picks
    (model.quantize.served_weights: "auto" is int8 on a CPU with a fast int8 matmul, float
    elsewhere; "none"; "int8", CPU only), in eval mode. Raises CheckpointError for a bad
    checkpoint and ValueError for a choice the device cannot run."""
    weights = served_weights(quantize, device)
    checkpoint = load_checkpoint(directory, device)
    if weights == "int8":
        checkpoint.model = quantize_int8(checkpoint.model)
    return checkpoint
