"""One batched forward over rows that read different numbers of tokens in the same step.

In a step of the engine a decoding row reads one token while a row still reading its prompt
reads a chunk of it:

    row 0 (decode):   t          ·  ·  ·      lengths [1, 4, 2]
    row 1 (prefill):  p1 p2 p3 p4             padded to (B=3, T=4)
    row 2 (prefill):  q7 q8      ·  ·

Padding must not reach a row's state, so ragged steps pass the rows' lengths to the model,
which reads a packed sequence: each row stops at its own length and its state is taken there.
Steps where every row reads the same number of tokens (all decoding, the common case) need no
lengths. The targets of the chunks just read are then scored in one output-layer call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.batching import IGNORE
from model.rnn import RNNLanguageModel


def forward_rows(
    model: RNNLanguageModel, chunks: Sequence[Sequence[int]], state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, T, D) after each row reads its chunk (T = longest chunk; positions past a
    row's chunk hold no meaning) and the new state (S, L, B, H), each row's at its own end."""
    device = model.device
    lengths = [len(chunk) for chunk in chunks]
    width = max(lengths)
    if min(lengths) == width:
        return model(torch.tensor(chunks, dtype=torch.long, device=device), state)
    tokens = torch.zeros(len(chunks), width, dtype=torch.long)  # (B, T)
    for row, chunk in enumerate(chunks):
        tokens[row, : len(chunk)] = torch.as_tensor(chunk, dtype=torch.long)
    return model(tokens.to(device), state, torch.tensor(lengths))


def chunk_target_log_probs(
    model: RNNLanguageModel, features: torch.Tensor, targets: Sequence[Sequence[int]]
) -> list[torch.Tensor]:
    """Log-probability (on the CPU, float) of each row's targets, from the features (B, T, D)
    of forward_rows; row i's targets[i] follow the tokens its chunk read, one output-layer call
    for all rows."""
    padded = torch.full((len(targets), features.size(1)), IGNORE, dtype=torch.long)
    for row, row_targets in enumerate(targets):
        padded[row, : len(row_targets)] = torch.as_tensor(row_targets, dtype=torch.long)
    values = model.target_log_probs(features, padded.to(features.device))
    return list(values.float().cpu().split([len(t) for t in targets]))
