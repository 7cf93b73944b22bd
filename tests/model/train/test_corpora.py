"""Corpora: the peoples-daily benchmark, WikiText layout, explicit files, text files, cache;
the corpus a checkpoint records it was trained on."""

import json

import pytest

from model.tokenizers import TokenizerSpec, build_tokenizer
from model.train.corpora import (
    PEOPLES_DAILY,
    default_cache_dir,
    load_corpus,
    split_by_ratio,
    split_files,
    trained_corpus,
)
from model.vocab import Vocab

WHITESPACE = build_tokenizer(TokenizerSpec("whitespace"))


def test_peoples_daily_matches_the_benchmark_counts_of_data_md():
    corpus = load_corpus(PEOPLES_DAILY, build_tokenizer(TokenizerSpec("jieba")))
    vocab = Vocab.build(corpus.splits["train"], min_freq=2)
    test_ids = [vocab.encode(line) for line in corpus.splits["test"]]
    unknown = sum(i == vocab.unk_id for line in test_ids for i in line)
    assert len(vocab) == 35_923
    assert corpus.num_tokens("train") == 952_711
    assert corpus.num_tokens("test") == 47_277
    assert round(100 * unknown / corpus.num_tokens("test"), 2) == 9.06


def test_directory_in_wikitext_layout_keeps_blank_lines_as_eos(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(" = Title = \n\n a b c \n", encoding="utf-8")
    corpus = load_corpus(str(tmp_path), WHITESPACE, cache_dir=tmp_path / "cache")
    assert corpus.splits["train"] == [["=", "Title", "="], [], ["a", "b", "c"]]
    assert corpus.num_tokens("valid") == 3 + 0 + 3 + 3


def test_explicit_split_files_and_missing_split_is_clear(tmp_path):
    (tmp_path / "a.txt").write_text("x y\n", encoding="utf-8")
    files = {"train": tmp_path / "a.txt", "valid": tmp_path / "a.txt", "test": tmp_path / "a.txt"}
    corpus = load_corpus("", WHITESPACE, {k: str(v) for k, v in files.items()}, tmp_path / "c")
    assert corpus.splits["test"] == [["x", "y"]]
    with pytest.raises(ValueError, match="missing"):
        load_corpus("", WHITESPACE, {"train": str(files["train"])}, tmp_path / "c")


def test_text_file_is_split_90_5_5_by_line_order(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(f"w{i}" for i in range(100)) + "\n\n", encoding="utf-8")
    corpus = load_corpus(str(path), WHITESPACE, cache_dir=tmp_path / "cache")
    assert [len(corpus.splits[s]) for s in ("train", "valid", "test")] == [90, 5, 5]
    assert corpus.splits["valid"][0] == ["w90"]
    assert split_by_ratio(list("abcdefghijklmnopqrst"))["test"] == ["t"]


def test_second_load_reads_the_cache_and_changed_text_misses_it(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("a b\nc d\n" * 20, encoding="utf-8")
    first = load_corpus(str(path), WHITESPACE, cache_dir=tmp_path / "cache")
    cached = next((tmp_path / "cache").glob("*.json"))
    data = json.loads(cached.read_text(encoding="utf-8"))
    data["train"][0] = ["from", "cache"]
    cached.write_text(json.dumps(data), encoding="utf-8")
    assert load_corpus(str(path), WHITESPACE, cache_dir=tmp_path / "cache").splits["train"][0] == [
        "from",
        "cache",
    ]
    path.write_text("a b\nc d\n" * 21, encoding="utf-8")
    assert (
        load_corpus(str(path), WHITESPACE, cache_dir=tmp_path / "cache").content_hash
        != first.content_hash
    )


def test_unknown_corpus_says_what_is_accepted(tmp_path):
    with pytest.raises(FileNotFoundError, match="peoples-daily"):
        load_corpus(str(tmp_path / "nope"), WHITESPACE)


def test_only_the_split_files_given_are_named():
    assert split_files(None, None, None) is None
    assert split_files("a.txt", None, "c.txt") == {"train": "a.txt", "test": "c.txt"}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"corpus": {"source": "my.txt"}, "training": {"config": {"corpus": "my.txt"}}},
         ("my.txt", None)),
        ({"training": {"config": {"corpus": "peoples-daily", "train_file": "t", "valid_file": "v",
                                  "test_file": "e"}}},
         ("peoples-daily", {"train": "t", "valid": "v", "test": "e"})),
        ({}, (PEOPLES_DAILY, None)),  # a checkpoint copied in that records nothing
    ],
)  # fmt: skip
def test_the_corpus_that_trained_a_checkpoint_is_read_from_its_record(metadata, expected):
    assert trained_corpus(metadata) == expected


def test_the_tokenized_corpus_cache_lives_where_its_variable_says(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTWORD_CORPUS_CACHE_DIR", str(tmp_path / "corpora"))
    assert default_cache_dir() == tmp_path / "corpora"
    monkeypatch.delenv("NEXTWORD_CORPUS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nextword"
