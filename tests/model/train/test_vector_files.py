"""load_pretrained: word2vec binary and text, GloVe text, told apart by content; exact round
trips through small writers of our own; errors that say what is wrong."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch

from model.train.vector_files import load_pretrained
from model.vocab import Vocab

WIDTH = 4
# float32 whose bytes hold b" " and b"\n", the delimiters a binary reader must not split on
AWKWARD = struct.unpack("<f", b"\x20\x0a\x20\x0a")[0]


def make_vectors() -> dict[str, torch.Tensor]:
    """Word -> float32 vector: CJK and ASCII words, one of them outside the vocabulary."""
    generator = torch.Generator().manual_seed(0)
    words = ["我", "爱", "北京", "天安门", "hello", "outside"]
    vectors = {w: torch.randn(WIDTH, generator=generator) for w in words}
    vectors["北京"][1] = AWKWARD
    return vectors


def make_vocab() -> Vocab:
    return Vocab(["<unk>", "<eos>", "我", "爱", "北京", "天安门", "hello", "never-listed"])


def write_text(path: Path, vectors: dict[str, torch.Tensor], header: bool = True) -> Path:
    """word2vec text (GloVe when header is False); %.9g keeps every float32 exact."""
    width = len(next(iter(vectors.values())))
    lines = [f"{len(vectors)} {width}\n"] if header else []
    for word, vector in vectors.items():
        lines.append(word + " " + " ".join(f"{v:.9g}" for v in vector.tolist()) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_binary(path: Path, vectors: dict[str, torch.Tensor], newline: bool = False) -> Path:
    """word2vec binary: header, then word, space, little-endian float32 (newline optional)."""
    width = len(next(iter(vectors.values())))
    with path.open("wb") as handle:
        handle.write(f"{len(vectors)} {width}\n".encode())
        for word, vector in vectors.items():
            handle.write(word.encode("utf-8") + b" " + struct.pack(f"<{width}f", *vector.tolist()))
            if newline:
                handle.write(b"\n")
    return path


def assert_loaded_exactly(path: Path, vectors: dict[str, torch.Tensor]) -> None:
    vocab = make_vocab()
    embedding = torch.full((len(vocab), WIDTH), -7.0)
    coverage = load_pretrained(path, vocab, embedding)
    for word, vector in vectors.items():
        if word in vocab:
            assert torch.equal(embedding[vocab.stoi[word]], vector), word
    untouched = [vocab.stoi[w] for w in ("<unk>", "<eos>", "never-listed")]
    assert torch.all(embedding[untouched] == -7.0)
    assert coverage == pytest.approx(5 / len(vocab))


@pytest.mark.parametrize("header", [True, False], ids=["word2vec-text", "glove-text"])
def test_text_vectors_load_exactly(tmp_path, header):
    vectors = make_vectors()
    assert_loaded_exactly(write_text(tmp_path / "vectors.txt", vectors, header), vectors)


@pytest.mark.parametrize("newline", [False, True], ids=["packed", "newline-after-vector"])
def test_binary_vectors_load_exactly_whatever_the_file_is_named(tmp_path, newline):
    vectors = make_vectors()
    # a .txt name on purpose: the format is read from the content
    assert_loaded_exactly(write_binary(tmp_path / "vectors.txt", vectors, newline), vectors)


def test_coverage_counts_each_vocabulary_word_once(tmp_path):
    vocab = make_vocab()
    path = tmp_path / "vectors.txt"
    path.write_text("我 1 2 3 4\n我 5 6 7 8\n\nelsewhere 0 0 0 0\n", encoding="utf-8")
    embedding = torch.zeros(len(vocab), WIDTH)
    assert load_pretrained(path, vocab, embedding) == 1 / len(vocab)
    assert embedding[vocab.stoi["我"]].tolist() == [5, 6, 7, 8]  # the last one listed


@pytest.mark.parametrize(
    "write, what",
    [
        (lambda p, v: write_binary(p, v), "its header gives 4"),
        (lambda p, v: write_text(p, v), "its header gives 4"),
        (lambda p, v: write_text(p, v, header=False), "line 1 has 4"),
    ],
    ids=["binary", "word2vec-text", "glove-text"],
)
def test_wrong_width_names_the_models_embedding_size(tmp_path, write, what):
    path = write(tmp_path / "vectors", make_vectors())
    with pytest.raises(ValueError, match=f"{what}.*embedding_size is 8.*--embedding-size") as info:
        load_pretrained(path, make_vocab(), torch.zeros(len(make_vocab()), 8))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [3, 30], ids=["in-a-word", "in-a-vector"])
def test_truncated_binary_names_the_file_and_the_word(tmp_path, keep):
    path = write_binary(tmp_path / "vectors.bin", make_vectors())
    header_bytes = len(b"6 4\n")
    path.write_bytes(path.read_bytes()[: header_bytes + keep])  # 我 and 爱: 20 bytes each
    word = 1 if keep == 3 else 2
    with pytest.raises(ValueError, match=f"truncated: it ends at word {word} of the 6") as info:
        load_pretrained(path, make_vocab(), torch.zeros(len(make_vocab()), WIDTH))
    assert str(path) in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.bin does not exist"):
        load_pretrained(tmp_path / "nowhere.bin", make_vocab(), torch.zeros(8, WIDTH))
