"""int8 weights (quantize "int8"): int8 recurrent and output layers whose scores never depend on
the batch.

What: every weight matrix of the recurrent layer and of the output layer is stored once as int8
with one scale per output channel; at run time each row of activations gets its own int8 scale,
and `torch._int_mm` multiplies the two with exact int32 accumulation. An integer sum has one
answer whatever the order of its terms, so a row's result is the same bit for bit alone or in a
batch of 32, and the nonlinearities around it are chosen to be row-exact too (`_sigmoid`). The
embedding stays float (a step reads one row of it).

Why this path: torch's `quantize_dynamic` (torch's old eager quantization) gives a whole batch
ONE activation scale, so a text's score moved with the other texts of its batch, and it is
deprecated. torchao's weight-only int8 covers nn.Linear only, and its CPU kernel
(`_weight_int8pack_mm`, fp32 activations) ran 5x (batch 1) to 30x (batch 32) slower than float
on 512 -> 2048. `_int_mm` beat float: 512 -> 2048 64 µs against 94 at batch 1, 175 against 571
at batch 32; 128 -> 25923 228 against 1484 at batch 1 (medians, 2-core AMD EPYC Zen 4 with
AVX-512 VNNI, torch 2.13).

Why weights reach ±63, not ±127: without VNNI (AVX2 and plain AVX-512 CPUs, many AMD and older
Intel servers) oneDNN multiplies u8 x s8 pairs into a saturating int16, which ±127 weights
overflow (wrong sums, measured with ONEDNN_MAX_CPU_ISA=AVX2); 7-bit weights keep every
pair within int16, so the sums are exact on every x86 ISA oneDNN offers (checked down to
SSE4.1). The default checkpoint's test perplexity moves by +0.02% (±127: +0.015%).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import torch
from torch import nn

from model.hardware import int8_matmul_missing
from model.rnn import AdaptiveInput, RNNLanguageModel

log = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("auto", "none", "int8")
WEIGHT_LIMIT = 63  # int8 weights in [-63, 63]: exact on CPUs without VNNI (module docstring)
ACTIVATION_LIMIT = 127
SMALLEST_RANGE = 1e-8  # the range given to an all-zero row or channel, so its scale is not 0


def served_weights(choice: str, device: str) -> str:
    """The weights served ("none" or "int8") for a quantize choice on a device: auto
    means int8 on a CPU whose int8 matmul is fast (model.hardware.int8_matmul_missing) and
    float elsewhere, since the int8 kernels are CPU ones and need an int8 dot product to win.
    An explicit int8 runs on any CPU: the same scores, at that CPU's speed."""
    on_cpu = torch.device(device).type == "cpu"
    if choice not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantize choice {choice!r}; choose one of {QUANTIZE_CHOICES}")
    if choice == "auto":
        return "int8" if on_cpu and int8_matmul_missing() is None else "none"
    if choice == "int8" and not on_cpu:
        raise ValueError(f"int8 weights run on the CPU only; choose none or auto for {device}")
    return choice


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights (one scale per output channel) and int8 activations (one
    scale per row), multiplied with exact integer sums: each row's output depends on that row
    alone, bit for bit."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        weight = weight.detach().float()  # (N, K)
        scale = weight.abs().amax(dim=1).clamp(min=SMALLEST_RANGE) / WEIGHT_LIMIT  # (N,)
        levels = torch.round(weight / scale[:, None]).clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT)
        self.in_features, self.out_features = weight.size(1), weight.size(0)
        self.weight_t: torch.Tensor
        # a fresh (K, N) tensor: .t().contiguous() keeps (1, 1) strides for K = 1 ((N, 1)
        # counts as contiguous), which _int_mm reads as a leading dimension of 1: wrong sums
        weight_t = torch.empty(weight.size(1), weight.size(0), dtype=torch.int8)
        self.register_buffer("weight_t", weight_t.copy_(levels.t()))  # (K, N)
        self.scale: torch.Tensor
        self.register_buffer("scale", scale)
        self.bias: torch.Tensor | None
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_float(cls, linear: nn.Linear) -> Int8Linear:
        """The int8 version of a float Linear."""
        return cls(linear.weight, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., K) float -> (..., N) float32."""
        flat = x.reshape(-1, self.in_features)  # (M, K)
        if flat.dtype != torch.float32:
            flat = flat.float()
        row_max = torch.linalg.vector_norm(flat, float("inf"), dim=1, keepdim=True)  # (M, 1)
        row_scale = row_max.clamp_(min=SMALLEST_RANGE).div_(ACTIVATION_LIMIT)
        # |flat / row_scale| <= 127 up to rounding, which round() brings back to 127
        levels = torch.round(flat / row_scale).to(torch.int8)
        sums = torch._int_mm(levels, self.weight_t).float()  # (M, N): exact int32 sums
        scales = row_scale * self.scale  # (M, N): each row's scale times each channel's
        out = sums.mul_(scales) if self.bias is None else torch.addcmul(self.bias, sums, scales)
        return out.view(*x.shape[:-1], self.out_features)


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    """The logistic function, built from ops whose result for an element does not depend on
    where it lies in the tensor: torch.sigmoid's vectorized body and scalar tail differ in the
    last bit, so its value for one row changed with the batch size (measured)."""
    return torch.exp(-x).add_(1).reciprocal_()


Step = Callable[[torch.Tensor, torch.Tensor, nn.Module], torch.Tensor]  # a cell's update


def _lstm_step(projected: torch.Tensor, state: torch.Tensor, hidden: nn.Module) -> torch.Tensor:
    """New (h, c) (2, B, H) from the input projection (B, 4H) and (h, c): gates i, f, g, o in
    PyTorch's order."""
    h, c = state
    gates = projected + hidden(h)  # (B, 4H)
    i, f, _, o = _sigmoid(gates).chunk(4, dim=1)  # one call over all four beats three
    c = f * c + i * torch.tanh(gates[:, 2 * c.size(1) : 3 * c.size(1)])
    return torch.stack((o * torch.tanh(c), c))


def _gru_step(projected: torch.Tensor, state: torch.Tensor, hidden: nn.Module) -> torch.Tensor:
    """New h (1, B, H) from the input projection (B, 3H) and h: gates r, z, n as PyTorch's GRU,
    n = tanh(x_n + r * (W_hn h + b_hn))."""
    h = state[0]
    from_input, from_hidden = projected.chunk(3, dim=1), hidden(h).chunk(3, dim=1)
    reset = _sigmoid(from_input[0] + from_hidden[0])
    update = _sigmoid(from_input[1] + from_hidden[1])
    candidate = torch.tanh(from_input[2] + reset * from_hidden[2])
    return ((1 - update) * candidate + update * h).unsqueeze(0)


def _tanh_step(projected: torch.Tensor, state: torch.Tensor, hidden: nn.Module) -> torch.Tensor:
    """New h (1, B, H) of a tanh RNN."""
    return torch.tanh(projected + hidden(state[0])).unsqueeze(0)


def _relu_step(projected: torch.Tensor, state: torch.Tensor, hidden: nn.Module) -> torch.Tensor:
    """New h (1, B, H) of a relu RNN."""
    return torch.relu(projected + hidden(state[0])).unsqueeze(0)


STEPS: dict[str, Step] = {
    "LSTM": _lstm_step,
    "GRU": _gru_step,
    "RNN_TANH": _tanh_step,
    "RNN_RELU": _relu_step,
}


class Int8Recurrent(nn.Module):
    """A stacked LSTM / GRU / tanh or relu RNN (batch first, eval only) on Int8Linear layers.

    torch's maintained int8 paths cover nn.Linear only, so each layer's step is written as a
    Linear over [x; h] split in two Int8Linears: the input part runs once over all T steps, the
    hidden part once a step, followed by the cell's update in float.
    """

    def __init__(self, mode: str, inputs: list[Int8Linear], hiddens: list[Int8Linear]):
        super().__init__()
        self.mode = mode
        self.input_layers = nn.ModuleList(inputs)
        self.hidden_layers = nn.ModuleList(hiddens)

    @classmethod
    def from_float(cls, rnn: nn.RNNBase) -> Int8Recurrent:
        """The int8 version of a float nn.LSTM, nn.GRU or nn.RNN (one direction, batch first,
        no LSTM projection)."""
        if rnn.bidirectional or not rnn.batch_first or rnn.proj_size or rnn.mode not in STEPS:
            raise ValueError(f"no int8 {rnn}: one direction, batch first, no LSTM projection")
        layers = range(rnn.num_layers)
        inputs = [
            Int8Linear(rnn.get_parameter(f"weight_ih_l{k}"), _bias(rnn, "ih", k)) for k in layers
        ]
        hiddens = [
            Int8Linear(rnn.get_parameter(f"weight_hh_l{k}"), _bias(rnn, "hh", k)) for k in layers
        ]
        return cls(rnn.mode, inputs, hiddens)

    def forward(
        self, embedded: torch.Tensor, state: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(output (B, T, H), new state (S, L, B, H)) after reading embedded (B, T, E) from state
        (S, L, B, H). With lengths (B,), row i reads its first lengths[i] steps only: its new
        state is the one at that point and its output past it is zeros, as a packed sequence."""
        steps = embedded.size(1)
        running = None  # (B, T): whether row b still reads at step t
        if lengths is not None:
            running = torch.arange(steps) < lengths.to("cpu", torch.long)[:, None]
        step = STEPS[self.mode]
        layer_input, new_state = embedded, []
        for layer, (inputs, hidden) in enumerate(
            zip(self.input_layers, self.hidden_layers, strict=True)
        ):
            projected = inputs(layer_input)  # (B, T, G*H), all steps at once
            layer_state, outputs = state[:, layer], []  # (S, B, H)
            for t in range(steps):
                updated = step(projected[:, t], layer_state, hidden)  # (S, B, H)
                if running is None:
                    layer_state = updated
                    outputs.append(updated[0])
                else:
                    layer_state = torch.where(running[:, t, None], updated, layer_state)
                    outputs.append(torch.where(running[:, t, None], updated[0], 0.0))
            layer_input = torch.stack(outputs, dim=1)  # (B, T, H)
            new_state.append(layer_state)
        return layer_input, torch.stack(new_state, dim=1)


def _bias(rnn: nn.RNNBase, kind: str, layer: int) -> torch.Tensor | None:
    """A layer's bias b_ih or b_hh, None when the layer was built without biases."""
    return rnn.get_parameter(f"bias_{kind}_l{layer}") if rnn.bias else None


def _with_int8_linears(module: nn.Module) -> nn.Module:
    """The module with every nn.Linear in it (itself included) replaced by an Int8Linear; the
    containers (adaptive softmax, Sequential) stay and call their new children as before."""
    if isinstance(module, nn.Linear):
        return Int8Linear.from_float(module)
    for name, child in module.named_children():
        setattr(module, name, _with_int8_linears(child))
    return module


def quantize_int8(model: RNNLanguageModel) -> RNNLanguageModel:
    """A copy of the model in eval mode, for CPU inference, with an Int8Recurrent layer and an
    int8 output layer; the embedding stays float, and so does a tied adaptive softmax, whose
    matrices are also the input word vectors. Every int8 tensor is built here, once."""
    if model.device.type != "cpu":
        raise ValueError("int8 quantisation runs on the CPU only; load the model onto the CPU")
    quantized = copy.deepcopy(model)
    # add_module, not `=`: RNNLanguageModel types its layers as the float ones it builds
    quantized.add_module("rnn", Int8Recurrent.from_float(quantized.rnn))
    names = ["projection"]
    if not isinstance(quantized.embedding, AdaptiveInput):
        names += ["decoder", "adaptive"]
    output_layers = [name for name in names if getattr(quantized, name) is not None]
    for name in output_layers:
        quantized.add_module(name, _with_int8_linears(getattr(quantized, name)))
    log.info("quantised the recurrent layer and %s to int8", output_layers)
    return quantized.eval()  # the new layers too


def weight_bytes(model: RNNLanguageModel) -> int:
    """Bytes of the weights one full-distribution decode step reads as served: every tensor of
    the recurrent and output layers (int8 weights 1 byte, scales, biases and float weights 4),
    not the input embedding, of which a step reads one row. Over memory bandwidth: a floor on a
    step's time."""
    layers = [model.rnn, model.projection, model.decoder, model.adaptive]
    tensors = {
        id(tensor): tensor
        for layer in layers
        if layer is not None
        for tensor in (*layer.parameters(), *layer.buffers())
    }
    return sum(t.numel() * t.element_size() for t in tensors.values())
