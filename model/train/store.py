"""A prepared corpus on disk, read through memory maps: the token ids of every line once,
whatever the corpus's size, so that training's memory is the model's and not the data's.

A store is a directory (written by model/train/prepare.py, which names its files):

    meta.json          what the store holds: source, tokenizer, splits, counts, skipped lines
    tokens.u32         every line's token types, each line closed by type 0 (<eos>)
    lines.i64          where each line starts in tokens.u32 (n + 1 offsets)
    types.jsonl        the token types, one JSON string a line, in order of first sight
    train_counts.i64   how often each type occurs in the train split

    tokens   [ 我 爱 北京 0 | 今天 0 | 0 | 你好 吗 0 ]      (0: the <eos> closing each line)
    lines    [ 0,           4,      6,  7,          10 ]

The splits are consecutive runs of lines (train, valid, test). A vocabulary maps types to its
ids with one lookup table, so one store serves every --min-freq and --max-vocab; `TokenLines`
is a split read through that table, line by line or as one stream, in either direction,
without copying the split.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np

from model.vocab import Vocab

META = "meta.json"
TOKENS = "tokens.u32"
LINES = "lines.i64"
TYPES = "types.jsonl"
TRAIN_COUNTS = "train_counts.i64"
FORMAT = 1
EOS_TYPE = 0  # type 0 is always <eos>: the marker that closes every line
TOKEN_DTYPE, OFFSET_DTYPE = np.dtype("<u4"), np.dtype("<i8")


def read_array(path: Path, dtype: np.dtype) -> np.ndarray:
    """A file of little-endian numbers, memory-mapped read-only (an empty file: an empty
    array, which np.memmap refuses)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def read_types(path: Path) -> list[str]:
    """The token types of a types.jsonl file, in id order."""
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


class TokenLines(Sequence[Any]):
    """Lines of a store mapped to vocabulary ids, in a model's reading order: line i is an
    int64 array of its ids (no <eos>). Slicing gives another view; nothing is copied until a
    line or a stretch of the stream is read."""

    def __init__(
        self,
        tokens: np.ndarray,
        starts: np.ndarray,
        table: np.ndarray,
        rows: range,
        backward: bool = False,
    ):
        self._tokens, self._starts, self._table = tokens, starts, table
        self._rows, self.backward = rows, backward  # rows: the store's line numbers, in order

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> TokenLines: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | TokenLines:
        if isinstance(index, slice):
            return TokenLines(
                self._tokens, self._starts, self._table, self._rows[index], self.backward
            )
        row = self._rows[index]
        ids = self._table[self._tokens[self._starts[row] : self._starts[row + 1] - 1]]
        return ids[::-1].copy() if self.backward else ids

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    def lengths(self) -> np.ndarray:
        """Tokens of each line (without its <eos>), in this view's order, as int64."""
        rows = np.arange(self._rows.start, self._rows.stop, self._rows.step, dtype=np.int64)
        return (self._starts[rows + 1] - self._starts[rows] - 1).astype(np.int64)

    @property
    def contiguous(self) -> bool:
        """Whether the view is a run of consecutive lines (what the stream reading needs)."""
        return abs(self._rows.step) == 1 or len(self._rows) <= 1

    def num_tokens(self) -> int:
        """Targets of the view: its tokens and one <eos> per line."""
        return int(self.lengths().sum()) + len(self)

    def stream(self, start: int, stop: int) -> np.ndarray:
        """Positions [start, stop) of the view read as one stream, each line closed by <eos>
        (the targets of the document reading), as int64 vocabulary ids."""
        if not self.contiguous:
            raise ValueError("only a run of consecutive lines reads as one stream")
        if not len(self):
            return np.zeros(0, dtype=np.int64)
        first, last = min(self._rows[0], self._rows[-1]), max(self._rows[0], self._rows[-1])
        begin, end = int(self._starts[first]), int(self._starts[last + 1])
        stop = min(stop, end - begin)
        if not self.backward:
            return self._table[self._tokens[begin + start : begin + stop]]
        # right to left: the stream reversed, except that each line's <eos> still closes it:
        # [l1 e l2 e] reads as [l2r e l1r e], i.e. tokens[end-2], ..., tokens[begin], e
        positions = end - 2 - np.arange(start, stop, dtype=np.int64)
        ids = np.empty(len(positions), dtype=np.int64)
        inside = positions >= begin
        ids[inside] = self._table[self._tokens[positions[inside]]]
        ids[~inside] = self._table[EOS_TYPE]
        return ids

    def count_of(self, token_id: int, stretch: int = 1 << 22) -> int:
        """How many of the view's targets are token_id (e.g. <unk>), read from disk a stretch
        at a time so that counting a split of any size holds one stretch."""
        total = self.num_tokens()
        return sum(
            int((self.stream(start, min(start + stretch, total)) == token_id).sum())
            for start in range(0, total, stretch)
        )

    def head(self, max_tokens: int) -> TokenLines:
        """The first lines of the view holding at most max_tokens targets (at least one line):
        a bounded, fixed slice for validation during training."""
        totals = np.cumsum(self.lengths() + 1)
        keep = max(1, int(np.searchsorted(totals, max_tokens, side="right")))
        return self[:keep]


@dataclass
class TokenStore:
    """An opened store: its record, memory-mapped arrays and types."""

    path: Path
    meta: dict

    @classmethod
    def open(cls, path: Path) -> TokenStore:
        """Open a finished store (a directory with meta.json)."""
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is a store of format {meta.get('format')}, not {FORMAT}")
        return cls(path, meta)

    @property
    def name(self) -> str:
        """The corpus's name (peoples-daily, a file's stem, a directory's name)."""
        return self.meta["name"]

    @property
    def content_hash(self) -> str:
        """The source's fingerprint: its text and how it was read and tokenized."""
        return self.meta["content_hash"]

    @cached_property
    def tokens(self) -> np.ndarray:
        """Every line's types, each line closed by EOS_TYPE (memory-mapped)."""
        return read_array(self.path / TOKENS, TOKEN_DTYPE)

    @cached_property
    def starts(self) -> np.ndarray:
        """Where each line starts in `tokens`, n + 1 offsets (memory-mapped)."""
        return read_array(self.path / LINES, OFFSET_DTYPE)

    @cached_property
    def types(self) -> list[str]:
        """Token types by id (type 0 is <eos>)."""
        return read_types(self.path / TYPES)

    def split_rows(self, split: str) -> range:
        """The store's line numbers of a split."""
        first, stop = self.meta["splits"][split]
        return range(first, stop)

    def train_counts(self, max_lines: int | None = None) -> np.ndarray:
        """How often each type occurs in train (in its first max_lines lines, if given)."""
        if max_lines is None:
            return read_array(self.path / TRAIN_COUNTS, OFFSET_DTYPE)
        rows = self.split_rows("train")[:max_lines]
        end = int(self.starts[rows.stop]) if len(rows) else 0
        start = int(self.starts[rows.start]) if len(rows) else 0
        return np.bincount(self.tokens[start:end], minlength=len(self.types)).astype(np.int64)

    def build_vocab(
        self, min_freq: int, max_size: int | None, max_lines: int | None = None
    ) -> Vocab:
        """The vocabulary rule (model/vocab.py) applied to the train split's counts."""
        counts = self.train_counts(max_lines)
        rows = self.split_rows("train")
        num_lines = len(rows if max_lines is None else rows[:max_lines])
        return Vocab.from_counts(
            zip(self.types, counts.tolist(), strict=True), num_lines, min_freq, max_size
        )

    def table(self, vocab: Vocab) -> np.ndarray:
        """type id -> vocabulary id (<unk> for types outside it), int64."""
        stoi, unk = vocab.stoi, vocab.unk_id
        table = np.fromiter((stoi.get(t, unk) for t in self.types), np.int64, len(self.types))
        table[EOS_TYPE] = vocab.eos_id
        return table

    def lines(self, split: str, table: np.ndarray, direction: str = "forward") -> TokenLines:
        """A split's lines as vocabulary ids, in the reading order of `direction` (backward:
        the last line first, each reversed)."""
        rows = self.split_rows(split)
        if direction == "backward":
            rows = rows[::-1]
        return TokenLines(self.tokens, self.starts, table, rows, direction == "backward")

    def token_lines(self, split: str) -> list[list[str]]:
        """A split's lines as token strings (for the tools that show or resegment text; loads
        the split: meant for held-out splits)."""
        types, tokens, starts = self.types, self.tokens, self.starts
        return [
            [types[t] for t in tokens[starts[row] : starts[row + 1] - 1].tolist()]
            for row in self.split_rows(split)
        ]
