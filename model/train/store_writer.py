"""Writing a store as its chunks come, with resume points: the second half of preparing a store
(model/train/prepare.py), after model/train/segmenter.py.

Local ids of each chunk become store-wide ids by one lookup table and are appended to tokens.u32
and lines.i64 (model/train/store.py has the format). Every few seconds the writer records a
resume point: the files fsynced, then progress.json replaced atomically. A run killed part way
resumes from there (files truncated back to the point), and its store is byte-identical to an
uninterrupted one. `finish` counts the train split and writes meta.json last: a store without
meta.json is not a store.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from model.tokenizers import TokenizerSpec
from model.train.corpora import SPLITS, CorpusError, Source
from model.train.segmenter import Chunk, Tokenized
from model.train.store import (
    EOS_TYPE,
    FORMAT,
    LINES,
    META,
    OFFSET_DTYPE,
    TOKEN_DTYPE,
    TOKENS,
    TRAIN_COUNTS,
    TYPES,
    read_array,
)
from model.vocab import EOS

RESUME_SECONDS = 5.0  # how often a resume point is recorded
PROGRESS = "progress.json"


@dataclass
class Position:
    """A resume point: how much of the source is in the store, and its counts so far."""

    file_index: int = 0
    offset: int = 0  # uncompressed bytes of that file already read
    next_line: int = 1
    disk_done: int = 0  # bytes on disk of the files before file_index (progress)
    tokens: int = 0  # length of tokens.u32
    lines: int = 0  # lines written (lines.i64 holds lines + 1 offsets)
    types: int = 1  # lines of types.jsonl
    split_lines: dict[str, int] = field(default_factory=dict)  # explicit splits
    bad_lines: int = 0
    first_bad: str | None = None  # "file:line" of the first unreadable line
    missing_field: int = 0


class StoreWriter:
    """Appends tokenized chunks to a partial store and records resume points."""

    def __init__(self, directory: Path, source: Source, position: Position, resume_seconds: float):
        self.directory, self.source, self.position = directory, source, position
        self.resume_seconds = resume_seconds
        self.types, kept = _resumed_types(directory / TYPES, position.types)
        self.index = {t: i for i, t in enumerate(self.types)}
        self.files = {}
        for name, length, dtype in (
            (TOKENS, position.tokens, TOKEN_DTYPE),
            (LINES, position.lines + 1, OFFSET_DTYPE),
        ):
            handle = open(directory / name, "r+b" if (directory / name).exists() else "w+b")  # noqa: SIM115
            handle.truncate(length * dtype.itemsize)  # what was written after the resume point
            handle.seek(0, os.SEEK_END)
            self.files[name] = handle
        if position.lines == 0:
            self.files[LINES].seek(0)
            self.files[LINES].write(np.zeros(1, dtype=OFFSET_DTYPE).tobytes())
        self.types_file = open(directory / TYPES, "wb" if not kept else "r+b")  # noqa: SIM115
        self.types_file.truncate(kept)
        self.types_file.seek(0, os.SEEK_END)
        if not kept:
            self.types_file.write((json.dumps(EOS) + "\n").encode())
        self._last_resume_point = time.monotonic()

    def append(self, chunk: Chunk, tokenized: Tokenized) -> None:
        """Map a chunk's local types to store-wide ids and append its lines."""
        p, new_types = self.position, []
        mapping = np.empty(len(tokenized.types), dtype=TOKEN_DTYPE)
        for local, token in enumerate(tokenized.types):
            known = self.index.get(token)
            if known is None:
                known = self.index[token] = len(self.types)
                self.types.append(token)
                new_types.append(json.dumps(token, ensure_ascii=False) + "\n")
            mapping[local] = known
        self.types_file.write("".join(new_types).encode())
        self.files[TOKENS].write(mapping[tokenized.ids].tobytes())
        ends = p.tokens + np.cumsum(tokenized.lengths)
        self.files[LINES].write(ends.astype(OFFSET_DTYPE).tobytes())
        p.tokens += int(tokenized.lengths.sum())
        p.lines += len(tokenized.lengths)
        split = self.source.files[chunk.file_index].split
        if split:
            p.split_lines[split] = p.split_lines.get(split, 0) + len(tokenized.lengths)
        if tokenized.bad and p.first_bad is None:
            p.first_bad = f"{self.source.files[chunk.file_index].path}:{tokenized.bad[0]}"
        p.bad_lines += len(tokenized.bad)
        p.missing_field += tokenized.missing_field
        p.types = len(self.types)
        p.offset, p.next_line = chunk.end_offset, chunk.first_line + len(chunk.lines)
        if time.monotonic() - self._last_resume_point >= self.resume_seconds:
            self.record_resume_point()

    def next_file(self, file_index: int) -> None:
        """The reader moved on to file_index: the position now starts there."""
        p = self.position
        if file_index != p.file_index:
            p.disk_done += sum(
                os.path.getsize(f.path) for f in self.source.files[p.file_index : file_index]
            )
            p.file_index, p.offset, p.next_line = file_index, 0, 1

    def flush(self) -> None:
        """Everything written so far on disk."""
        for handle in (*self.files.values(), self.types_file):
            handle.flush()
            os.fsync(handle.fileno())

    def record_resume_point(self) -> None:
        """Files first, then the position that says how much of them counts."""
        self.flush()
        write_json_atomically(self.directory / PROGRESS, asdict(self.position))
        self._last_resume_point = time.monotonic()

    def close(self) -> None:
        """Flush and close the files."""
        self.flush()
        for handle in (*self.files.values(), self.types_file):
            handle.close()


def _resumed_types(path: Path, count: int) -> tuple[list[str], int]:
    """(the first `count` types of a partial store's types.jsonl, their length in bytes); a
    fresh store: ([<eos>], 0)."""
    if not path.exists() or count <= 1:
        return [EOS], 0
    with open(path, "rb") as stream:
        lines = [stream.readline() for _ in range(count)]
    return [json.loads(line) for line in lines], sum(len(line) for line in lines)


def write_json_atomically(path: Path, value: dict) -> None:
    """Write JSON to a temporary file, fsync it, and rename it over `path`."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(value, stream, ensure_ascii=False, indent=1)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def split_boundaries(source: Source, position: Position) -> dict[str, list[int]]:
    """[first, stop) line numbers of each split: the files' own, or 90/5/5 by line order
    (docs/data.md)."""
    if source.explicit_splits:
        bounds, first = {}, 0
        for split in SPLITS:
            stop = first + position.split_lines.get(split, 0)
            bounds[split], first = [first, stop], stop
        return bounds
    n = position.lines
    a, b = int(0.9 * n), int(0.95 * n)
    return {"train": [0, a], "valid": [a, b], "test": [b, n]}


def finish(directory: Path, source: Source, spec: TokenizerSpec, fingerprint: str, p: Position):
    """Count train, write meta.json: the store is complete."""
    if p.lines == 0:
        where = ", ".join(f.path for f in source.files[:3])
        raise CorpusError(
            f"corpus {source.name!r} ({where}) holds no text lines"
            + (f" ({p.bad_lines} unreadable)" if p.bad_lines else "")
            + (f" ({p.missing_field} records without the text field)" if p.missing_field else "")
            + ": give a corpus with text in it"
        )
    bounds = split_boundaries(source, p)
    starts = read_array(directory / LINES, OFFSET_DTYPE)
    tokens = read_array(directory / TOKENS, TOKEN_DTYPE)
    train_end = int(starts[bounds["train"][1]])
    counts = np.zeros(p.types, dtype=OFFSET_DTYPE)
    step = 1 << 24  # count in slices: bounded memory whatever the split's size
    for begin in range(0, train_end, step):
        counts += np.bincount(tokens[begin : min(train_end, begin + step)], minlength=p.types)
    counts[EOS_TYPE] = bounds["train"][1] - bounds["train"][0]
    with open(directory / TRAIN_COUNTS, "wb") as stream:
        stream.write(counts.tobytes())
        stream.flush()
        os.fsync(stream.fileno())
    split_tokens = {s: int(starts[b[1]] - starts[b[0]]) for s, b in bounds.items()}
    meta = {
        "format": FORMAT,
        "name": source.name,
        "content_hash": fingerprint,
        "files": [asdict(f) for f in source.files],
        "tokenizer": spec.to_dict(),
        "lines": p.lines,
        "types": p.types,
        "splits": bounds,
        "split_tokens": split_tokens,  # each line's <eos> included
        "bytes": source.total_bytes(),
        "skipped": {
            "unreadable_lines": p.bad_lines,
            "first_unreadable": p.first_bad,
            "records_without_field": p.missing_field,
        },
    }
    write_json_atomically(directory / META, meta)
