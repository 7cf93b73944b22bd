"""bench/cache_alone on the tiny real checkpoints through the service in process: a seeded
choice (the same lines and prompts for both settings, short lines as short as asked, prompts
of one and two words), figures that are the service's own, a page and record naming the CPU;
and the bench sees what it is for: a constant cache weight puts a prompt's own word first."""

import argparse
import json

from bench import cache_alone
from model.hardware import describe_cpu

SMALL = ["--lines", "12", "--short", "4", "--short-tokens", "8", "--prompts", "16",
         "--threads", "1"]  # fmt: skip


def _args(checkpoint, output) -> argparse.Namespace:
    return argparse.Namespace(
        checkpoint=checkpoint, lines=12, short=4, short_tokens=15, prompts=16, seed=1,
        threads=1, output=output,
    )  # fmt: skip


def test_the_choice_is_seeded_and_as_asked(tiny_checkpoint, tmp_path):
    lines, _ = cache_alone.valid_split(tiny_checkpoint)
    args = _args(tiny_checkpoint, tmp_path / "page.md")
    first, again = cache_alone.draw(lines, args), cache_alone.draw(lines, args)
    assert first == again and len(first.lines) == 12 and len(set(first.lines)) == 12
    eligible = [i for i, line in enumerate(lines) if len(line) <= 15]
    assert len(first.short) == min(4, len(eligible)) > 0 and set(first.short) <= set(eligible)
    assert [len(p) for p in first.prompts[:4]] == [1, 2, 1, 2]
    args.seed = 2
    assert cache_alone.draw(lines, args) != first


def test_without_a_cache_both_settings_answer_alike(tiny_checkpoint, tmp_path, capsys):
    output = tmp_path / "page.md"
    cache_alone.main(["--checkpoint", str(tiny_checkpoint), *SMALL, "--output", str(output)])
    record = json.loads(output.with_suffix(".json").read_text())
    for group in ("lines", "short"):
        figures = record["scoring"][group]
        assert figures["default"] == figures["no cache"] and figures["worse_with_cache"] == 0
    assert record["predict_next"]["default"] == record["predict_next"]["no cache"]
    page = output.read_text()
    assert describe_cpu() in page and record["command"] in page
    assert "wrote" in capsys.readouterr().out


def test_a_constant_cache_weight_puts_the_prompts_own_word_first(tuned_checkpoint, tmp_path):
    # the tests' tuned checkpoint records lam 0.4 and no half fill: a constant weight
    output = tmp_path / "page.md"
    cache_alone.main(["--checkpoint", str(tuned_checkpoint), *SMALL, "--output", str(output)])
    own = json.loads(output.with_suffix(".json").read_text())["predict_next"]
    assert own["default"]["own_word_first"] > own["no cache"]["own_word_first"]
    assert own["default"]["prompts"] == 16
