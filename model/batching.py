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
from array import array
from collections.abc import Callable, Iterator, Sequence
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


def line_lengths(lines: Sequence[Sequence[int]]) -> list[int]:
    """Tokens of each line (without <eos>): read from a prepared store's offsets when the lines
    are a store's view (model/train/store.py), without reading the lines themselves."""
    lengths = getattr(lines, "lengths", None)
    return lengths().tolist() if callable(lengths) else [len(line) for line in lines]


def stream_reader(
    lines: Sequence[Sequence[int]], eos_id: int
) -> Callable[[int, int], torch.Tensor]:
    """read(start, stop): positions [start, stop) of the lines read as one stream, each closed
    by <eos>, as a long tensor. A store's view (model/train/store.py) reads only that stretch
    from disk; plain lists are flattened once."""
    stream = getattr(lines, "stream", None)
    if callable(stream):
        return lambda start, stop: torch.from_numpy(stream(start, stop))
    flat = torch.tensor([i for line in lines for i in (*line, eos_id)], dtype=torch.long)
    return lambda start, stop: flat[start:stop]


def document_stream(lines: Sequence[Sequence[int]], eos_id: int) -> tuple[torch.Tensor, ...]:
    """(inputs (N,), targets (N,)) of the lines read as one stream, each closed by <eos>."""
    total = sum(line_lengths(lines)) + len(lines)
    targets = stream_reader(lines, eos_id)(0, total)
    inputs = torch.cat((torch.tensor([eos_id]), targets[:-1]))
    return inputs, targets


class StreamBatches(Sequence[LineBatch]):
    """The lines as one stream cut into `rows` contiguous columns (the last N mod rows tokens
    dropped), then into consecutive batches of at most `steps` steps: row r of batch k + 1
    continues row r of batch k, so a reader carries its state from one batch to the next.
    Each batch is read from the lines when asked for, never the whole epoch at once."""

    def __init__(self, lines: Sequence[Sequence[int]], eos_id: int, rows: int, steps: int):
        self.read, self.eos_id, self.steps = stream_reader(lines, eos_id), eos_id, steps
        total = sum(line_lengths(lines)) + len(lines)
        self.rows = max(1, min(rows, total))
        self.length = total // self.rows  # each column's length

    def __len__(self) -> int:
        return -(-self.length // self.steps)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not 0 <= index < len(self):
            raise IndexError(index)
        begin = index * self.steps
        end = min(begin + self.steps, self.length)
        inputs, targets = [], []
        for row in range(self.rows):
            start = row * self.length + begin
            # the input before each target is the previous target (<eos> before the first)
            read = self.read(max(start - 1, 0), start + end - begin)
            if start == 0:
                read = torch.cat((torch.tensor([self.eos_id]), read))
            inputs.append(read[:-1])
            targets.append(read[1:])
        return LineBatch(torch.stack(inputs), torch.stack(targets), [])


def stream_batches(
    lines: Sequence[Sequence[int]], eos_id: int, rows: int, steps: int
) -> StreamBatches:
    """The document reading's batches of `lines` (see StreamBatches)."""
    return StreamBatches(lines, eos_id, rows, steps)


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


class LineBatches(Sequence[LineBatch]):
    """Length-grouped batches of lines, each padded when asked for: the plan (which lines go
    together, in which order) is a few integers a line; the batches themselves are read from
    the lines step by step, never a whole epoch at once."""

    def __init__(self, lines: Sequence[Sequence[int]], eos_id: int, groups: list[list[int]]):
        self.lines, self.eos_id = lines, eos_id
        self.groups = [array("q", group) for group in groups]  # 8 bytes a line, not a list's 36

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        group = self.groups[index]
        return line_batch([self.lines[i] for i in group], self.eos_id, group)


def make_batches(
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int,
    seed: int | None = None,
    step_tokens: int | None = None,
    bptt: int = 35,
) -> LineBatches:
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
    lengths = line_lengths(lines)
    order.sort(key=lambda i: lengths[i])  # stable: equal lengths keep the shuffled order
    groups = _group(order, lengths, batch_size, step_tokens, bptt)
    if seed is not None:
        rng.shuffle(groups)
    return LineBatches(lines, eos_id, groups)
