"""Line batching: shapes, targets shifted by one and closed by <eos>, padding ignored, windows;
the document stream and its column batches."""

import random

import torch

from model.batching import document_stream, line_batch, make_batches, stream_batches
from model.rnn import IGNORE

EOS = 0


def test_line_batch_reads_eos_first_and_predicts_eos_last():
    batch = line_batch([[5, 6, 7], [8]], EOS)
    assert batch.inputs.tolist() == [[EOS, 5, 6, 7], [EOS, 8, EOS, EOS]]
    assert batch.targets.tolist() == [[5, 6, 7, EOS], [8, EOS, IGNORE, IGNORE]]
    assert int((batch.targets != IGNORE).sum()) == 6


def test_windows_cover_the_batch_in_order():
    batch = line_batch([list(range(1, 11))], EOS)
    windows = list(batch.windows(4))
    assert [w[0].size(1) for w in windows] == [4, 4, 3]
    assert torch.cat([w[1] for w in windows], dim=1).equal(batch.targets)


def test_variable_windows_cover_the_batch_with_drawn_lengths():
    batch = line_batch([list(range(1, 400))], EOS)
    windows = list(batch.windows(35, random.Random(0)))
    lengths = [w[0].size(1) for w in windows]
    assert len(set(lengths)) > 3 and min(lengths[:-1]) >= 5  # drawn around 35, never under 5
    assert torch.cat([w[1] for w in windows], dim=1).equal(batch.targets)
    again = [w[0].size(1) for w in batch.windows(35, random.Random(0))]
    assert again == lengths  # the same seed draws the same windows (resumable)


def test_every_line_lands_in_exactly_one_batch_with_its_index():
    lines = [[1] * n for n in [3, 1, 7, 2, 2, 9, 4]]
    batches = make_batches(lines, EOS, batch_size=3, seed=1)
    rows = sorted(r for b in batches for r in b.rows)
    assert rows == list(range(len(lines)))
    for batch in batches:
        for row, index in enumerate(batch.rows):
            assert int((batch.targets[row] != IGNORE).sum()) == len(lines[index]) + 1


def test_step_tokens_puts_many_short_lines_or_few_long_ones_in_a_batch():
    lines = [[1] * 4 for _ in range(40)] + [[1] * 60 for _ in range(6)]
    batches = make_batches(lines, EOS, batch_size=100, step_tokens=50, bptt=25)
    sizes = sorted(b.inputs.size(0) for b in batches)
    assert sizes[0] == 2 and sizes[-1] == 10  # 50 // min(61, 25) = 2 long rows; 50 // 5 = 10


def test_seeded_batches_are_reproducible_and_seed_changes_order():
    lines = [[i] * (i % 5 + 1) for i in range(50)]
    a = make_batches(lines, EOS, 4, seed=3)
    b = make_batches(lines, EOS, 4, seed=3)
    c = make_batches(lines, EOS, 4, seed=4)
    assert [x.rows for x in a] == [x.rows for x in b]
    assert [x.rows for x in a] != [x.rows for x in c]


def test_stream_batches_are_contiguous_columns_that_continue_each_other():
    lines = [[5, 6], [7], [8, 9, 10], [11]]  # stream targets: 5 6 0 7 0 8 9 10 0 11 0
    batches = stream_batches(lines, EOS, rows=2, steps=3)
    inputs = torch.cat([b.inputs for b in batches], dim=1)
    targets = torch.cat([b.targets for b in batches], dim=1)
    assert [b.inputs.size(1) for b in batches] == [3, 2]  # 11 targets: 2 columns of 5
    assert targets.tolist() == [[5, 6, EOS, 7, EOS], [8, 9, 10, EOS, 11]]
    assert inputs.tolist() == [[EOS, 5, 6, EOS, 7], [EOS, 8, 9, 10, EOS]]  # targets shifted
    assert (targets != IGNORE).all()  # no padding: every step is a real target


def test_document_stream_has_the_line_targets_each_closed_by_eos():
    inputs, targets = document_stream([[5, 6], [], [7]], eos_id=1)
    assert targets.tolist() == [5, 6, 1, 1, 7, 1]
    assert inputs.tolist() == [1, 5, 6, 1, 1, 7]
