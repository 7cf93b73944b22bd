"""NEXTWORD_QUANTIZE=int8: dynamic int8 quantisation of the recurrent and output layers (CPU).

Which path: torch's eager `quantize_dynamic` (torch.ao.quantization), deprecated in favour of
torchao's `quantize_`. torchao's int8 configs cover nn.Linear only — no recurrent layer — and
target torch.compile/GPU kernels, while here the LSTM/GRU holds most of a step's arithmetic; so
no maintained path covers the layer that matters, and the deprecated one is used for all of
them (nn.LSTM, nn.GRU and every nn.Linear, which includes the adaptive softmax's head and
tails). The embedding stays in float. `bench/serve.py --int8` measures speed and perplexity.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from model.rnn import AdaptiveInput, RNNLanguageModel

log = logging.getLogger(__name__)


def quantize_int8(model: RNNLanguageModel) -> RNNLanguageModel:
    """A copy of the model with int8 weights in its LSTM/GRU and Linear layers (activations
    quantised on the fly), for CPU inference. A plain tanh/relu RNN layer stays in float, and
    so does a tied adaptive softmax, whose matrices are also the input word vectors."""
    if model.device.type != "cpu":
        raise ValueError("int8 quantisation runs on the CPU only; set NEXTWORD_DEVICE=cpu")
    with warnings.catch_warnings():
        # the path is deprecated, and says so at every layer it converts: see the docstring
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        layers: set[type[nn.Module]] = {nn.LSTM, nn.GRU, nn.Linear}
        if isinstance(model.embedding, AdaptiveInput):
            layers = {nn.LSTM, nn.GRU}
        quantized = quantize_dynamic(model, layers, dtype=torch.qint8)
    log.info("quantised %s to int8 (torch quantize_dynamic)", sorted(x.__name__ for x in layers))
    return quantized.eval()
