"""Preparing a corpus: the same store whatever the workers, bad lines skipped and named, a
preparation killed part way resumed into the very same bytes, one-line errors, and a store that
appears whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model.tokenizers import TokenizerSpec
from model.train.corpora import resolve_source
from model.train.prepare import PROGRESS, prepare_store

JIEBA = TokenizerSpec("jieba")


def digests(store_path: Path) -> dict[str, str]:
    """sha256 of every file of a store."""
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(store_path.iterdir())
        if f.is_file()
    }


def prepare_command(corpus: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "model.train.prepare", "--corpus", str(corpus),
            "--cache-dir", str(cache), "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def larger_corpus(tiny_corpus_file: Path, tmp_path_factory) -> Path:
    """The tiny corpus written 12 times over (about 2 MB): a few seconds of jieba."""
    path = tmp_path_factory.mktemp("larger") / "larger.txt"
    path.write_text(tiny_corpus_file.read_text(encoding="utf-8") * 12, encoding="utf-8")
    return path


def test_one_worker_and_two_write_the_same_store(tiny_corpus_file, tmp_path):
    source = resolve_source(str(tiny_corpus_file))
    one = prepare_store(source, JIEBA, tmp_path / "one", 1, False, chunk_bytes=20_000)
    two = prepare_store(source, JIEBA, tmp_path / "two", 2, False, chunk_bytes=20_000)
    assert one.path.name == two.path.name
    assert digests(one.path) == digests(two.path)
    assert one.meta["lines"] == 600


def test_a_line_that_is_not_utf8_is_skipped_counted_and_named(tmp_path):
    path = tmp_path / "mixed.txt"
    good = "\n".join(f"第{i}行 文本" for i in range(40)).encode()
    path.write_bytes(b"first ok\n" + b"bad \xff\xfe bytes\n" + good + b"\nagain \xc3\n")
    result = subprocess.run(
        prepare_command(path, tmp_path / "cache", "--workers", "1"),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["lines"] == 41
    assert summary["skipped"]["unreadable_lines"] == 2
    assert summary["skipped"]["first_unreadable"] == f"{path}:2"
    assert f"2 lines were not UTF-8 (or not JSON) and were skipped; the first at {path}:2" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text(" \n\n", encoding="utf-8"), "holds no text lines"),
        (lambda p: p.mkdir(), "holds no .txt, .jsonl or .gz text files"),
    ],
)
def test_an_empty_corpus_is_one_line_that_says_what_to_fix(tmp_path, make, message):
    corpus = tmp_path / "corpus.txt"
    make(corpus)
    result = subprocess.run(
        prepare_command(corpus, tmp_path / "cache"), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stderr.startswith("error: ")


def test_jsonl_without_the_field_is_one_line(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"body": "x"}\n', encoding="utf-8")
    result = subprocess.run(
        prepare_command(corpus, tmp_path / "cache"), capture_output=True, text=True
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "no field 'text' (its fields: body); name the text field with --text-field" in (
        result.stderr
    )


def test_a_killed_preparation_resumes_into_the_same_bytes(larger_corpus, tmp_path):
    quick = ("--workers", "1", "--chunk-bytes", "20000", "--resume-seconds", "0")
    whole = subprocess.run(
        prepare_command(larger_corpus, tmp_path / "whole", *quick),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = digests(Path(json.loads(whole.stdout)["store"]))

    cache = tmp_path / "killed"
    process = subprocess.Popen(prepare_command(larger_corpus, cache, *quick))
    deadline = time.monotonic() + 120
    progress = []
    while not progress and process.poll() is None and time.monotonic() < deadline:
        progress = [p for p in cache.glob(f".*.partial/{PROGRESS}") if p.stat().st_size]
        time.sleep(0.02)
    assert progress, "the preparation finished or failed before a resume point was recorded"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = progress[0].parent
    assert not list(cache.glob("larger-*"))  # no finished store yet: only the partial one
    done = json.loads(progress[0].read_text(encoding="utf-8"))
    assert done["lines"] > 0

    resumed = subprocess.run(
        prepare_command(larger_corpus, cache, *quick), capture_output=True, text=True, check=True
    )
    store = Path(json.loads(resumed.stdout)["store"])
    assert store.parent == cache and not partial.exists()
    assert digests(store) == expected
