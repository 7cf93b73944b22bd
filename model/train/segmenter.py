"""Reading a corpus in chunks of lines and segmenting them on a pool of processes: the first half
of preparing a store (model/train/prepare.py).

    reader (this process)  -- chunks of ~1 MB of lines -->  N workers: decode, tokenize,
                                                            number the chunk's own types
    the store's writer     <-- (types, local ids, line lengths), in chunk order

At most two chunks a worker are in flight, so memory stays bounded whatever the corpus size; one
worker runs in this process. A chunk never spans two files and ends at a line, so a resume point
(model/train/store_writer.py) is a file, an offset and a line number.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from model.tokenizers import Tokenizer, TokenizerSpec, build_tokenizer
from model.train.corpora import InputFile, Source, decode_lines, open_binary, raw_lines
from model.train.store import TOKEN_DTYPE
from model.vocab import EOS

CHUNK_BYTES = 1 << 20  # input bytes a worker tokenizes at a time
IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: keeps them busy, bounds memory


class ResumeAt(Protocol):
    """Where reading starts again: a file of the source, an offset in it and that line's
    number (the store writer's resume point is one)."""

    file_index: int
    offset: int
    next_line: int


@dataclass
class Chunk:
    """Physical lines of one file, and where they end (to resume after them)."""

    file_index: int
    first_line: int  # 1-based line number of the first physical line in its file
    lines: list[bytes]
    end_offset: int  # uncompressed offset just after the last line
    end_disk: int  # bytes of the file on disk read so far (progress)


@dataclass
class Tokenized:
    """A chunk's lines as the chunk's own numbering of types."""

    types: list[str]  # local id -> token (local id 0 is <eos>)
    ids: np.ndarray  # uint32 local ids of every line, each closed by 0
    lengths: np.ndarray  # int64 tokens of each line, its <eos> included
    bad: list[int]  # 1-based line numbers (in the file) that could not be read
    missing_field: int


# -- the workers -----------------------------------------------------------------------------
_worker_tokenizer: Tokenizer | None = None
_worker_files: list[InputFile] = []


def _start_worker(spec: dict, files: list[InputFile]) -> None:
    """Build the tokenizer once per worker process."""
    global _worker_tokenizer, _worker_files
    _worker_tokenizer = build_tokenizer(TokenizerSpec.from_dict(spec))
    _worker_files = files


def tokenize_chunk(chunk: Chunk) -> Tokenized:
    """Decode and tokenize a chunk's lines, numbering its types locally (0: <eos>)."""
    assert _worker_tokenizer is not None
    decoded = decode_lines(chunk.lines, _worker_files[chunk.file_index])
    local: dict[str, int] = {EOS: 0}
    ids: list[int] = []
    lengths: list[int] = []
    for line in decoded.lines:
        tokens = _worker_tokenizer.tokenize(line)
        ids.extend(local.setdefault(t, len(local)) for t in tokens)
        ids.append(0)
        lengths.append(len(tokens) + 1)
    return Tokenized(
        list(local),
        np.asarray(ids, dtype=TOKEN_DTYPE),
        np.asarray(lengths, dtype=np.int64),
        [chunk.first_line + i for i in decoded.bad],
        decoded.missing_field,
    )


# -- reading --------------------------------------------------------------------------------
def read_chunks(source: Source, resume: ResumeAt, chunk_bytes: int) -> Iterator[Chunk]:
    """The source's physical lines from a resume point on, in chunks of about chunk_bytes;
    a chunk never spans two files (each file may have its own split and reading)."""
    first_file, first_offset, first_line = resume.file_index, resume.offset, resume.next_line
    for index in range(first_file, len(source.files)):
        start = first_offset if index == first_file else 0
        line_number = first_line if index == first_file else 1
        raw, stream = open_binary(source.files[index])
        with raw, stream:
            stream.seek(start)
            lines: list[bytes] = []
            size, first = 0, line_number
            for line, offset in raw_lines(stream):
                lines.append(line)
                size += len(line) + 1
                line_number += 1
                if size >= chunk_bytes:
                    yield Chunk(index, first, lines, offset, raw.tell())
                    lines, size, first = [], 0, line_number
            if lines:
                yield Chunk(index, first, lines, stream.tell(), raw.tell())


def tokenized_chunks(
    source: Source, spec: TokenizerSpec, position: ResumeAt, workers: int, chunk_bytes: int
) -> Iterator[tuple[Chunk, Tokenized]]:
    """Every chunk from `position` with its tokens, in source order: in this process for one
    worker, else on a pool with a bounded number of chunks in flight."""
    chunks = read_chunks(source, position, chunk_bytes)
    if workers <= 1:
        _start_worker(spec.to_dict(), source.files)
        for chunk in chunks:
            yield chunk, tokenize_chunk(chunk)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(workers, _start_worker, (spec.to_dict(), source.files)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(tokenize_chunk, (chunk,))))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()
