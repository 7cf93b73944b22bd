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

from model.rnn import RNNLanguageModel

log = logging.getLogger(__name__)


def quantize_int8(model: RNNLanguageModel) -> RNNLanguageModel:
    """A copy of the model with int8 weights in its LSTM/GRU and Linear layers (activations
    quantised on the fly), for CPU inference. A plain tanh/relu RNN layer stays in float."""
    if model.embedding.weight.device.type != "cpu":
        raise ValueError("int8 quantisation runs on the CPU only; set NEXTWORD_DEVICE=cpu")
    with warnings.catch_warnings():
        # the path is deprecated, and says so at every layer it converts: see the docstring
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
    log.info("quantised the recurrent and output layers to int8 (torch quantize_dynamic)")
    return quantized.eval()
