"""Snapshots to resume from: the last weights, optimizer state, random state, progress and extra
tensors come back exactly, from tensors and JSON only."""

import json

import pytest
import torch

from model.checkpoint import CheckpointError
from model.train.resume import RESUME_STATE, RESUME_TENSORS, read_snapshot, write_snapshot


def model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def test_a_snapshot_brings_back_weights_optimizer_rng_progress_and_extras(tmp_path):
    model, optimizer = model_and_optimizer(0)
    for _ in range(3):  # optimizer state worth keeping: moments and step counts
        optimizer.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    progress = {"epoch": 2, "step": 3, "history": [{"valid_ppl": 120.5}]}
    extra = {"average.0": torch.ones(2, 2)}
    write_snapshot(tmp_path, model, optimizer, progress, extra)
    expected_draw = torch.rand(4)  # what the RNG gives right after the snapshot

    restored, restored_optimizer = model_and_optimizer(1)  # other weights, a fresh optimizer
    record, extras = read_snapshot(tmp_path, restored, restored_optimizer)
    assert record == progress and torch.equal(extras["average.0"], extra["average.0"])
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), restored.state_dict().values(), strict=True)
    )
    assert torch.equal(torch.rand(4), expected_draw)
    for slots, restored_slots in zip(
        optimizer.state.values(), restored_optimizer.state.values(), strict=True
    ):
        assert all(torch.equal(slots[k], restored_slots[k]) for k in slots)
    assert json.loads((tmp_path / RESUME_STATE).read_text())["progress"]["step"] == 3
    assert (tmp_path / RESUME_TENSORS).read_bytes()[:8] != b"\x80\x02\x8a\nl\xfc\x9cF"  # no pickle


def test_a_directory_without_a_snapshot_says_so(tmp_path):
    model, optimizer = model_and_optimizer(0)
    with pytest.raises(CheckpointError, match="holds no resumable run.*without --resume"):
        read_snapshot(tmp_path, model, optimizer)
