"""Pretrained word vectors (word2vec or GloVe text format) to initialise the embedding layer."""

from __future__ import annotations

from pathlib import Path

import torch

from model.vocab import Vocab


def load_pretrained(path: Path | str, vocab: Vocab, embedding: torch.Tensor) -> float:
    """Copy the vectors of vocabulary words found in a word2vec/GloVe text file (header line
    optional) into `embedding` (V, E) in place; returns the coverage (share of the vocabulary
    found). Vectors of another width are a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained embeddings file {path} does not exist")
    width = embedding.size(1)
    found = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            fields = line.rstrip().split(" ")
            if number == 0 and len(fields) == 2 and all(f.isdigit() for f in fields):
                continue  # word2vec header: count and width
            word, values = fields[0], fields[1:]
            if len(values) != width:
                raise ValueError(
                    f"{path}:{number + 1} has a {len(values)}-wide vector; the model's "
                    f"embedding_size is {width}"
                )
            index = vocab.stoi.get(word)
            if index is not None:
                embedding[index] = torch.tensor([float(v) for v in values])
                found += 1
    return found / len(vocab)
