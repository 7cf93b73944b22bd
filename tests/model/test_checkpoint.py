"""Checkpoints: round trip, atomic replacement, files readable as the umask allows, damaged or
unreadable files give one clear error, no pickles; config.json read alone, and the reading
(context, cache) tune_cache records in it."""

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
    load_cache_scope,
    load_checkpoint,
    load_inference_config,
    read_config,
    recover_interrupted_swap,
    update_inference_config,
    write_checkpoint_files,
    write_directory_atomically,
)
from model.pointer_cache import CacheConfig
from model.scoring import score_lines
from model.tokenizers import TokenizerSpec

NOBODY = 65534


def save_checkpoint(directory, model, vocab, tokenizer_spec, metadata=None) -> None:
    """A complete checkpoint written atomically, as training's run directory writes one."""
    write_directory_atomically(
        directory,
        lambda tmp: write_checkpoint_files(tmp, model, vocab, tokenizer_spec, metadata or {}),
    )


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


def test_read_config_is_the_json_without_the_weights(copy):
    (copy / "model.safetensors").unlink()  # not needed to read the record
    config = read_config(copy)
    assert config == json.loads((copy / "config.json").read_text())
    assert config["training"]["test_ppl"] > 1
    (copy / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="config.json must hold a JSON object"):
        read_config(copy)


def test_untuned_checkpoint_reads_lines_without_a_cache(copy):
    assert load_inference_config(load_checkpoint(copy)) == ("line", None)
    assert load_cache_scope(load_checkpoint(copy)) == "line"


def test_the_inference_entry_is_merged_and_every_other_key_kept(copy):
    before = read_config(copy)
    update_inference_config(copy, {"context": "document"})
    update_inference_config(copy, {"cache": CacheConfig(5, 0.1, 0.2).to_dict()})
    after = read_config(copy)
    assert {k: v for k, v in after.items() if k != "inference"} == before
    assert load_inference_config(after) == ("document", CacheConfig(5, 0.1, 0.2))
    assert load_cache_scope(after) == "document"  # the context, when no scope is recorded


@pytest.mark.parametrize(
    ("inference", "message"),
    [
        ({"cache": {"window": 5}}, "invalid inference.cache"),
        ({"context": "paragraph"}, 'inference.context must be "line" or "document"'),
        ({"cache_scope": "page"}, 'inference.cache_scope must be "line" or "document"'),
    ],
)
def test_a_damaged_inference_entry_is_named(copy, inference, message):
    config = {**read_config(copy), "inference": inference}
    with pytest.raises(CheckpointError, match=message):
        load_inference_config(config)
        load_cache_scope(config)


def test_an_unknown_direction_is_named_in_one_error() -> None:
    from model.checkpoint import load_direction

    assert load_direction({}) == "forward"
    with pytest.raises(CheckpointError, match="inference.direction must be one of"):
        load_direction({"inference": {"direction": "sideways"}})
