"""Dynamic evaluation on the tiny real checkpoint: scoring's document reading by an adapting
copy, the checkpoint untouched, the figures its own loop gave before it became a hook of that
reading, and its settings."""

import copy
import hashlib

import pytest
import torch

from model.batching import document_stream
from model.evaluate.cli import evaluate
from model.evaluate.dynamic import (
    DynamicConfig,
    adaptation_step,
    adapting_copy,
    read_document_dynamic,
)
from model.rnn import ModelConfig, RNNLanguageModel
from model.scoring import perplexity_of, read_document


def test_dynamic_evaluation_adapts_a_copy_and_without_steps_is_the_plain_document(
    checkpoint, lines, tiny_checkpoint
):
    eos, model = checkpoint.vocab.eos_id, checkpoint.model
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    on_disk = hashlib.sha256((tiny_checkpoint / "model.safetensors").read_bytes()).hexdigest()
    still = read_document_dynamic(model, lines, eos, DynamicConfig(lr=0.0, decay=0.0, segment=9))
    plain = read_document(model, lines, eos)
    assert torch.allclose(still.log_probs, plain.log_probs, atol=1e-5)
    moving = read_document_dynamic(model, lines, eos, DynamicConfig(lr=0.5, decay=0.01, segment=9))
    assert torch.equal(moving.log_probs[:9], still.log_probs[:9])  # scored before any step
    assert not torch.allclose(moving.log_probs[9:], still.log_probs[9:], atol=1e-3)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert hashlib.sha256((tiny_checkpoint / "model.safetensors").read_bytes()).hexdigest() == (
        on_disk
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_adapting_copy_reads_as_evaluation_and_learns_in_training_mode(cell) -> None:
    """Every dropout off, yet the recurrent layer in training mode (cuDNN's RNN has no
    backward pass outside it): the copy's scores equal the model's in eval(), to the bit."""
    torch.manual_seed(0)
    config = ModelConfig(40, cell=cell, embedding_size=8, hidden_size=8, num_layers=2,
                         dropout_embedding=0.5, dropout_hidden=0.5, dropout_output=0.5,
                         output_layer="full")  # fmt: skip
    model = RNNLanguageModel(config)
    tokens = torch.randint(0, 40, (2, 12))
    adapted = adapting_copy(model)
    assert adapted.rnn.training and adapted.rnn.dropout == 0.0
    assert not adapted.dropout_embedding.training and not adapted.dropout_output.training
    assert model.rnn.dropout == 0.5  # the model itself is left as it was
    with torch.no_grad():
        reference = model.eval().log_probs(model(tokens)[0])
        twice = [adapted.log_probs(adapted(tokens)[0]) for _ in range(2)]
    assert torch.equal(twice[0], reference) and torch.equal(twice[1], reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_dynamic_evaluation_runs_on_cuda_with_the_cpu_figures(checkpoint, lines) -> None:
    config = DynamicConfig(lr=0.5, decay=0.01, segment=9)
    eos = checkpoint.vocab.eos_id
    on_cpu = read_document_dynamic(checkpoint.model, lines, eos, config)
    on_gpu = read_document_dynamic(copy.deepcopy(checkpoint.model).cuda(), lines, eos, config)
    assert on_gpu.perplexity() == pytest.approx(on_cpu.perplexity(), rel=1e-3)


def _reading_loop_before(model, lines, eos_id, config: DynamicConfig) -> torch.Tensor:
    """The log-probabilities of dynamic evaluation as dynamic.py computed them with a reading
    loop of its own, before it became a hook of scoring's document reading: the oracle."""
    adapted = copy.deepcopy(model).eval()
    parameters = [p for p in adapted.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in parameters]
    inputs, targets = document_stream(lines, eos_id)
    scores, state = [], None
    for start in range(0, targets.numel(), config.segment):
        window = inputs[start : start + config.segment][None]
        output, state = adapted(window, state)
        log_probs = adapted.target_log_probs(output[0], targets[start : start + config.segment])
        scores.append(log_probs.detach().float())
        adapted.zero_grad(set_to_none=True)
        (-log_probs.mean()).backward()
        with torch.no_grad():
            for weight, original in zip(parameters, trained, strict=True):
                if weight.grad is not None:
                    weight.sub_(config.lr * weight.grad)
                weight.add_(original - weight, alpha=config.decay)
        state = state.detach()
    return torch.cat(scores)


@pytest.mark.parametrize("config", [DynamicConfig(0.5, 0.01, 9), DynamicConfig(0.1, 0.001)])
def test_dynamic_figures_are_the_ones_of_its_own_loop_before(checkpoint, lines, config):
    eos = checkpoint.vocab.eos_id
    now = read_document_dynamic(checkpoint.model, lines, eos, config)
    before = _reading_loop_before(checkpoint.model, lines, eos, config)
    assert torch.allclose(now.log_probs, before, rtol=0, atol=1e-6)
    assert now.perplexity() == pytest.approx(perplexity_of([before])[0], rel=1e-9)


def test_evaluate_reads_dynamically_in_the_document_context(tiny_checkpoint):
    config = DynamicConfig(0.5, 0.01, 9)
    result = evaluate(str(tiny_checkpoint), split="valid", context="document", dynamic=config)
    plain = evaluate(str(tiny_checkpoint), split="valid", context="document")
    assert result["context"] == "document" and result["dynamic"] == config.to_dict()
    assert result["num_tokens"] == plain["num_tokens"]
    assert result["perplexity"] < plain["perplexity"]  # it learns from the text it has read


def test_one_step_moves_the_weights_down_the_gradient_then_back_toward_the_trained_ones():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    learn = adaptation_step(model, DynamicConfig(lr=0.5, decay=0.5))  # type: ignore[arg-type]
    learn(model(torch.tensor([[2.0]]))[0])  # log-prob 2w: gradient of -2w is -2
    # SGD: 1 + 0.5 * 2 = 2; pulled half way back toward the trained 1: 1.5
    assert model.weight.item() == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": -1.0, "decay": 0.0}, "lr must be"),
        ({"lr": float("nan"), "decay": 0.0}, "lr must be"),
        ({"lr": 0.1, "decay": 1.5}, "decay must be"),
        ({"lr": 0.1, "decay": 0.0, "segment": 0}, "segment must be"),
    ],
)
def test_settings_out_of_range_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        DynamicConfig(**settings)


def test_the_json_form_round_trips_and_unknown_keys_are_named():
    config = DynamicConfig(0.3, 0.001)
    assert DynamicConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="'momentum'"):
        DynamicConfig.from_dict({"lr": 0.3, "decay": 0.0, "momentum": 0.9})
