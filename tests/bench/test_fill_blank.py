"""bench/fill_blank on the tiny real checkpoints (forward and backward): the draw of blanks
(fixed by its seed, distinct, in-vocabulary, never a special token), each ranking's tally, the
three rankings of one blank, and the page and record the command writes (the CPU, the command,
a row per ranking, the floors)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.fill_blank import fill_in_blank
from bench.fill_blank import (
    TOP_K,
    Engines,
    Tally,
    draw_blanks,
    is_punctuation,
    lines_of_test_split,
    main,
    rank_three_ways,
    service_speed,
    speed_text,
    start_engines,
)
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
    tally.add(["中", "一", "二"], "中", 0.010)  # first
    tally.add(["一", "二", "三", "四", "中", "九"], "中", 0.020)  # fifth
    tally.add(["一", "二", "三", "四", "五", "中"], "中", 0.030)  # sixth: ranked only
    tally.add([], "中", 0.040)  # not proposed
    assert tally.summary(4) == pytest.approx(
        {"top1": 0.25, "top5": 0.5, "ranked": 0.75, "ms_per_blank": 25.0}
    )


@pytest.mark.parametrize(("token", "punctuation"), [("，", True), ("。”", True), ("我们", False)])
def test_punctuation_is_a_token_of_punctuation_only(token, punctuation):
    assert is_punctuation(token) is punctuation


@pytest.fixture(scope="module")
def engines(tiny_checkpoint: Path, backward_checkpoint: Path) -> Iterator[Engines]:
    args = argparse.Namespace(forward=tiny_checkpoint, backward=backward_checkpoint, threads=None)
    started = start_engines(args, "int8")
    yield started
    started.forward.stop()
    started.backward.stop()


def test_rankings_are_the_services_answers_and_c_adds_the_backward_words(engines):
    line = ["中国", "人民", "银行", "今天", "宣布"]
    gaps = engines.gaps(line[:2], line[3:])
    rankings = asyncio.run(rank_three_ways(engines, gaps, [None, 4]))
    assert list(rankings) == ["a", "b/default", "c/default", "b/4", "c/4"]

    async def answers(candidates, backward):
        right = engines.backward.encoder.from_ids(gaps[1].before("backward"))
        behind = (engines.backward, right) if backward else None
        words = await fill_in_blank(engines.forward, gaps[0], TOP_K, candidates, behind)
        return [w.token for w in words]

    for key, (candidates, backward) in {
        "b/default": (None, False),
        "c/default": (None, True),
        "b/4": (4, False),
        "c/4": (4, True),
    }.items():
        assert rankings[key][0] == asyncio.run(answers(candidates, backward))
    assert len(rankings["a"][0]) == TOP_K
    assert all(seconds > 0 for _, seconds in rankings.values())


def test_the_page_names_cpu_and_command_and_holds_a_row_per_ranking(
    tiny_checkpoint, backward_checkpoint, tmp_path, capsys
):
    output = tmp_path / "fill-blank.md"
    argv = ["--forward", str(tiny_checkpoint), "--backward", str(backward_checkpoint)]
    argv += ["--blanks", "25", "--candidates", "4", "--speed-requests", "0"]
    argv += ["--output", str(output)]
    main(argv)
    page = output.read_text(encoding="utf-8")
    record = json.loads(output.with_suffix(".json").read_text(encoding="utf-8"))
    assert page.startswith(
        "# Fill in the blank: what both sides buy\n\n`python -m bench.fill_blank"
    )
    assert describe_cpu() in page and "--blanks 25 --candidates 4 --speed-requests 0" in page
    assert record["blanks"] == 25 and record["candidates"] == ["default", 4]
    assert not record["service"]
    assert list(record["all"]) == ["a", "b/default", "c/default", "b/4", "c/4"]
    rows = [line for line in page.splitlines() if line.startswith("| (")]
    words = 25 - record["punctuation_blanks"]
    assert len(rows) == 5 * (2 if words else 1)
    first = record["all"]["a"]
    assert rows[0].startswith(f"| (a) left only | {first['top1']:.3f} | {first['top5']:.3f} |")
    assert page.count("default candidates, ") == 2  # a floor with and without the backward model
    assert page.count("candidates each: ") == 1  # the top-5 floor of the count given
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
        "candidates_16",
        "forward",
    }
