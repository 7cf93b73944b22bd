"""The training loop on the tiny corpus: seeded runs are identical, an interrupted run resumed
ends where an uninterrupted one does, the checkpoint holds the best (or averaged) weights, the
budget stops it where it says on any machine, and the document context is read throughout."""

import json

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_checkpoint
from model.evaluate.cli import evaluate
from model.train.data import prepare_data
from model.train.trainer import Trainer, train


def _weights(directory):
    return load_file(str(directory / "model.safetensors"))


def _metrics(directory):
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def _valid_ppls(directory):
    return [row["valid_ppl"] for row in _metrics(directory)]


def test_seeded_runs_are_identical_and_loss_falls(tiny_config, tmp_path):
    first = train(tiny_config(tmp_path / "a", max_steps=25))
    second = train(tiny_config(tmp_path / "b", max_steps=25))
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first["best_valid_ppl"] == second["best_valid_ppl"]
    history = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    vocab_size = len(load_checkpoint(tmp_path / "a").vocab)
    assert history[-1]["valid_ppl"] < vocab_size / 2  # far below a uniform guess
    assert (tmp_path / "a" / "curves.png").read_bytes()[:4] == b"\x89PNG"


STRONG_RECIPE = dict(
    tie_weights=True,
    variable_bptt=True,
    variational_dropout=True,
    dropout_words=0.1,
    average_from=0.3,
)


# small stream batches, so the interruption falls inside an epoch and the resumed run must
# carry on from the columns' saved state
DOCUMENT_RECIPE = dict(context="document", step_tokens=256, bptt=10, variable_bptt=True)


@pytest.mark.parametrize(
    "recipe",
    [{}, STRONG_RECIPE, DOCUMENT_RECIPE],
    ids=["plain-options", "strong-recipe", "document-context"],
)
def test_interrupted_run_resumed_ends_where_an_uninterrupted_one_does(
    tiny_config, tmp_path, monkeypatch, recipe
):
    whole = tiny_config(tmp_path / "whole", snapshot_minutes=0.0, **recipe)
    train(whole)

    parted = tiny_config(tmp_path / "parted", snapshot_minutes=0.0, **recipe)
    original = Trainer.train_batch
    calls = {"n": 0}

    def crash_after_some_batches(self, batch):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # as if the process were killed after a snapshot
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_batch", crash_after_some_batches)
    with pytest.raises(KeyboardInterrupt):
        train(parted)
    monkeypatch.setattr(Trainer, "train_batch", original)
    parted.resume = True
    train(parted)

    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "parted")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert _valid_ppls(tmp_path / "whole") == pytest.approx(
        _valid_ppls(tmp_path / "parted"), rel=1e-5
    )


def test_a_finished_run_continued_with_a_larger_budget_equals_one_given_it_from_the_start(
    tiny_config, tmp_path
):
    # the run's end frees the optimizer's moments before reading test and rewrites only
    # config.json: the snapshot it leaves must still hold them, or the continuation differs
    train(tiny_config(tmp_path / "whole", max_steps=12, epochs=50))
    short = tiny_config(tmp_path / "parted", max_steps=6, epochs=50)
    assert train(short)["test_ppl"] is not None
    longer = tiny_config(tmp_path / "parted", max_steps=12, epochs=50)
    longer.resume = True
    train(longer)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "parted")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    recorded = load_checkpoint(tmp_path / "parted").metadata["training"]
    assert recorded["steps"] == 12 and recorded["test_ppl"] is not None


def test_the_final_test_reading_holds_no_gradients_or_optimizer_moments(
    tiny_config, tmp_path, monkeypatch
):
    seen = []
    original = Trainer.evaluate

    def record_state(self, split, model=None):
        if split == "test":
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            seen.append((len(grads), len(self.optimizer.state)))
        return original(self, split, model)

    monkeypatch.setattr(Trainer, "evaluate", record_state)
    train(tiny_config(tmp_path / "run", max_steps=4))
    assert seen == [(0, 0)]


def test_existing_run_is_not_overwritten_without_resume(tiny_config, tmp_path):
    train(tiny_config(tmp_path / "run", max_steps=3))
    with pytest.raises(SystemExit, match="--resume"):
        train(tiny_config(tmp_path / "run", max_steps=3))


def test_checkpoint_keeps_the_best_valid_weights_when_later_epochs_are_worse(
    tiny_config, tmp_path, monkeypatch
):
    fake_valid = iter([50.0, 20.0, 30.0, 40.0])  # epoch 2 is the best
    seen: list[dict] = []
    real_evaluate = Trainer.evaluate

    def scripted(self, split, model=None):
        if split != "valid":
            return real_evaluate(self, split, model)
        seen.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return next(fake_valid)

    monkeypatch.setattr(Trainer, "evaluate", scripted)
    stats = train(tiny_config(tmp_path / "run", epochs=4, patience=5))
    saved = _weights(tmp_path / "run")
    assert stats["best_valid_ppl"] == 20.0
    assert all(torch.equal(saved[k], seen[1][k]) for k in saved)
    assert not all(torch.equal(saved[k], seen[3][k]) for k in saved)


def test_averaged_weights_are_validated_and_kept_when_better(tiny_config, tmp_path):
    stats = train(tiny_config(tmp_path / "run", epochs=3, average_from=0.3))
    rows = _metrics(tmp_path / "run")
    averaged = [r["average_valid_ppl"] for r in rows if r["average_valid_ppl"] is not None]
    assert averaged, "averaging started after 30% of the epochs, so later epochs report it"
    best = min([r["valid_ppl"] for r in rows] + averaged)
    assert stats["best_valid_ppl"] == pytest.approx(best, rel=1e-3)
    saved = evaluate(str(tmp_path / "run"), split="valid")["perplexity"]
    assert saved == pytest.approx(best, rel=1e-3)  # the checkpoint holds the best of both


def test_the_optimizer_takes_the_lr_a_validation_anneals(tiny_config, tmp_path, monkeypatch):
    config = tiny_config(tmp_path / "run", schedule="plateau", optimizer="sgd", lr=1.0)
    trainer = Trainer(config, prepare_data(config))
    worse = iter(range(100, 200))  # every validation is worse than the one before
    monkeypatch.setattr(Trainer, "evaluate", lambda self, split, model=None: float(next(worse)))
    trainer.validate(5.0)  # first epoch end: the best so far
    trainer.validate(5.0, epoch_end=False)  # worse, inside an epoch: lr stays
    assert trainer.optimizer.param_groups[0]["lr"] == 1.0
    trainer.validate(5.0)  # a worse epoch end anneals
    assert trainer.progress.lr == trainer.optimizer.param_groups[0]["lr"] == config.anneal_factor


def test_a_budget_ending_mid_epoch_neither_anneals_nor_counts_patience(
    tiny_config, tmp_path, monkeypatch
):
    one_epoch = tiny_config(tmp_path / "epoch", epochs=1)
    train(one_epoch)
    steps_per_epoch = json.loads((tmp_path / "epoch" / "resume.json").read_text())["progress"]
    steps_per_epoch = steps_per_epoch["step"]
    worse = iter(range(100, 200))  # every validation is worse than the one before
    real_evaluate = Trainer.evaluate
    monkeypatch.setattr(
        Trainer,
        "evaluate",
        lambda self, split, model=None: (
            float(next(worse)) if split == "valid" else real_evaluate(self, split, model)
        ),
    )
    config = tiny_config(
        tmp_path / "run", schedule="plateau", optimizer="sgd", lr=1.0,
        max_steps=steps_per_epoch + 2,
    )  # fmt: skip
    train(config)
    progress = json.loads((tmp_path / "run" / "resume.json").read_text())["progress"]
    assert progress["epoch"] == 1 and progress["batch"] > 0  # stopped inside epoch 2
    assert progress["lr"] == 1.0 and progress["epochs_without_gain"] == 0


def test_a_token_budget_stops_at_the_first_step_past_it_and_says_so(tiny_config, tmp_path):
    stats = train(tiny_config(tmp_path / "run", max_tokens=3000, epochs=50))
    assert 3000 <= stats["tokens_seen"] < 3000 + 2 * 512  # one step reads about step_tokens
    assert stats["stopped_by"] == "tokens"
    assert stats["test_ppl"] is not None


def test_a_token_budget_gives_the_same_model_however_slow_the_machine(
    tiny_config, tmp_path, monkeypatch
):
    """The budget and the cosine schedule count tokens, not seconds: a machine made to look
    ten times slower trains exactly the same weights."""
    budget = dict(max_tokens=2500, max_minutes=600.0, schedule="cosine")  # the cap is not hit
    train(tiny_config(tmp_path / "fast", **budget))
    clock = {"now": 0.0}

    def slow_clock() -> float:
        clock["now"] += 10.0
        return clock["now"]

    monkeypatch.setattr("model.train.trainer.time.monotonic", slow_clock)
    train(tiny_config(tmp_path / "slow", **budget))
    a, b = _weights(tmp_path / "fast"), _weights(tmp_path / "slow")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_time_cap_that_cuts_the_run_short_says_so(tiny_config, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="nextword.train"):
        stats = train(tiny_config(tmp_path / "run", max_tokens=10**9, max_minutes=0.0005))
    assert stats["stopped_by"] == "max_minutes"
    assert "--max-minutes 0.0005 stopped the run" in caplog.text


def test_a_cap_too_small_for_one_validation_still_writes_a_loadable_checkpoint(
    tiny_config, tmp_path
):
    """word2vec alone can outlast a tiny --max-minutes: the run still ends with a checkpoint
    that loads and scores test, instead of failing on a missing directory."""
    config = tiny_config(tmp_path / "run", word2vec_init=True, max_minutes=1e-6)
    stats = train(config)
    assert stats["steps"] == 0 and stats["stopped_by"] == "max_minutes"
    assert stats["test_ppl"] is not None
    assert load_checkpoint(tmp_path / "run").model is not None


def test_document_context_training_validates_and_records_the_document_reading(
    tiny_config, tmp_path
):
    stats = train(tiny_config(tmp_path / "doc", context="document", step_tokens=256, bptt=10))
    checkpoint = load_checkpoint(tmp_path / "doc")
    assert checkpoint.metadata["inference"] == {"context": "document"}
    as_document = evaluate(checkpoint, split="test", context="document")
    as_lines = evaluate(checkpoint, split="test", context="line")
    assert stats["test_ppl"] == pytest.approx(as_document["perplexity"], rel=1e-5)
    assert as_document["num_tokens"] == as_lines["num_tokens"]  # the same targets
    assert stats["test_ppl"] != pytest.approx(as_lines["perplexity"], rel=1e-3)
