"""One batched forward over rows that read different numbers of tokens in the same step.

In a step of the engine a decoding row reads one token while a row still reading its prompt
reads a chunk of it:

    row 0 (decode):   t          ·  ·  ·      lengths [1, 4, 2]
    row 1 (prefill):  p1 p2 p3 p4             padded to (B=3, T=4)
    row 2 (prefill):  q7 q8      ·  ·

Padding must not reach a row's state, so ragged steps go through a packed sequence: the
recurrent layer stops each row at its own length and returns the state there. Steps where every
row reads the same number of tokens (all decoding, the common case) use the model's forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from model.rnn import RNNLanguageModel


def forward_rows(
    model: RNNLanguageModel, chunks: Sequence[Sequence[int]], state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, T, D) after each row reads its chunk (T = longest chunk; positions past a
    row's chunk hold no meaning) and the new state (S, L, B, H), each row's at its own end."""
    device = model.embedding.weight.device
    lengths = [len(chunk) for chunk in chunks]
    width = max(lengths)
    if min(lengths) == width:
        return model(torch.tensor(chunks, dtype=torch.long, device=device), state)
    tokens = torch.zeros(len(chunks), width, dtype=torch.long)  # (B, T)
    for row, chunk in enumerate(chunks):
        tokens[row, : len(chunk)] = torch.as_tensor(chunk, dtype=torch.long)
    return _packed_forward(model, tokens.to(device), torch.tensor(lengths), state)


def _packed_forward(
    model: RNNLanguageModel, tokens: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """model.forward's computation, reading each row only up to its length.

    Mirrors RNNLanguageModel.forward layer by layer (embedding, recurrent layer, projection);
    it lives here until the model's forward accepts lengths itself.
    """
    embedded = model.dropout_embedding(model.embedding(tokens))  # (B, T, E)
    packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    if model.config.cell == "lstm":
        output, (h, c) = model.rnn(packed, (state[0].contiguous(), state[1].contiguous()))
        new_state = torch.stack((h, c))
    else:
        output, h = model.rnn(packed, state[0].contiguous())
        new_state = h.unsqueeze(0)
    padded, _ = pad_packed_sequence(output, batch_first=True, total_length=tokens.size(1))
    features = model.dropout_output(padded)  # (B, T, H)
    if model.projection is not None:
        features = model.projection(features)  # (B, T, E)
    return features, new_state
