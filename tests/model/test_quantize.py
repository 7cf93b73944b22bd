"""int8 quantisation: which layers become int8 (LSTM/GRU and Linear), which stay float (the
embedding, a tanh/relu RNN, a tied adaptive softmax), and that the int8 model reads a text
almost exactly as the float one does."""

import pytest
import torch
import torch.ao.nn.quantized.dynamic as int8
from torch import nn

from model.checkpoint import load_checkpoint
from model.quantize import quantize_int8
from model.rnn import AdaptiveInput, ModelConfig, RNNLanguageModel
from model.scoring import perplexity_of, score_lines
from model.tokenizers import build_tokenizer, encode_text

VOCAB = 50


def _model(**settings) -> RNNLanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(VOCAB, embedding_size=16, hidden_size=16, cutoffs=[10, 30], **settings)
    return RNNLanguageModel(config).eval()


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint, tiny_corpus_file):
    """The tiny LSTM checkpoint (adaptive softmax, untied), its float model and an int8 copy,
    and the ids of its corpus' first 40 lines."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    lines = tiny_corpus_file.read_text(encoding="utf-8").splitlines()[:40]
    tokenizer = build_tokenizer(checkpoint.tokenizer_spec)
    ids = [encode_text(tokenizer, checkpoint.vocab, line).ids for line in lines]
    return checkpoint, quantize_int8(checkpoint.model), ids


def test_the_lstm_and_every_linear_layer_become_int8_and_the_embedding_stays_float(tiny):
    checkpoint, quantized, _ = tiny
    assert isinstance(quantized.rnn, int8.LSTM)
    softmax = quantized.adaptive
    linears = [softmax.head, *(layer for tail in softmax.tail for layer in tail)]
    assert all(isinstance(layer, int8.Linear) for layer in linears)
    assert all(layer.weight().dtype == torch.qint8 for layer in linears)
    assert type(quantized.embedding) is nn.Embedding
    assert quantized.embedding.weight.dtype == torch.float32
    assert torch.equal(quantized.embedding.weight, checkpoint.model.embedding.weight)


def test_the_float_model_is_left_as_it_was_and_the_copy_is_in_eval_mode(tiny):
    checkpoint, quantized, _ = tiny
    assert quantized is not checkpoint.model
    assert type(checkpoint.model.rnn) is nn.LSTM
    assert type(checkpoint.model.adaptive.head) is nn.Linear
    assert not quantized.training


def test_int8_log_probs_stay_within_a_few_hundredths_of_float(tiny):
    checkpoint, quantized, ids = tiny
    eos = checkpoint.vocab.eos_id
    with torch.inference_mode():
        exact = score_lines(checkpoint.model, ids, eos)
        approximate = score_lines(quantized, ids, eos)
    gaps = torch.cat([a - b for a, b in zip(exact, approximate, strict=True)]).abs()
    assert gaps.max() < 0.1  # nats, per target: measured 0.016 on this checkpoint
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


def test_a_gru_and_a_full_output_layer_become_int8():
    quantized = quantize_int8(_model(cell="gru", output_layer="full"))
    assert isinstance(quantized.rnn, int8.GRU)
    assert isinstance(quantized.decoder, int8.Linear)
    assert type(quantized.embedding) is nn.Embedding


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu"])
def test_a_plain_rnn_stays_float_and_its_output_layer_becomes_int8(cell):
    quantized = quantize_int8(_model(cell=cell))
    assert type(quantized.rnn) is nn.RNN
    assert isinstance(quantized.adaptive.head, int8.Linear)


def test_a_tied_adaptive_softmax_stays_float_because_it_is_also_the_input():
    model = _model(cell="lstm", tie_weights=True)
    quantized = quantize_int8(model)
    assert isinstance(quantized.rnn, int8.LSTM)
    assert type(quantized.adaptive.head) is nn.Linear
    assert isinstance(quantized.embedding, AdaptiveInput)
    # the input vectors are still the float softmax's rows, read from the copy's own softmax
    tokens = torch.tensor([[3, 35]])
    assert torch.equal(quantized.embedding(tokens), model.embedding(tokens))
    assert quantized.embedding.weight is quantized.adaptive.head.weight


def test_a_model_off_the_cpu_is_refused_with_the_setting_to_change():
    with pytest.raises(ValueError, match="NEXTWORD_DEVICE=cpu"):
        quantize_int8(_model().to("meta"))
