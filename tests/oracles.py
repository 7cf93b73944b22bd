"""Oracles the tests hold the service's answers against: the model read plainly, one text at a
time, without the runner, its rows or its batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.rnn import RNNLanguageModel


@torch.inference_mode()
def read_prompt(
    model: RNNLanguageModel, ids: Sequence[int], eos_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities (V,) of the next token, state) after reading <eos> + ids from the
    start state."""
    device = model.device
    tokens = torch.tensor([[eos_id, *ids]], dtype=torch.long, device=device)  # (1, T)
    features, state = model(tokens)
    return model.log_probs(features[0, -1:])[0], state
