"""The network: every cell learns, output layers agree with their own log_probs, tying works."""

import math

import pytest
import torch

from model.batching import line_batch
from model.hardware import cpu_bf16_missing
from model.rnn import CELLS, ModelConfig, RNNLanguageModel, locked_dropout, word_dropout

VOCAB = 50


def _toy_batch() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    lines = [
        (torch.arange(12) * 3 + int(torch.randint(0, 40, (1,), generator=generator))) % 48 + 2
        for _ in range(16)
    ]
    return line_batch([line.tolist() for line in lines], eos_id=1)


STEPS = 50  # Adam steps on the toy batch: about 0.2 s per cell on one core
LEARNED = 0.6  # the last loss is below this share of the first, for every cell and layer


@pytest.fixture
def one_thread():
    """One torch thread while a test trains: matrices this small only lose time to a second
    thread, and a lot of it when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _losses_while_fitting_the_toy_batch(
    cell: str, output_layer: str, bf16: bool = False
) -> list[float]:
    """The training loss at each of STEPS Adam steps on _toy_batch, from seed 0 (under bf16
    autocast when asked)."""
    torch.manual_seed(0)
    model = RNNLanguageModel(
        ModelConfig(
            VOCAB,
            cell=cell,
            embedding_size=16,
            hidden_size=24,
            num_layers=2,
            output_layer=output_layer,
            cutoffs=[10, 30],
        )
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    batch = _toy_batch()
    losses = []
    for _ in range(STEPS):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features, _ = model(batch.inputs)
            loss = -model.target_log_probs(features, batch.targets).float().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("output_layer", ["full", "adaptive"])
def test_each_cell_learns_a_regular_sequence(cell, output_layer, one_thread):
    losses = _losses_while_fitting_the_toy_batch(cell, output_layer)
    assert losses[0] > 3.0  # starts near uniform over 50 words (ln 50 = 3.9)
    assert losses[-1] < LEARNED * losses[0], losses


def _small_model(output_layer: str) -> RNNLanguageModel:
    """An 8-wide model in evaluation mode, seeded, with two tail clusters when adaptive."""
    torch.manual_seed(0)
    config = ModelConfig(
        VOCAB, output_layer=output_layer, embedding_size=8, hidden_size=8, cutoffs=[10, 30]
    )
    return RNNLanguageModel(config).eval()


@pytest.mark.parametrize("output_layer", ["full", "adaptive"])
def test_log_probs_are_a_distribution_matching_target_scores(output_layer):
    model = _small_model(output_layer)
    batch = _toy_batch()
    features, state = model(batch.inputs)
    full = model.log_probs(features.reshape(-1, features.size(-1)))
    assert torch.allclose(full.exp().sum(-1), torch.ones(full.size(0)), atol=1e-4)
    picked = full.gather(1, batch.targets.reshape(-1, 1)).squeeze(1)
    assert torch.allclose(picked, model.target_log_probs(features, batch.targets), atol=1e-5)
    assert state.shape == (2, 2, 16, 8)


@pytest.mark.parametrize("output_layer", ["full", "adaptive"])
def test_more_positions_than_one_output_call_are_scored_in_chunks_alike(output_layer, monkeypatch):
    model = _small_model(output_layer)
    batch = _toy_batch()
    features, _ = model(batch.inputs)
    whole = model.target_log_probs(features, batch.targets)
    calls = []
    scorer = model._output_log_probs
    monkeypatch.setattr(
        model, "_output_log_probs", lambda c, w: calls.append(len(w)) or scorer(c, w)
    )
    monkeypatch.setattr("model.rnn.OUTPUT_CHUNK", 7)
    chunked = model.target_log_probs(features, batch.targets)
    assert calls and max(calls) == 7 and sum(calls) == whole.numel()  # no call past the chunk
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_state_carries_across_calls_exactly():
    torch.manual_seed(0)
    model = RNNLanguageModel(
        ModelConfig(VOCAB, cell="gru", embedding_size=8, hidden_size=8, output_layer="full")
    ).eval()
    tokens = torch.randint(0, VOCAB, (3, 10))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], state)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)


def test_tied_weights_share_the_embedding_with_a_projection():
    model = RNNLanguageModel(
        ModelConfig(VOCAB, embedding_size=8, hidden_size=16, output_layer="full", tie_weights=True)
    )
    assert model.decoder.weight is model.embedding.weight
    assert model.projection is not None and model.projection.out_features == 8


def test_bad_configs_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown cell"):
        ModelConfig(VOCAB, cell="transformer")
    with pytest.raises(ValueError, match="unknown output layer"):
        ModelConfig(VOCAB, output_layer="hierarchical")


def test_tied_adaptive_input_reads_the_softmax_matrices():
    torch.manual_seed(0)
    config = ModelConfig(
        VOCAB,
        embedding_size=8,
        hidden_size=8,
        cutoffs=[10, 30],
        adaptive_div_value=2.0,
        tie_weights=True,
    )
    model = RNNLanguageModel(config)
    softmax = model.adaptive
    assert not any(name.startswith("embedding") for name, _ in model.named_parameters())
    head_word, tail_word = 3, 35  # shortlist, second tail cluster
    vectors = model.embedding(torch.tensor([[head_word, tail_word]]))[0]
    down, out = softmax.tail[1][0].weight, softmax.tail[1][1].weight
    assert torch.equal(vectors[0], softmax.head.weight[head_word])
    assert torch.allclose(vectors[1], out[tail_word - 30] @ down)
    # both uses train the shared matrices: the input side alone gives them a gradient
    model.embedding(torch.tensor([[tail_word]])).sum().backward()
    assert out.grad[tail_word - 30].abs().sum() > 0 and down.grad.abs().sum() > 0


def test_variational_dropout_keeps_one_mask_along_time():
    torch.manual_seed(0)
    x = torch.ones(4, 20, 16)
    dropped = locked_dropout(x, 0.5, training=True)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # same at every step
    assert (dropped == 0).any() and (dropped == 2).any()
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_word_dropout_drops_every_occurrence_of_a_word_together():
    torch.manual_seed(1)
    tokens = torch.tensor([[1, 2, 1, 3, 2, 1] * 5])
    dropped = word_dropout(tokens, torch.ones(1, 30, 4), 0.5)
    for word in (1, 2, 3):
        rows = dropped[tokens == word]
        assert torch.equal(rows, rows[:1].expand_as(rows))


def test_lengths_stop_each_row_at_its_own_end():
    torch.manual_seed(0)
    model = RNNLanguageModel(
        ModelConfig(VOCAB, embedding_size=8, hidden_size=8, output_layer="full")
    ).eval()
    tokens = torch.randint(0, VOCAB, (2, 6))
    features, state = model(tokens, lengths=torch.tensor([6, 3]))
    short_features, short_state = model(tokens[1:, :3])
    assert torch.allclose(features[1, :3], short_features[0], atol=1e-6)
    assert torch.allclose(state[:, :, 1], short_state[:, :, 0], atol=1e-6)


@pytest.mark.skipif(cpu_bf16_missing() is not None, reason=f"no bf16 here: {cpu_bf16_missing()}")
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("output_layer", ["full", "adaptive"])
def test_every_cell_trains_under_bf16_autocast(cell, output_layer, one_thread):
    losses = _losses_while_fitting_the_toy_batch(cell, output_layer, bf16=True)
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < LEARNED * losses[0], losses
