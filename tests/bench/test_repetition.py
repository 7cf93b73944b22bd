"""bench/repetition on the tuned tiny checkpoint: a row per source of text, and the measure."""

import pytest

from bench.repetition import measure, repeated_share


def test_repeated_share_counts_character_pairs_seen_before():
    assert repeated_share("abab") == pytest.approx(1 / 3)  # ab, ba, ab: one of three repeats
    assert repeated_share("abcd") == 0.0
    assert repeated_share("a") == 0.0


def test_the_report_has_generated_text_with_and_without_the_cache_and_the_corpus(
    tuned_checkpoint,
):
    lines = measure(str(tuned_checkpoint), seeds=1, characters=20, threads=1)
    rows = [line.split("|")[1:-1] for line in lines[4:]]
    assert [r[0].strip() for r in rows] == [
        "generated, cache on",
        "generated, cache off",
        "test lines (first 20 characters)",
    ]
    assert [int(r[1]) for r in rows[:2]] == [5, 5]  # five prompts, one seed
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows) and int(rows[2][1]) > 0
