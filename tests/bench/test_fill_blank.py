"""bench/fill_blank on the tiny real checkpoints (forward and backward): the draw of blanks
(fixed by its seed, distinct, in-vocabulary, never a special token), each ranking's tally, the
three rankings of one blank, and the page and record the command writes (the CPU, the command,
a row per ranking, the floors)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from bench.fill_blank import (
    Tally,
    draw_blanks,
    is_punctuation,
    lines_of_test_split,
    main,
    rank_three_ways,
    service_speed,
    speed_text,
)
from model.fill_blank import BlankFiller
from model.hardware import describe_cpu
from model.served import load_served_model
from model.vocab import EOS, UNK, Vocab


def test_blanks_are_distinct_in_vocabulary_tokens_fixed_by_the_seed():
    vocab = Vocab([UNK, EOS, "我", "们", "好"])
    lines = [["我", "他", "们"], ["他"], ["好", UNK, "好", "我"]]
    spots = draw_blanks(lines, vocab, 5, seed=3)
    assert spots == draw_blanks(lines, vocab, 5, seed=3)
    assert len(set(spots)) == 5  # every in-vocabulary token once: (0,0) (0,2) (2,0) (2,2) (2,3)
    assert {(s.line, s.position) for s in spots} == {(0, 0), (0, 2), (2, 0), (2, 2), (2, 3)}
    assert draw_blanks(lines, vocab, 3, seed=3) != draw_blanks(lines, vocab, 3, seed=4)
    with pytest.raises(ValueError, match="holds 5 in-vocabulary tokens, fewer than the 6"):
        draw_blanks(lines, vocab, 6, seed=3)


def test_a_tally_counts_top_1_top_5_and_ranked_and_the_mean_ms():
    tally = Tally()
    tally.add([7, 1, 2], 7, 0.010)  # first
    tally.add([1, 2, 3, 4, 7, 9], 7, 0.020)  # fifth
    tally.add([1, 2, 3, 4, 5, 7], 7, 0.030)  # sixth: ranked only
    tally.add([], 7, 0.040)  # not proposed
    assert tally.summary(4) == pytest.approx(
        {"top1": 0.25, "top5": 0.5, "ranked": 0.75, "ms_per_blank": 25.0}
    )


@pytest.mark.parametrize(("token", "punctuation"), [("，", True), ("。”", True), ("我们", False)])
def test_punctuation_is_a_token_of_punctuation_only(token, punctuation):
    assert is_punctuation(token) is punctuation


@pytest.fixture(scope="module")
def filler(tiny_checkpoint: Path, backward_checkpoint: Path) -> BlankFiller:
    forward = load_served_model(tiny_checkpoint, quantize="int8")
    return BlankFiller(forward, load_served_model(backward_checkpoint, quantize="int8"))


def test_whole_line_rankings_hold_the_words_proposed_and_c_adds_the_backward_ones(filler):
    line = ["中国", "人民", "银行", "今天", "宣布"]
    gaps = {d: filler.gap(line[:2], line[3:], d) for d in filler.runners}
    rankings = rank_three_ways(filler, gaps, [4, 8])
    assert list(rankings) == ["a", "b/4", "c/4", "b/8", "c/8"]
    left_only = rankings["a"][0]
    assert len(left_only) == 4 and sorted(rankings["b/4"][0]) == sorted(left_only)
    for count in (4, 8):
        line_words, both_words = set(rankings[f"b/{count}"][0]), set(rankings[f"c/{count}"][0])
        assert line_words <= both_words and len(both_words) <= 2 * count
    assert all(seconds > 0 for _, seconds in rankings.values())


def test_the_page_names_cpu_and_command_and_holds_a_row_per_ranking(
    tiny_checkpoint, backward_checkpoint, tmp_path, capsys
):
    output = tmp_path / "fill-blank.md"
    argv = ["--forward", str(tiny_checkpoint), "--backward", str(backward_checkpoint)]
    argv += ["--blanks", "25", "--candidates", "4", "8", "--speed-requests", "0"]
    argv += ["--output", str(output)]
    main(argv)
    page = output.read_text(encoding="utf-8")
    record = json.loads(output.with_suffix(".json").read_text(encoding="utf-8"))
    assert page.startswith(
        "# Fill in the blank: what both sides buy\n\n`python -m bench.fill_blank"
    )
    assert describe_cpu() in page and "--blanks 25 --candidates 4 8 --speed-requests 0" in page
    assert record["blanks"] == 25 and record["candidates"] == [4, 8] and not record["service"]
    assert list(record["all"]) == ["a", "b/4", "c/4", "b/8", "c/8"]
    rows = [line for line in page.splitlines() if line.startswith("| (")]
    words = 25 - record["punctuation_blanks"]
    assert len(rows) == 5 * (2 if words else 1)
    first = record["all"]["a"]
    assert rows[0].startswith(f"| (a) left only | {first['top1']:.3f} | {first['top5']:.3f} |")
    assert page.count("candidates each: ") == 4  # two floors per count
    assert page in capsys.readouterr().out


def test_the_test_lines_must_come_from_the_corpus_both_models_learnt(
    tiny_checkpoint, backward_checkpoint, tmp_path
):
    forward = load_served_model(tiny_checkpoint, quantize="none")
    lines = lines_of_test_split(forward, load_served_model(backward_checkpoint, quantize="none"))
    assert lines and all(isinstance(token, str) for token in lines[0])
    other = tmp_path / "other"
    shutil.copytree(backward_checkpoint, other)
    config = json.loads((other / "config.json").read_text(encoding="utf-8"))
    config["corpus"]["source"] = str(tmp_path / "elsewhere.txt")
    (other / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="trained on different corpora"):
        lines_of_test_split(forward, load_served_model(other, quantize="none"))


def test_the_speed_line_has_the_tokens_asked_for_and_its_middle_one_blank():
    lines = [["一"] * 39, ["我", "爱", "北京", "天安门"], [str(i) for i in range(40)]]
    assert speed_text(lines, 4) == ("我爱北京天安门", "我爱___天安门")
    line, blanked = speed_text(lines)
    assert line == "".join(map(str, range(40))) and "19___21" in blanked
    with pytest.raises(ValueError, match="no line of 5 tokens"):
        speed_text(lines, 5)


def test_the_service_is_timed_on_one_server_with_both_models(tiny_checkpoint, backward_checkpoint):
    args = argparse.Namespace(
        forward=tiny_checkpoint, backward=backward_checkpoint, speed_requests=2
    )
    speed = service_speed(args, "我们在北京。", "我们___北京。")
    assert speed["line_tokens"] == 4 and speed["requests"] == 2
    assert speed["perplexity_ms"] > 0 and set(speed["fill_blank_ms"]) == {
        "both",
        "candidates_8",
        "forward",
    }
