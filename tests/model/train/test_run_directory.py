"""What a run writes into its --output directory: the checkpoint with the best weights and the
run record, the snapshot of its live state, metrics.jsonl and the curves."""

import json

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_checkpoint
from model.train.budget import Progress
from model.train.build import build_model, build_optimizer
from model.train.data import prepare_data
from model.train.resume import read_snapshot
from model.train.run_directory import CURVES, METRICS, run_record, write_run


@pytest.fixture
def run(tiny_config, tmp_path):
    """(config, data, model, optimizer) of a tiny run that has not trained."""
    config = tiny_config(tmp_path / "run")
    data = prepare_data(config)
    model, _ = build_model(config, data.vocab)
    return config, data, model, build_optimizer(config, model)


def test_checkpoint_records_tokenizer_corpus_and_statistics(tiny_checkpoint, tiny_corpus_file):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["tokenizer"]["name"] == "jieba"
    assert config["corpus"]["content_hash"] and config["training"]["test_ppl"] > 1
    assert config["corpus"]["source"] == str(tiny_corpus_file)
    assert config["training"]["stopped_by"] == "epochs" and config["training"]["epochs_done"] == 2
    assert config["versions"]["torch"] == torch.__version__
    assert "inference" not in config  # a line-trained model is read line by line until tuned


def test_a_document_trained_run_is_recorded_as_read_that_way(run):
    config, data, _, _ = run
    config.context = "document"
    record = run_record(config, data, Progress(step=3), coverage=0.5, test_ppl=99.0)
    assert record["inference"] == {"context": "document"}
    assert record["training"]["test_ppl"] == 99.0 and record["training"]["steps"] == 3
    assert record["training"]["pretrained_coverage"] == 0.5
    assert record["corpus"]["train_tokens"] == sum(len(x) + 1 for x in data.ids["train"])


def test_the_best_weights_stay_until_better_ones_come_and_the_snapshot_is_live(run, tmp_path):
    config, data, model, optimizer = run
    output = tmp_path / "out"
    best = {k: v.clone() for k, v in model.state_dict().items()}
    row = {"tokens_seen": 10, "wall_seconds": 1.0, "train_ppl": 900.0, "valid_ppl": 800.0}
    progress = Progress(history=[row])
    record = run_record(config, data, progress, None)
    write_run(output, model, best, data, record, optimizer, progress, {}, "tiny")
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(1.0)  # the live weights move on; no better validation came
    write_run(output, model, None, data, record, optimizer, progress, {}, "tiny")
    saved = load_file(str(output / "model.safetensors"))
    assert all(torch.equal(saved[k], best[k]) for k in saved)  # the best weights kept
    fresh, _ = build_model(config, data.vocab)
    read_snapshot(output, fresh, build_optimizer(config, fresh))
    live = model.state_dict()
    assert all(torch.equal(v, live[k]) for k, v in fresh.state_dict().items())
    assert json.loads((output / METRICS).read_text().splitlines()[0])["valid_ppl"] == 800.0
    assert (output / CURVES).read_bytes()[:4] == b"\x89PNG"
    assert load_checkpoint(output).metadata["training"] == record["training"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left


def test_no_curves_before_the_first_validation(run, tmp_path):
    config, data, model, optimizer = run
    progress = Progress()
    record = run_record(config, data, progress, None)
    write_run(
        tmp_path / "out", model, model.state_dict(), data, record, optimizer, progress, {}, ""
    )
    assert (tmp_path / "out" / METRICS).read_text() == ""
    assert not (tmp_path / "out" / CURVES).exists()
