"""Prepare a corpus once: `python -m model.train.prepare --corpus PATH [--workers N]`.

Reads the source as a stream (model/train/corpora.py), segments its lines on every core and
writes a store (model/train/store.py): the token types of every line in one flat array, the
line offsets, the types and the train split's counts. Training, word2vec, evaluate and
tune_cache then read the store through memory maps; training prepares it by itself when it is
missing.

The pipeline, after nanoGPT's prepare.py and fairseq-preprocess --workers:

    reader (this process)  -- chunks of ~1 MB of lines -->  N workers: decode, tokenize,
                                                            number the chunk's own types
    writer (this process)  <-- (types, local ids, line lengths), in chunk order
        local ids -> store-wide ids by one lookup table; append to tokens.u32 and lines.i64

Memory stays bounded: at most two chunks a worker are in flight, and the writer keeps only the
types seen so far. Every few seconds the writer records a resume point (files fsynced, then
progress.json replaced atomically); a run killed part way resumes from there, and its store is
byte-identical to an uninterrupted one. The store is built in a hidden `.partial` directory and
renamed into place when finished, so a reader never sees a half-written store.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.tokenizers import TOKENIZER_NAMES, Tokenizer, TokenizerSpec, build_tokenizer
from model.train.corpora import (
    PEOPLES_DAILY,
    SPLITS,
    CorpusError,
    InputFile,
    Source,
    check_jsonl_field,
    decode_lines,
    default_cache_dir,
    open_binary,
    raw_lines,
    resolve_source,
    split_files,
)
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
    TokenStore,
    read_array,
)
from model.vocab import EOS

CHUNK_BYTES = 1 << 20  # input bytes a worker tokenizes at a time
RESUME_SECONDS = 5.0  # how often a resume point is recorded
PROGRESS = "progress.json"
IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: keeps them busy, bounds memory


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
def read_chunks(source: Source, resume: Position, chunk_bytes: int) -> Iterator[Chunk]:
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
    source: Source, spec: TokenizerSpec, position: Position, workers: int, chunk_bytes: int
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


# -- writing --------------------------------------------------------------------------------
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


def _store_name(source: Source, fingerprint: str) -> str:
    return f"{source.name}-{fingerprint[:16]}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a hidden file beside the store): two preparations of
    one corpus never write it at once; the second waits, then finds the store made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare_store(
    source: Source,
    spec: TokenizerSpec,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
    resume_seconds: float = RESUME_SECONDS,
) -> TokenStore:
    """The store of `source` tokenized by `spec`: opened when it exists, else prepared (or a
    killed preparation resumed) with `workers` processes (default: every core)."""
    if spec.user_dict:  # the dictionary's words change the tokens: part of the fingerprint
        settings = {**spec.to_dict(), "user_dict": Path(spec.user_dict).read_text("utf-8")}
    else:
        settings = spec.to_dict()
    fingerprint = source.fingerprint({"format": FORMAT, "tokenizer": settings})
    cache = cache_dir or default_cache_dir()
    final = cache / _store_name(source, fingerprint)
    if (final / META).is_file():
        return TokenStore.open(final)
    for input_file in source.files:
        check_jsonl_field(input_file)
    partial = cache / f".{final.name}.partial"
    with _locked(cache / f".{final.name}.lock"):
        if (final / META).is_file():  # another process finished it while this one waited
            return TokenStore.open(final)
        partial.mkdir(exist_ok=True)
        resumed = (partial / PROGRESS).is_file()
        position = (
            Position(**json.loads((partial / PROGRESS).read_text(encoding="utf-8")))
            if resumed
            else Position()
        )
        pace = (chunk_bytes, resume_seconds)
        write_partial(partial, source, spec, position, workers, progress, pace, resumed)
        finish(partial, source, spec, fingerprint, position)
        (partial / PROGRESS).unlink()
        os.replace(partial, final)
    return TokenStore.open(final)


def write_partial(
    partial: Path,
    source: Source,
    spec: TokenizerSpec,
    position: Position,
    workers: int | None,
    progress: bool,
    pace: tuple[int, float],
    resumed: bool,
) -> None:
    """Tokenize the source from `position` into the partial store (pace: bytes a chunk,
    seconds between resume points), with a progress bar of bytes on disk and its ETA."""
    workers = workers or os.cpu_count() or 1
    chunk_bytes, resume_seconds = pace
    writer = StoreWriter(partial, source, position, resume_seconds)
    bar = tqdm(
        total=source.total_bytes(),
        initial=position.disk_done,
        unit="B",
        unit_scale=True,
        desc=f"preparing {source.name}" + (" (resumed)" if resumed else ""),
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        for chunk, tokenized in tokenized_chunks(source, spec, position, workers, chunk_bytes):
            writer.next_file(chunk.file_index)
            writer.append(chunk, tokenized)
            bar.update(position.disk_done + chunk.end_disk - bar.n)
        writer.next_file(len(source.files))
        writer.record_resume_point()
    finally:
        writer.close()
        bar.close()


def summary(store: TokenStore) -> dict:
    """The store's record in brief: the JSON line the command prints."""
    meta = store.meta
    return {
        "store": str(store.path),
        "corpus": store.name,
        "bytes": meta["bytes"],
        "lines": meta["lines"],
        "types": meta["types"],
        "tokens": meta["split_tokens"],
        "skipped": meta["skipped"],
    }


def describe_skipped(store: TokenStore) -> str | None:
    """One line about the lines that could not be read, naming the first; None if none."""
    skipped = store.meta["skipped"]
    parts = []
    if skipped["unreadable_lines"]:
        parts.append(
            f"{skipped['unreadable_lines']:,} lines were not UTF-8 (or not JSON) and were "
            f"skipped; the first at {skipped['first_unreadable']}"
        )
    if skipped["records_without_field"]:
        parts.append(f"{skipped['records_without_field']:,} records lacked the text field")
    return "; ".join(parts) or None


def build_parser() -> argparse.ArgumentParser:
    """The command's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m model.train.prepare",
        description="Segment a corpus on every core into a memory-mapped store that training, "
        "word2vec and evaluation read (training prepares it by itself when missing).",
    )
    parser.add_argument(
        "--corpus", default=PEOPLES_DAILY, help="peoples-daily, a file or a directory"
    )
    parser.add_argument("--train-file", help="explicit training text (with --valid/--test-file)")
    parser.add_argument("--valid-file", help="explicit validation text")
    parser.add_argument("--test-file", help="explicit test text")
    parser.add_argument("--text-field", help="JSON Lines: the field holding the text (text)")
    parser.add_argument("--tokenizer", default="jieba", choices=TOKENIZER_NAMES)
    parser.add_argument("--lowercase", action="store_true", help="lowercase before tokenizing")
    parser.add_argument("--no-nfkc", dest="nfkc", action="store_false", help="skip NFKC")
    parser.add_argument("--user-dict", help="jieba user dictionary file")
    parser.add_argument("--workers", type=int, help="tokenizing processes (default: every core)")
    parser.add_argument("--cache-dir", help="where stores are kept (default: ~/.cache/nextword)")
    parser.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES, help=argparse.SUPPRESS)
    parser.add_argument(
        "--resume-seconds", type=float, default=RESUME_SECONDS, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--vocabulary",
        action="store_true",
        help="also print the vocabulary the default rule keeps and the share of tokens it covers",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Prepare (or find) the store; print its summary as one JSON line."""
    args = build_parser().parse_args(argv)
    spec = TokenizerSpec(args.tokenizer, args.nfkc, args.lowercase, user_dict=args.user_dict)
    try:
        source = resolve_source(
            args.corpus,
            split_files(args.train_file, args.valid_file, args.test_file),
            args.text_field,
        )
        store = prepare_store(
            source,
            spec,
            Path(args.cache_dir) if args.cache_dir else None,
            args.workers,
            args.progress,
            args.chunk_bytes,
            args.resume_seconds,
        )
    except (CorpusError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    skipped = describe_skipped(store)
    if skipped:
        print(f"warning: {skipped}", file=sys.stderr)
    result = summary(store)
    if args.vocabulary:
        from model.train.data import describe_vocabulary

        result["vocabulary"] = describe_vocabulary(store, None)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
