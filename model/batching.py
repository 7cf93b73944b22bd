"""Batches of whole lines for training and evaluation, cut into BPTT windows.

Every line is its own sequence: the model reads <eos> first (the start state) and predicts each
token and finally the closing <eos>, so a line's perplexity never depends on what else shares
its batch, and the service, which scores one text at a time, sees exactly what training saw.

Lines are grouped by length so that padding stays small; a batch of B lines is a (B, T) block
read in windows of `bptt` steps, the recurrent state carried (and detached) from one window to
the next:

    line a:  <eos> 我  爱  北京  天安门 | <eos> ...    inputs  (B=3, T=5)
    line b:  <eos> 今天 天气 好   .     |
    line c:  <eos> 你好 <pad> <pad> <pad>
             └── window 1 ──┘└ window 2 ┘      (bptt = 3)

Targets are the inputs shifted by one, ending in <eos>; padding targets are IGNORE and cost
nothing.

Training with `--context document` reads the split instead as ONE stream in file order (each
line still closed by <eos>), cut into B contiguous columns read side by side, as the reference
PyTorch example's batchify does; consecutive stream batches continue each other, so the trainer
carries the state across windows, batches and lines:

    stream   <eos> l1 ... <eos> l2 ... <eos> l3 ... <eos> l4 ...
    row 0    <eos> l1 ... <eos> l2 ..       | batch 1 | batch 2 | ...
    row 1    . <eos> l3 ... <eos> l4 ...    |         |         |
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from model.rnn import IGNORE


@dataclass
class LineBatch:
    """inputs and targets of shape (B, T); targets are IGNORE where a line has ended; `rows`
    gives the index, in the caller's list, of each row's line."""

    inputs: torch.Tensor
    targets: torch.Tensor
    rows: list[int]

    def windows(
        self, bptt: int, rng: random.Random | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, targets) windows of at most bptt steps, in reading order. With rng, each
        window's length is drawn as in AWD-LSTM's variable-length BPTT (around bptt, or bptt/2
        one time in twenty, never under 5), so window edges fall at other places each epoch."""
        start = 0
        while start < self.inputs.size(1):
            length = bptt if rng is None else variable_window(bptt, rng)
            yield self.inputs[:, start : start + length], self.targets[:, start : start + length]
            start += length


def document_stream(lines: Sequence[Sequence[int]], eos_id: int) -> tuple[torch.Tensor, ...]:
    """(inputs (N,), targets (N,)) of the lines read as one stream, each closed by <eos>."""
    targets = torch.tensor([i for line in lines for i in (*line, eos_id)], dtype=torch.long)
    inputs = torch.cat((torch.tensor([eos_id]), targets[:-1]))
    return inputs, targets


def stream_batches(
    lines: Sequence[Sequence[int]], eos_id: int, rows: int, steps: int
) -> list[LineBatch]:
    """The lines as one stream cut into `rows` contiguous columns (the last N mod rows tokens
    dropped), then into consecutive batches of at most `steps` steps: row r of batch k + 1
    continues row r of batch k, so a reader carries its state from one batch to the next."""
    inputs, targets = document_stream(lines, eos_id)
    rows = max(1, min(rows, targets.numel()))
    length = targets.numel() // rows
    columns = (
        inputs[: rows * length].view(rows, length),
        targets[: rows * length].view(rows, length),
    )
    return [
        LineBatch(columns[0][:, start : start + steps], columns[1][:, start : start + steps], [])
        for start in range(0, length, steps)
    ]


def variable_window(bptt: int, rng: random.Random) -> int:
    """A random window length: normal around bptt (or bptt/2 with probability 0.05), sd 5."""
    centre = bptt if rng.random() < 0.95 else bptt / 2
    return max(5, round(rng.gauss(centre, 5)))


def line_batch(
    lines: Sequence[Sequence[int]], eos_id: int, rows: Sequence[int] | None = None
) -> LineBatch:
    """One padded batch: row i reads <eos> + lines[i] and predicts lines[i] + <eos>."""
    length = max(len(line) for line in lines) + 1
    inputs = torch.full((len(lines), length), eos_id, dtype=torch.long)
    targets = torch.full((len(lines), length), IGNORE, dtype=torch.long)
    for row, line in enumerate(lines):
        ids = torch.as_tensor(line, dtype=torch.long)
        inputs[row, 1 : len(line) + 1] = ids
        targets[row, : len(line)] = ids
        targets[row, len(line)] = eos_id
    return LineBatch(inputs, targets, list(rows) if rows is not None else list(range(len(lines))))


def _group(
    order: Sequence[int],
    lengths: Sequence[int],
    batch_size: int,
    step_tokens: int | None,
    bptt: int,
) -> list[list[int]]:
    """Consecutive runs of length-sorted line indices: at most batch_size lines, and with
    step_tokens, at most as many lines as keep one window (rows × steps) near that budget."""
    groups: list[list[int]] = []
    current: list[int] = []
    for index in order:
        rows_allowed = batch_size
        if step_tokens is not None:
            rows_allowed = min(batch_size, max(1, step_tokens // min(lengths[index] + 1, bptt)))
        if current and len(current) >= rows_allowed:
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


def make_batches(
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int,
    seed: int | None = None,
    step_tokens: int | None = None,
    bptt: int = 35,
) -> list[LineBatch]:
    """Length-grouped batches of lines.

    With step_tokens, short lines come many to a batch and long ones few, so every optimizer
    step sees about the same number of tokens (a fixed per-step cost, such as the optimizer's
    pass over a 36k-word embedding, is then paid per ~step_tokens tokens, not per few hundred).
    With a seed, lines of equal length are shuffled before grouping and the batch order is
    shuffled too (a fresh seed per epoch); without one the order is deterministic (evaluation).
    """
    order = list(range(len(lines)))
    rng = random.Random(seed)
    if seed is not None:
        rng.shuffle(order)
    lengths = [len(line) for line in lines]
    order.sort(key=lambda i: lengths[i])  # stable: equal lengths keep the shuffled order
    groups = _group(order, lengths, batch_size, step_tokens, bptt)
    if seed is not None:
        rng.shuffle(groups)
    return [line_batch([lines[i] for i in group], eos_id, group) for group in groups]
