"""Corpora: the peoples-daily benchmark counts through the prepared store, the WikiText layout,
explicit files, text files, trees of files, JSON Lines, gzip; the corpus a checkpoint records."""

import gzip
import json

import pytest

from model.tokenizers import TokenizerSpec
from model.train.corpora import (
    PEOPLES_DAILY,
    CorpusError,
    default_cache_dir,
    resolve_source,
    split_files,
    trained_corpus,
)
from model.train.data import open_store
from model.train.prepare import prepare_store

WHITESPACE = TokenizerSpec("whitespace")


def store_of(tmp_path, corpus, files=None, text_field=None, spec=WHITESPACE):
    source = resolve_source(str(corpus), files, text_field)
    return prepare_store(source, spec, tmp_path / "stores", workers=1, progress=False)


def test_peoples_daily_matches_the_benchmark_counts_of_data_md():
    store = open_store(PEOPLES_DAILY, TokenizerSpec("jieba"), workers=2, progress=False)
    vocab = store.build_vocab(2, None)
    test = store.lines("test", store.table(vocab))
    unknown = int((test.stream(0, test.num_tokens()) == vocab.unk_id).sum())
    assert store.meta["lines"] == 19_484
    assert len(vocab) == 35_923
    assert store.meta["split_tokens"]["train"] == 952_711
    assert test.num_tokens() == 47_277
    assert round(100 * unknown / test.num_tokens(), 2) == 9.06


def test_directory_in_wikitext_layout_keeps_blank_lines_as_eos(tmp_path):
    corpus = tmp_path / "wt"
    corpus.mkdir()
    for split in ("train", "valid", "test"):
        (corpus / f"{split}.txt").write_text(" = Title = \n\n a b c \n", encoding="utf-8")
    store = store_of(tmp_path, corpus)
    assert store.token_lines("train") == [["=", "Title", "="], [], ["a", "b", "c"]]
    assert store.meta["split_tokens"]["valid"] == 3 + 0 + 3 + 3


def test_explicit_split_files_and_missing_split_is_clear(tmp_path):
    (tmp_path / "a.txt").write_text("x y\n", encoding="utf-8")
    files = {s: str(tmp_path / "a.txt") for s in ("train", "valid", "test")}
    assert store_of(tmp_path, "", files).token_lines("test") == [["x", "y"]]
    with pytest.raises(CorpusError, match="missing"):
        resolve_source("", {"train": files["train"]})


def test_text_file_is_split_90_5_5_by_line_order(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(f"w{i}" for i in range(100)) + "\n\n", encoding="utf-8")
    store = store_of(tmp_path, path)
    assert [len(store.split_rows(s)) for s in ("train", "valid", "test")] == [90, 5, 5]
    assert store.token_lines("valid")[0] == ["w90"]


def test_every_unicode_line_break_splits_lines_as_before(tmp_path):
    path = tmp_path / "breaks.txt"
    path.write_bytes("a\r\nb\rc\u2028d\x0ce\n".encode() * 20)
    lines = [
        line for s in ("train", "valid", "test") for line in store_of(tmp_path, path).token_lines(s)
    ]
    assert lines == [[w] for w in "abcde"] * 20


def test_a_tree_of_text_jsonl_and_gzip_files_is_read_in_path_order(tmp_path):
    tree = tmp_path / "tree"
    (tree / "b").mkdir(parents=True)
    (tree / "a.txt").write_text("one\n", encoding="utf-8")
    with gzip.open(tree / "b" / "c.jsonl.gz", "wt", encoding="utf-8") as stream:
        stream.write(json.dumps({"text": "two\nthree", "id": 1}) + "\n")
    (tree / "b" / "d.txt.gz").write_bytes(gzip.compress(b"four\n" * 17))
    (tree / "notes.md").write_text("not read\n", encoding="utf-8")
    store = store_of(tmp_path, tree)
    lines = [line for s in ("train", "valid", "test") for line in store.token_lines(s)]
    assert lines == [["one"], ["two"], ["three"], *[["four"]] * 17]


def test_jsonl_reads_the_named_field_and_without_it_says_which_fields_there_are(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"body": f"w{i}", "id": i}) for i in range(20)), "utf-8")
    assert store_of(tmp_path, path, text_field="body").token_lines("train")[0] == ["w0"]
    with pytest.raises(
        CorpusError, match=r"no field 'text' \(its fields: body, id\).*--text-field"
    ):
        store_of(tmp_path, path)


def test_an_empty_corpus_and_an_empty_directory_say_what_to_fix(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no text lines.*give a corpus with text"):
        store_of(tmp_path, tmp_path / "empty.txt")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(CorpusError, match=r"no \.txt, \.jsonl or \.gz text files"):
        resolve_source(str(tmp_path / "nothing"))
    with pytest.raises(CorpusError, match="peoples-daily"):
        resolve_source(str(tmp_path / "nope"))


def test_only_the_split_files_given_are_named():
    assert split_files(None, None, None) is None
    assert split_files("a.txt", None, "c.txt") == {"train": "a.txt", "test": "c.txt"}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"corpus": {"source": "my.txt"}, "training": {"config": {"corpus": "my.txt"}}},
         ("my.txt", None, None)),
        ({"training": {"config": {"corpus": "peoples-daily", "train_file": "t", "valid_file": "v",
                                  "test_file": "e"}}},
         ("peoples-daily", {"train": "t", "valid": "v", "test": "e"}, None)),
        ({"training": {"config": {"corpus": "d.jsonl", "text_field": "body"}}},
         ("d.jsonl", None, "body")),
        ({}, (PEOPLES_DAILY, None, None)),  # a checkpoint copied in that records nothing
    ],
)  # fmt: skip
def test_the_corpus_that_trained_a_checkpoint_is_read_from_its_record(metadata, expected):
    assert trained_corpus(metadata) == expected


def test_the_corpus_cache_lives_where_its_variable_says(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTWORD_CORPUS_CACHE_DIR", str(tmp_path / "corpora"))
    assert default_cache_dir() == tmp_path / "corpora"
    monkeypatch.delenv("NEXTWORD_CORPUS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nextword"
