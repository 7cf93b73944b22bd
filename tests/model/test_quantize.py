"""int8 quantisation: which layers become int8, that a text's int8 scores are the same bit for
bit whatever shares its batch, that the int8 model reads a text almost exactly as the float one
does, and the served-weights choice and weight count that the service and the bench read."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from model.checkpoint import load_checkpoint
from model.hardware import int8_matmul_missing
from model.quantize import (
    Int8Linear,
    Int8Recurrent,
    quantize_int8,
    served_weights,
    weight_bytes,
)
from model.rnn import CELLS, AdaptiveInput, ModelConfig, RNNLanguageModel
from model.scoring import perplexity_of, score_lines
from model.tokenizers import build_tokenizer, encode_text

VOCAB = 50
MODES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}


def _model(**settings) -> RNNLanguageModel:
    torch.manual_seed(0)
    sizes = {"embedding_size": 16, "hidden_size": 16, "cutoffs": [10, 30], **settings}
    return RNNLanguageModel(ModelConfig(VOCAB, **sizes)).eval()


def _output_linears(model: RNNLanguageModel) -> list[nn.Module]:
    if model.adaptive is None:
        return [model.decoder]
    softmax = model.adaptive
    return [softmax.head, *(layer for tail in softmax.tail for layer in tail)]


def _random_lines(count: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 25, (count,), generator=generator)
    return [torch.randint(1, VOCAB, (int(n),), generator=generator).tolist() for n in lengths]


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint, tiny_corpus_file):
    """The tiny LSTM checkpoint (adaptive softmax, untied), its float model and an int8 copy,
    and the ids of its corpus' first 40 lines."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    lines = tiny_corpus_file.read_text(encoding="utf-8").splitlines()[:40]
    tokenizer = build_tokenizer(checkpoint.tokenizer_spec)
    ids = [encode_text(tokenizer, checkpoint.vocab, line).ids for line in lines]
    return checkpoint, quantize_int8(checkpoint.model), ids


# -- which layers --------------------------------------------------------------------------------
def test_the_lstm_and_every_linear_layer_become_int8_and_the_embedding_stays_float(tiny):
    checkpoint, quantized, _ = tiny
    assert isinstance(quantized.rnn, Int8Recurrent) and quantized.rnn.mode == "LSTM"
    linears = _output_linears(quantized)
    assert len(linears) == 5 and all(isinstance(layer, Int8Linear) for layer in linears)
    assert all(layer.weight_t.dtype == torch.int8 for layer in linears)
    assert type(quantized.embedding) is nn.Embedding
    assert quantized.embedding.weight.dtype == torch.float32
    assert torch.equal(quantized.embedding.weight, checkpoint.model.embedding.weight)


@pytest.mark.parametrize("output_layer", ["full", "adaptive"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_and_output_layer_becomes_int8(cell, output_layer):
    quantized = quantize_int8(_model(cell=cell, output_layer=output_layer, num_layers=2))
    assert isinstance(quantized.rnn, Int8Recurrent) and quantized.rnn.mode == MODES[cell]
    assert len(quantized.rnn.input_layers) == len(quantized.rnn.hidden_layers) == 2
    assert all(isinstance(layer, Int8Linear) for layer in _output_linears(quantized))
    assert type(quantized.embedding) is nn.Embedding


def test_a_tied_adaptive_softmax_stays_float_because_it_is_also_the_input():
    model = _model(cell="lstm", tie_weights=True, hidden_size=24)  # 24 -> 16: a projection
    quantized = quantize_int8(model)
    assert isinstance(quantized.rnn, Int8Recurrent)
    assert isinstance(quantized.projection, Int8Linear)
    assert all(type(layer) is nn.Linear for layer in _output_linears(quantized))
    assert isinstance(quantized.embedding, AdaptiveInput)
    # the input vectors are still the float softmax's rows, read from the copy's own softmax
    tokens = torch.tensor([[3, 35]])
    assert torch.equal(quantized.embedding(tokens), model.embedding(tokens))
    assert quantized.embedding.weight is quantized.adaptive.head.weight


def test_the_float_model_is_left_as_it_was_and_the_copy_is_in_eval_mode(tiny):
    checkpoint, quantized, _ = tiny
    assert quantized is not checkpoint.model
    assert type(checkpoint.model.rnn) is nn.LSTM
    assert type(checkpoint.model.adaptive.head) is nn.Linear
    assert not quantized.training and not any(m.training for m in quantized.modules())


def test_a_model_off_the_cpu_is_refused_with_the_setting_to_change():
    with pytest.raises(ValueError, match="onto the CPU"):
        quantize_int8(_model().to("meta"))


# -- the same scores in any company --------------------------------------------------------------
def _alone_and_together(model: RNNLanguageModel, lines: list[list[int]], eos: int) -> float:
    """Largest gap between a target's log-probability with its line read alone and read in one
    batch with all the others."""
    with torch.inference_mode():
        alone = [score_lines(model, [line], eos)[0] for line in lines]
        together = score_lines(model, lines, eos, batch_size=len(lines))
    return max(float((a - b).abs().max()) for a, b in zip(alone, together, strict=True))


def test_int8_scores_of_a_line_do_not_depend_on_the_other_lines_of_its_batch(tiny):
    checkpoint, quantized, ids = tiny
    lines = ids[:12]
    assert len({len(line) for line in lines}) > 5  # lines of many lengths share the batch
    assert _alone_and_together(quantized, lines, checkpoint.vocab.eos_id) <= 1e-6


@pytest.mark.parametrize("output_layer", ["full", "adaptive"])
@pytest.mark.parametrize("cell", CELLS)
def test_int8_scores_are_batch_invariant_for_every_cell(cell, output_layer):
    quantized = quantize_int8(_model(cell=cell, output_layer=output_layer, num_layers=2))
    assert _alone_and_together(quantized, _random_lines(9), eos=0) <= 1e-6


def test_int8_features_and_states_are_batch_invariant_with_lengths():
    # the service's path: one padded forward with each row's length, rows of other lengths
    quantized = quantize_int8(_model(cell="lstm", num_layers=2))
    tokens = torch.randint(1, VOCAB, (6, 11), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([11, 4, 1, 7, 11, 2])
    with torch.inference_mode():
        features, state = quantized(tokens, None, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone, alone_state = quantized(tokens[row : row + 1, :length])
            assert float((alone[0] - features[row, :length]).abs().max()) <= 1e-6
            assert float((alone_state[:, :, 0] - state[:, :, row]).abs().max()) <= 1e-6


# -- close to float ------------------------------------------------------------------------------
def test_int8_perplexity_is_within_one_percent_of_float(tiny):
    checkpoint, quantized, ids = tiny
    eos = checkpoint.vocab.eos_id
    with torch.inference_mode():
        exact = score_lines(checkpoint.model, ids, eos)
        approximate = score_lines(quantized, ids, eos)
    gaps = torch.cat([a - b for a, b in zip(exact, approximate, strict=True)]).abs()
    assert gaps.max() < 0.1  # nats, per target
    assert gaps.max() > 0  # the weights really are different numbers
    float_ppl, targets = perplexity_of(exact)
    int8_ppl, _ = perplexity_of(approximate)
    assert targets > 500 and int8_ppl == pytest.approx(float_ppl, rel=0.01)


def test_int8_next_token_distribution_is_close_to_float_over_the_whole_vocabulary(tiny):
    checkpoint, quantized, ids = tiny
    tokens = torch.tensor([ids[0][:20]])  # (1, T)
    with torch.inference_mode():
        exact = checkpoint.model.log_probs(checkpoint.model(tokens)[0][0])  # (T, V)
        approximate = quantized.log_probs(quantized(tokens)[0][0])
    assert torch.allclose(approximate.exp().sum(-1), torch.ones(len(tokens[0])), atol=1e-4)
    assert torch.allclose(approximate, exact, atol=0.1)
    assert torch.equal(approximate.argmax(-1), exact.argmax(-1))


# -- the layers themselves -----------------------------------------------------------------------
def _float_layer(mode: str) -> nn.RNNBase:
    torch.manual_seed(0)
    common = dict(input_size=12, hidden_size=20, num_layers=2, batch_first=True)
    if mode == "LSTM":
        return nn.LSTM(**common).eval()
    if mode == "GRU":
        return nn.GRU(**common).eval()
    return nn.RNN(nonlinearity=mode.removeprefix("RNN_").lower(), **common).eval()


@pytest.mark.parametrize("mode", MODES.values())
def test_int8_recurrent_reads_like_the_float_layer_and_stops_each_row_at_its_length(mode):
    rnn = _float_layer(mode)
    slots = 2 if mode == "LSTM" else 1
    embedded, state = torch.randn(5, 9, 12), torch.randn(slots, 2, 5, 20) * 0.5
    lengths = torch.tensor([9, 3, 1, 6, 9])
    int8 = Int8Recurrent.from_float(rnn)
    with torch.inference_mode():
        output, new_state = int8(embedded, state, lengths)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, True, False)
        start = (state[0], state[1]) if mode == "LSTM" else state[0]
        float_output, float_state = rnn(packed, start)
        float_output = nn.utils.rnn.pad_packed_sequence(float_output, True, total_length=9)[0]
        float_state = torch.stack(float_state) if mode == "LSTM" else float_state[None]
        for row, length in enumerate(lengths.tolist()):  # each row alone, to its own end
            alone, alone_state = int8(embedded[row : row + 1, :length], state[:, :, row : row + 1])
            assert torch.equal(alone[0], output[row, :length])
            assert torch.equal(alone_state[:, :, 0], new_state[:, :, row])
            assert not output[row, length:].any()  # zeros past the row's length
    assert output.shape == (5, 9, 20) and new_state.shape == state.shape
    assert torch.allclose(output, float_output, atol=0.05)  # the same gates, in the same order
    assert torch.allclose(new_state, float_state, atol=0.05)


@pytest.mark.parametrize("inputs, outputs", [(13, 7), (1, 20), (20, 1)])  # odd sizes
def test_int8_linear_is_a_float_linear_within_the_quantisation_error(inputs, outputs):
    torch.manual_seed(0)
    linear = nn.Linear(inputs, outputs)
    x = torch.randn(2, 3, inputs)  # leading dimensions are kept
    x[1, 2] = 0  # an all-zero row gives the bias
    int8 = Int8Linear.from_float(linear)
    with torch.inference_mode():
        got, want = int8(x), linear(x)
        alone = int8(x[0, 1:2])
    # |x w - x' w'| <= |x| |w - w'| + |w'| |x - x'|: half a step each (weights ±63, rows ±127)
    weight_max = linear.weight.abs().amax(1)  # (N,)
    row_max = x.abs().amax(-1, keepdim=True)  # (2, 3, 1)
    bound = (x.abs().sum(-1, keepdim=True) / 126 + inputs * row_max / 254) * weight_max
    assert got.shape == (2, 3, outputs) and int8.weight_t.dtype == torch.int8
    assert bool(((got - want).abs() <= bound + 1e-5).all())
    assert torch.equal(got[1, 2], linear.bias.detach())
    assert torch.equal(alone, got[0, 1:2])  # a row alone gives exactly what it gives in a batch


def test_int8_sums_are_exact_on_a_cpu_without_vnni():
    # without VNNI oneDNN adds u8 x s8 pairs in a saturating int16: ±63 weights must fit it
    script = (
        "import torch\n"
        "from model.quantize import Int8Linear\n"
        "torch.manual_seed(0)\n"
        "layer = Int8Linear.from_float(torch.nn.Linear(512, 300))\n"
        "rows = torch.full((4, 512), 127, dtype=torch.int8)\n"
        "rows[1:] = torch.randint(-127, 128, (3, 512), dtype=torch.int8)\n"
        "sums = torch._int_mm(rows, layer.weight_t)\n"
        "print(torch.equal(sums.long(), rows.long() @ layer.weight_t.long()))\n"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


# -- what the service and the bench read ---------------------------------------------------------
def test_auto_serves_float_on_a_gpu_and_whichever_is_faster_on_the_cpu():
    assert served_weights("auto", "cuda:1") == "none"
    assert served_weights("auto", "cpu") == ("int8" if int8_matmul_missing() is None else "none")
    assert served_weights("none", "cpu") == served_weights("none", "cuda") == "none"
    assert served_weights("int8", "cpu") == "int8"


def test_int8_on_a_gpu_is_refused_with_the_setting_to_change():
    with pytest.raises(ValueError, match="choose none or auto"):
        served_weights("int8", "cuda")


def test_weight_bytes_count_the_recurrent_and_output_layers_as_served():
    model = _model(cell="gru", output_layer="full")  # E = H = 16, two layers, V = 50
    gru_layer = 2 * (48 * 16 + 48)  # W_ih, b_ih and W_hh, b_hh: 3 gates of 16 units
    decoder = 50 * 16 + 50
    assert weight_bytes(model) == 4 * (2 * gru_layer + decoder)
    # int8: a byte a weight, 4 for each channel's scale and bias; the embedding never counts
    int8_gru_layer = 2 * (48 * 16 + 4 * 48 + 4 * 48)
    int8_decoder = 50 * 16 + 4 * 50 + 4 * 50
    assert weight_bytes(quantize_int8(model)) == 2 * int8_gru_layer + int8_decoder
