"""The store read through memory maps gives exactly what the lists of ids gave: the same
line batches for a seed (so the same model), the same document stream, bounded slices."""

from __future__ import annotations

import pytest
import torch

from model.batching import make_batches, stream_batches
from model.train.data import prepare_data


@pytest.fixture(scope="module")
def data(tiny_config, tmp_path_factory):
    return prepare_data(tiny_config(tmp_path_factory.mktemp("store")))


def as_lists(lines) -> list[list[int]]:
    return [[int(i) for i in line] for line in lines]


def same_batches(first, second) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        assert list(a.rows) == list(b.rows)


def test_line_batches_from_the_store_are_those_of_the_lists(data):
    train, eos = data.ids["train"], data.vocab.eos_id
    for seed in (None, 7):
        same_batches(
            make_batches(train, eos, 64, seed, 512, 20),
            make_batches(as_lists(train), eos, 64, seed, 512, 20),
        )


def test_the_document_stream_from_the_store_is_that_of_the_lists(data):
    valid, eos = data.ids["valid"], data.vocab.eos_id
    same_batches(stream_batches(valid, eos, 3, 25), stream_batches(as_lists(valid), eos, 3, 25))


def test_a_rank_share_and_a_bounded_head_are_views_of_the_split(data):
    valid = data.ids["valid"]
    assert as_lists(valid[1::2]) == as_lists(valid)[1::2]
    head = valid.head(100)
    assert head.num_tokens() <= 100 < valid[: len(head) + 1].num_tokens()
    assert as_lists(head) == as_lists(valid)[: len(head)]
    assert valid.head(1).num_tokens() > 1  # at least one line, however long
