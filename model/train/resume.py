"""The resumable state of a training run (last weights, optimizer, RNG, position), stored beside
the checkpoint as `resume.safetensors` + `resume.json`: tensors and JSON only, no pickles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import CheckpointError, replace_file, unique_state

RESUME_TENSORS = "resume.safetensors"
RESUME_STATE = "resume.json"


def _split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(tensors, JSON-able rest) of an optimizer's state_dict."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, plain


def write_snapshot(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: dict,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the run's last weights, optimizer state, CPU RNG state, progress (epoch,
    position, lr, best ppl, ...) and any extra named tensors into a directory being built."""
    tensors = {f"model.{k}": v for k, v in unique_state(model).items()}
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    optimizer_tensors, optimizer_plain = _split_optimizer_state(optimizer)
    tensors.update(optimizer_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    save_file(tensors, str(replace_file(directory, RESUME_TENSORS)))
    state = {
        "progress": progress,
        "optimizer_param_groups": optimizer.state_dict()["param_groups"],
        "optimizer_plain_state": optimizer_plain,
    }
    replace_file(directory, RESUME_STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def read_snapshot(
    directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore weights, optimizer and RNG from a snapshot; returns its progress record and
    the extra tensors it was written with."""
    tensor_path, state_path = Path(directory) / RESUME_TENSORS, Path(directory) / RESUME_STATE
    if not (tensor_path.is_file() and state_path.is_file()):
        raise CheckpointError(
            f"{directory} holds no resumable run ({RESUME_TENSORS} and {RESUME_STATE}); "
            "start without --resume"
        )
    tensors = load_file(str(tensor_path))
    state = json.loads(state_path.read_text(encoding="utf-8"))
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=False)
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    for index, rest in state["optimizer_plain_state"].items():
        slots.setdefault(int(index), {}).update(rest)
    optimizer.load_state_dict({"state": slots, "param_groups": state["optimizer_param_groups"]})
    torch.set_rng_state(tensors["rng.cpu"])
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    return state["progress"], extra
