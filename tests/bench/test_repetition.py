"""bench/repetition: the measure (the share of a text's character pairs already seen earlier in
it) on texts worked by hand, each row the mean of its texts' shares, and the page the command
writes on the tuned tiny checkpoint (the CPU, the command, the checkpoint, a row per source)."""

import pytest

from bench import repetition
from bench.repetition import PROMPTS, SAMPLING, corpus_texts, main, measure, repeated_share
from model.hardware import describe_cpu


@pytest.mark.parametrize(
    ("text", "share"),
    [
        ("", 0.0),
        ("a", 0.0),  # no pair at all
        ("abcd", 0.0),  # ab bc cd: all new
        ("abab", 1 / 3),  # ab ba ab: the second ab repeats
        ("aaaa", 2 / 3),  # aa aa aa: all but the first
        ("中国经济中国", 1 / 5),  # 中国 国经 经济 济中 中国
        ("abcabcab", 4 / 7),  # ab bc ca, then ab bc ca ab again
        ("ab" * 51, 99 / 101),  # 101 pairs, only ab and ba new: near 1 when all repeats
    ],
)
def test_repeated_share_counts_the_character_pairs_seen_earlier(text, share):
    assert repeated_share(text) == pytest.approx(share)


def test_each_row_is_the_mean_share_of_its_texts(tuned_checkpoint, monkeypatch):
    generated = {True: ["aaaa", "abcd", "abcd"], False: ["abab"]}  # 2/3, 0, 0 (median 0); 1/3
    monkeypatch.setattr(
        repetition, "generated_texts", lambda engine, prompts, seeds, cache: generated[cache]
    )
    monkeypatch.setattr(repetition, "corpus_texts", lambda checkpoint, n: ["中国经济中国", "ab"])
    lines = measure(str(tuned_checkpoint), seeds=1, characters=6, threads=1)
    assert lines[4:] == [
        "| generated, cache on | 3 | 0.222 |",
        "| generated, cache off | 1 | 0.333 |",
        "| test lines (first 6 characters) | 2 | 0.100 |",
    ]


def test_the_test_lines_are_cut_to_the_same_length_and_shorter_ones_left_out(tuned_checkpoint):
    texts = corpus_texts(str(tuned_checkpoint), 20)
    assert texts and all(len(text) == 20 for text in texts)
    assert len(corpus_texts(str(tuned_checkpoint), 5)) > len(texts)  # more lines reach 5


def test_the_page_names_the_command_cpu_checkpoint_and_settings_with_a_row_per_source(
    tuned_checkpoint, tmp_path, capsys
):
    page = tmp_path / "repetition.md"
    main(
        ["--checkpoint", str(tuned_checkpoint), "--seeds", "2", "--characters", "20"]
        + ["--output", str(page)]
    )
    lines = page.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["# Repetition in generated text", ""]
    assert lines[2] == (
        f"`python -m bench.repetition` on {describe_cpu()}; checkpoint {tuned_checkpoint}; "
        f"{len(PROMPTS)} prompts × 2 seeds, {SAMPLING.max_new_tokens} tokens, temperature "
        f"{SAMPLING.temperature}, top-k {SAMPLING.top_k}, top-p {SAMPLING.top_p}"
    )
    assert lines[4:6] == ["| text | texts | repeated character pairs |", "|---|---:|---:|"]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[6:]]
    assert [row[0] for row in rows] == [
        "generated, cache on",
        "generated, cache off",
        "test lines (first 20 characters)",
    ]
    test_lines = len(corpus_texts(str(tuned_checkpoint), 20))
    assert [int(row[1]) for row in rows] == [2 * len(PROMPTS), 2 * len(PROMPTS), test_lines]
    # what it prints is the page's table, under the line that names the machine
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == lines[3:] and lines[2].endswith(printed[0])
