"""Vocabulary: min_freq, max_size, <unk>/<eos>, frequency order and the JSON round trip."""

import pytest

from model.vocab import EOS, UNK, Vocab

LINES = [["a", "b", "a", "c"], ["a", "b", "d"], ["e"]]


def test_min_freq_keeps_frequent_tokens_and_maps_rest_to_unk():
    vocab = Vocab.build(LINES, min_freq=2)
    assert set(vocab.itos) == {"a", "b", UNK, EOS}
    assert vocab.encode(["a", "zzz", "c"]) == [vocab.stoi["a"], vocab.unk_id, vocab.unk_id]


def test_order_is_by_frequency_with_specials_by_their_counts():
    vocab = Vocab.build(LINES, min_freq=2)
    # a:3, unk (c, d, e):3, eos (3 lines):3, b:2
    assert vocab.itos[-1] == "b"
    assert vocab.counts == sorted(vocab.counts, reverse=True)
    assert vocab.counts[vocab.stoi[EOS]] == 3 and vocab.counts[vocab.stoi[UNK]] == 3


def test_max_size_caps_entries_including_specials():
    vocab = Vocab.build(LINES, min_freq=1, max_size=4)
    assert len(vocab) == 4 and "a" in vocab and "b" in vocab


def test_json_round_trip(tmp_path):
    vocab = Vocab.build(LINES, min_freq=1)
    vocab.save(tmp_path / "vocab.json")
    again = Vocab.load(tmp_path / "vocab.json")
    assert again.itos == vocab.itos and again.counts == vocab.counts
    assert again.decode(again.encode(["d", "a"])) == ["d", "a"]


def test_vocabulary_without_specials_is_rejected():
    with pytest.raises(ValueError, match="special"):
        Vocab(["a", "b"])
