"""Prepare a corpus once: `python -m model.train.prepare --corpus PATH [--workers N]`.

Reads the source as a stream (model/train/corpora.py), segments its lines on every core and
writes a store (model/train/store.py): the token types of every line in one flat array, the
line offsets, the types and the train split's counts. Training, word2vec, evaluate and
tune_cache then read the store through memory maps; training prepares it by itself when it is
missing.

The pipeline, after nanoGPT's prepare.py and fairseq-preprocess --workers: chunks of lines are
segmented on a pool of processes (model/train/segmenter.py) and appended, in order, by the
store's writer (model/train/store_writer.py), which records resume points as it goes. This module
finds or makes the store: a run killed part way is resumed, the store is built in a hidden
`.partial` directory and renamed into place when finished (so a reader never sees a half-written
store), and a lock file beside it keeps two preparations of one corpus from writing at once.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from model.tokenizers import TOKENIZER_NAMES, TokenizerSpec
from model.train.corpora import (
    PEOPLES_DAILY,
    CorpusError,
    Source,
    check_jsonl_field,
    default_cache_dir,
    resolve_source,
    split_files,
)
from model.train.segmenter import CHUNK_BYTES, tokenized_chunks
from model.train.store import FORMAT, META, TokenStore
from model.train.store_writer import (
    PROGRESS,
    RESUME_SECONDS,
    Position,
    StoreWriter,
    finish,
)


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
