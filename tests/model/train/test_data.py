"""A run's data: the store prepared as the config says, the vocabulary from the training
split only, every split as id lines closed by nothing (the <eos> comes from batching)."""

import pytest

from model.train.corpora import CorpusError
from model.train.data import DEFAULT_VOCAB_CAP, prepare_data, vocabulary_cap


def test_the_vocabulary_comes_from_train_and_every_split_is_encoded(tiny_config, tmp_path):
    data = prepare_data(tiny_config(tmp_path))
    assert [len(data.ids[s]) for s in ("train", "valid", "test")] == [540, 30, 30]
    assert data.spec.name == "jieba" and data.store.name == "tiny"
    train_lines = data.store.token_lines("train")
    assert data.vocab.decode(data.ids["train"][0]) == [
        token if token in data.vocab.stoi else "<unk>" for token in train_lines[0]
    ]
    train_words = {token for line in train_lines for token in line}
    assert set(data.vocab.itos) - {"<unk>", "<eos>"} <= train_words  # nothing from valid/test


def test_max_train_lines_and_min_freq_shape_the_data(tiny_config, tmp_path):
    small = prepare_data(tiny_config(tmp_path, max_train_lines=100))
    assert len(small.ids["train"]) == 100 and len(small.ids["valid"]) == 30
    assert len(prepare_data(tiny_config(tmp_path, min_freq=1)).vocab) > len(small.vocab)
    backward = prepare_data(tiny_config(tmp_path, max_train_lines=100, direction="backward"))
    assert [list(x) for x in backward.ids["train"]] == [
        list(x[::-1]) for x in reversed(small.ids["train"])
    ]


def test_explicit_split_files_are_read_as_given(tiny_config, tmp_path):
    for split, text in (("train", "a b a b\n"), ("valid", "a\n"), ("test", "b c\n")):
        (tmp_path / f"{split}.txt").write_text(text, encoding="utf-8")
    files = {f"{s}_file": str(tmp_path / f"{s}.txt") for s in ("train", "valid", "test")}
    data = prepare_data(tiny_config(tmp_path, tokenizer="whitespace", **files))
    assert data.store.name == "files"
    assert [list(x) for x in data.ids["valid"]] == [[data.vocab.stoi["a"]]]
    assert data.ids["test"][0][1] == data.vocab.unk_id  # c is not in train
    with pytest.raises(CorpusError, match="missing"):
        prepare_data(tiny_config(tmp_path, train_file=files["train_file"]))


def test_a_corpus_of_ones_own_is_capped_by_default_and_peoples_daily_is_not():
    assert vocabulary_cap(None, "peoples-daily") is None
    assert vocabulary_cap(None, "mine") == DEFAULT_VOCAB_CAP
    assert vocabulary_cap(0, "mine") is None and vocabulary_cap(1000, "peoples-daily") == 1000


def test_the_cap_keeps_the_most_frequent_words(tiny_config, tmp_path):
    data = prepare_data(tiny_config(tmp_path, max_vocab=100))
    full = prepare_data(tiny_config(tmp_path, max_vocab=0))
    assert len(data.vocab) == 100 and len(full.vocab) > 100
    kept = set(data.vocab.itos)
    assert {w for w in full.vocab.itos[:50]} <= kept | {"<unk>"}
