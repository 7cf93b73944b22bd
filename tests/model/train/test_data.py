"""A run's data: the corpus tokenized as the config says, the vocabulary from the training
split only, every split as id lines closed by nothing (the <eos> comes from batching)."""

import pytest

from model.train.data import prepare_data


def test_the_vocabulary_comes_from_train_and_every_split_is_encoded(tiny_config, tmp_path):
    data = prepare_data(tiny_config(tmp_path))
    assert [len(data.ids[s]) for s in ("train", "valid", "test")] == [540, 30, 30]
    assert data.spec.name == "jieba" and data.corpus.name == "tiny"
    first = data.corpus.splits["train"][0]
    assert data.vocab.decode(data.ids["train"][0]) == [
        token if token in data.vocab.stoi else "<unk>" for token in first
    ]
    train_words = {token for line in data.corpus.splits["train"] for token in line}
    assert set(data.vocab.itos) - {"<unk>", "<eos>"} <= train_words  # nothing from valid/test


def test_max_train_lines_and_min_freq_shape_the_data(tiny_config, tmp_path):
    small = prepare_data(tiny_config(tmp_path, max_train_lines=100))
    assert len(small.ids["train"]) == 100 and len(small.ids["valid"]) == 30
    assert len(prepare_data(tiny_config(tmp_path, min_freq=1)).vocab) > len(small.vocab)


def test_explicit_split_files_are_read_as_given(tiny_config, tmp_path):
    for split, text in (("train", "a b a b\n"), ("valid", "a\n"), ("test", "b c\n")):
        (tmp_path / f"{split}.txt").write_text(text, encoding="utf-8")
    files = {f"{s}_file": str(tmp_path / f"{s}.txt") for s in ("train", "valid", "test")}
    data = prepare_data(tiny_config(tmp_path, tokenizer="whitespace", **files))
    assert data.corpus.name == "files" and data.ids["valid"] == [[data.vocab.stoi["a"]]]
    assert data.ids["test"][0][1] == data.vocab.unk_id  # c is not in train
    with pytest.raises(ValueError, match="missing"):
        prepare_data(tiny_config(tmp_path, train_file=files["train_file"]))
