"""What a run builds before its first step: the network its config describes, its starting
weights (pretrained vectors, a finished checkpoint) and the settings that cannot go together,
and the optimizer."""

import pytest
import torch
from safetensors.torch import load_file

from model.train.build import build_model, build_optimizer
from model.train.data import prepare_data


@pytest.fixture
def vocab(tiny_config, tmp_path):
    """The tiny corpus's vocabulary, as tiny_config builds it (the tiny checkpoint's too)."""
    return prepare_data(tiny_config(tmp_path)).vocab


def test_the_network_is_the_one_the_config_describes(tiny_config, tmp_path, vocab):
    config = tiny_config(tmp_path, cell="gru", hidden_size=24, num_layers=2)
    model, coverage = build_model(config, vocab)
    built = model.config
    assert (built.cell, built.hidden_size, built.num_layers) == ("gru", 24, 2)
    assert built.vocab_size == len(vocab) and built.cutoffs == [200, 600]
    assert coverage is None  # no vectors asked for


def test_pretrained_embeddings_are_loaded_and_coverage_reported(tiny_config, tmp_path, vocab):
    vectors = tmp_path / "vectors.txt"
    words = vocab.itos[:10]
    vectors.write_text(
        "10 32\n" + "".join(f"{w} " + " ".join(["0.5"] * 32) + "\n" for w in words),
        encoding="utf-8",
    )
    config = tiny_config(tmp_path, pretrained_embeddings=str(vectors), freeze_embeddings=True)
    model, coverage = build_model(config, vocab)
    assert coverage == pytest.approx(10 / len(vocab))
    assert torch.all(model.embedding.weight[vocab.stoi[words[3]]] == 0.5)
    assert not model.embedding.weight.requires_grad


def test_init_from_starts_from_the_checkpoint_weights(
    tiny_checkpoint, tiny_config, tmp_path, vocab
):
    model, _ = build_model(tiny_config(tmp_path, init_from=str(tiny_checkpoint)), vocab)
    start = load_file(str(tiny_checkpoint / "model.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(start[k], state[k]) for k in start)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(min_freq=1), "vocabulary"),
        (dict(hidden_size=48), "network"),
        (dict(word2vec_init=True), "no-word2vec-init"),
    ],
)
def test_init_from_refuses_a_checkpoint_this_run_cannot_continue(
    tiny_checkpoint, tiny_config, tmp_path, overrides, message
):
    config = tiny_config(tmp_path / "bad", init_from=str(tiny_checkpoint), **overrides)
    with pytest.raises(ValueError, match=message):
        build_model(config, prepare_data(config).vocab)


@pytest.mark.parametrize(
    "clash, message",
    [
        ({"pretrained_embeddings": "vectors.bin"}, "keep one"),
        ({"tie_weights": True}, "--no-word2vec-init"),
    ],
)
def test_word2vec_init_refuses_settings_it_cannot_serve(tiny_config, tmp_path, clash, message):
    config = tiny_config(tmp_path / "run", word2vec_init=True, **clash)
    with pytest.raises(ValueError, match=message):
        build_model(config, prepare_data(config).vocab)


def test_the_optimizer_is_sgd_or_adamw_over_the_trainable_weights(tiny_config, tmp_path, vocab):
    config = tiny_config(tmp_path, optimizer="sgd", lr=20.0)
    model, _ = build_model(config, vocab)
    model.embedding.weight.requires_grad_(False)
    sgd = build_optimizer(config, model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == 20.0
    trained = {id(p) for p in sgd.param_groups[0]["params"]}
    assert id(model.embedding.weight) not in trained
    adamw = build_optimizer(tiny_config(tmp_path, weight_decay=0.05), model)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.05
    with pytest.raises(ValueError, match="choose sgd or adamw"):
        build_optimizer(tiny_config(tmp_path, optimizer="lamb"), model)
