"""--direction backward: a model trained on every text read right to left, recorded in its
checkpoint, evaluated on the same targets as a forward model and served for scoring only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, load_direction
from model.direction import in_reading_order
from model.evaluate.cli import evaluate, split_ids
from model.generate import main as generate_main
from model.scoring import perplexity_of, score_lines
from model.train.data import prepare_data


def test_backward_training_reads_each_split_right_to_left(tiny_config, tmp_path) -> None:
    forward = prepare_data(tiny_config(tmp_path / "f"))
    backward = prepare_data(tiny_config(tmp_path / "b", direction="backward"))
    assert backward.vocab.itos == forward.vocab.itos
    for split, lines in forward.ids.items():
        expected = [list(line[::-1]) for line in reversed(lines)]
        assert [list(line) for line in backward.ids[split]] == expected
        # read as one stream too: the lines right to left, each still closed by <eos>
        eos = forward.vocab.eos_id
        stream = [i for line in expected for i in (*line, eos)]
        reader = backward.ids[split]
        assert reader.stream(0, len(stream)).tolist() == stream
        assert reader.stream(5, 40).tolist() == stream[5:40]


def test_the_checkpoint_records_its_direction(tiny_checkpoint, backward_checkpoint) -> None:
    assert load_direction(load_checkpoint(tiny_checkpoint)) == "forward"
    backward = load_checkpoint(backward_checkpoint)
    assert load_direction(backward) == "backward"
    config = json.loads((backward_checkpoint / "config.json").read_text(encoding="utf-8"))
    assert config["inference"]["direction"] == "backward"


def test_evaluate_scores_the_same_targets_in_both_directions(
    tiny_checkpoint: Path, backward_checkpoint: Path
) -> None:
    forward = evaluate(tiny_checkpoint, split="test")
    backward = evaluate(backward_checkpoint, split="test")
    assert backward["num_tokens"] == forward["num_tokens"]
    checkpoint = load_checkpoint(backward_checkpoint)
    _, ids = split_ids(checkpoint, None, "test", None)
    _, forward_ids = split_ids(load_checkpoint(tiny_checkpoint), None, "test", None)
    assert [list(x) for x in ids] == in_reading_order([list(x) for x in forward_ids], "backward")
    scores = score_lines(checkpoint.model, ids, checkpoint.vocab.eos_id)
    assert backward["perplexity"] == pytest.approx(perplexity_of(scores)[0], rel=1e-9)
    assert torch.isfinite(torch.tensor(backward["perplexity"]))


def test_in_reading_order_refuses_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        in_reading_order([[1]], "sideways")


def test_generate_refuses_a_backward_model_in_one_line(backward_checkpoint, capsys) -> None:
    with pytest.raises(SystemExit):
        generate_main(["--checkpoint", str(backward_checkpoint), "--prompt", "我们"])
    assert "reads right to left" in capsys.readouterr().err
