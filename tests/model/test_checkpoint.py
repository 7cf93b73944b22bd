"""Checkpoints: round trip, atomic replacement, files readable as the umask allows, damaged or
unreadable files give one clear error, no pickles."""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    recover_interrupted_swap,
    save_checkpoint,
)
from model.scoring import score_lines
from model.tokenizers import TokenizerSpec

NOBODY = 65534


@pytest.fixture
def copy(tiny_checkpoint, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, target)
    return target


def test_round_trip_gives_identical_scores(copy, tmp_path):
    loaded = load_checkpoint(copy)
    save_checkpoint(
        tmp_path / "again", loaded.model, loaded.vocab, loaded.tokenizer_spec, {"note": 1}
    )
    again = load_checkpoint(tmp_path / "again")
    lines = [loaded.vocab.encode(list("人民日报")), [3, 4, 5]]
    for a, b in zip(
        score_lines(loaded.model, lines, loaded.vocab.eos_id),
        score_lines(again.model, lines, again.vocab.eos_id),
        strict=True,
    ):
        assert torch.equal(a, b)
    assert again.metadata["note"] == 1 and again.tokenizer_spec == TokenizerSpec("jieba")
    assert again.weights_sha256 == loaded.weights_sha256


def test_saving_over_a_checkpoint_leaves_no_temporary_files(copy):
    loaded = load_checkpoint(copy)
    save_checkpoint(copy, loaded.model, loaded.vocab, loaded.tokenizer_spec)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["ckpt"]


def test_previous_copy_is_used_when_a_swap_was_interrupted(copy):
    copy.rename(copy.with_name("ckpt.previous"))
    assert load_checkpoint(copy).directory.name == "ckpt.previous"


def test_truncated_weights_name_the_file(copy):
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors is damaged or truncated"):
        load_checkpoint(copy)


@pytest.fixture
def umask():
    """os.umask for one test; the process's own umask comes back after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_checkpoint_files_get_the_mode_the_umask_allows(copy, tmp_path, umask, mask, mode):
    loaded = load_checkpoint(copy)  # safetensors alone would write model.safetensors 0600
    umask(mask)
    save_checkpoint(tmp_path / "again", loaded.model, loaded.vocab, loaded.tokenizer_spec)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "again").iterdir()}
    assert modes == dict.fromkeys(["model.safetensors", "config.json", "vocab.json"], oct(mode))


@contextmanager
def unprivileged():
    """Run the block as uid nobody where the tests run as root (root reads every file)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_weights_say_permission_denied_and_how_to_fix_it(tiny_checkpoint):
    with tempfile.TemporaryDirectory() as parent:  # a directory that nobody may enter
        os.chmod(parent, 0o755)
        checkpoint = Path(parent) / "ckpt"
        shutil.copytree(tiny_checkpoint, checkpoint)
        os.chmod(checkpoint / "model.safetensors", 0)
        with unprivileged(), pytest.raises(CheckpointError) as raised:
            load_checkpoint(checkpoint)
    message = str(raised.value)
    assert "model.safetensors cannot be read: Permission denied" in message
    assert f"chmod -R a+rX {checkpoint}" in message and "damaged" not in message


def test_missing_vocab_names_the_file(copy):
    (copy / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="vocab.json is missing"):
        load_checkpoint(copy)


def test_mismatched_shapes_are_listed(copy):
    config = json.loads((copy / "config.json").read_text())
    config["model"]["hidden_size"] += 1
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match config.json: .*has shape"):
        load_checkpoint(copy)


def test_vocab_size_mismatch_is_reported(copy):
    vocab = json.loads((copy / "vocab.json").read_text())
    vocab["itos"].append("extra")
    (copy / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match="entries but .*vocab_size"):
        load_checkpoint(copy)


def test_missing_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError, match="python -m model.train"):
        load_checkpoint(tmp_path / "none")


def test_a_planted_pickle_is_never_loaded(copy, monkeypatch):
    torch.save({"evil": 1}, copy / "pytorch_model.bin")
    (copy / "model.pt").write_bytes((copy / "pytorch_model.bin").read_bytes())

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr("pickle.load", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    assert load_checkpoint(copy).model is not None


def test_writer_puts_back_a_previous_copy_left_by_an_interrupted_swap(copy):
    copy.rename(copy.with_name("ckpt.previous"))
    recover_interrupted_swap(copy)
    assert (copy / "model.safetensors").is_file() and not copy.with_name("ckpt.previous").exists()
