"""RNNLanguageModel: embedding → stacked RNN/LSTM/GRU → output layer (full or adaptive softmax).

The recurrent state of a batch is one tensor of shape (S, L, B, H): S = 2 for an LSTM (h and c),
1 for the other cells; L layers, B rows, H hidden units. One tensor per batch lets the serving
engine pick, add and drop rows with plain indexing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from model.batching import IGNORE

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
OUTPUT_LAYERS = ("full", "adaptive")


@dataclass
class ModelConfig:
    """The constructor's arguments: saved in config.json to rebuild the network."""

    vocab_size: int
    cell: str = "lstm"
    embedding_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    dropout_embedding: float = 0.1  # on the embedding output
    dropout_hidden: float = 0.2  # between recurrent layers
    dropout_output: float = 0.2  # on the last layer's output
    tie_weights: bool = False  # full softmax only; projects hidden → embedding size if they differ
    output_layer: str = "adaptive"
    cutoffs: list[int] = field(default_factory=lambda: [2000, 10000])
    adaptive_div_value: float = 4.0

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {CELLS}")
        if self.output_layer not in OUTPUT_LAYERS:
            raise ValueError(f"unknown output layer {self.output_layer!r}; choose {OUTPUT_LAYERS}")
        if self.tie_weights and self.output_layer != "full":
            raise ValueError("weight tying needs the full softmax output layer")
        if self.output_layer == "adaptive":
            # cutoffs at or past the vocabulary are meaningless; a small vocabulary keeps fewer
            self.cutoffs = [c for c in self.cutoffs if 0 < c < self.vocab_size - 1]
            if not self.cutoffs or self.cutoffs != sorted(set(self.cutoffs)):
                raise ValueError(
                    f"adaptive softmax needs increasing cutoffs below the vocabulary size "
                    f"{self.vocab_size}; got {self.cutoffs}"
                )

    @property
    def state_slots(self) -> int:
        """S of the state tensor: 2 for an LSTM (h, c), else 1."""
        return 2 if self.cell == "lstm" else 1

    @property
    def feature_size(self) -> int:
        """Width of the vectors the output layer reads."""
        return self.embedding_size if self.tie_weights else self.hidden_size

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Rebuild from the JSON form; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}")
        return cls(**data)


def _recurrent_layer(config: ModelConfig) -> nn.RNNBase:
    """The stacked recurrent layer a config names."""
    common = dict(
        input_size=config.embedding_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        dropout=config.dropout_hidden if config.num_layers > 1 else 0.0,
        batch_first=True,
    )
    if config.cell == "lstm":
        return nn.LSTM(**common)
    if config.cell == "gru":
        return nn.GRU(**common)
    return nn.RNN(nonlinearity=config.cell.removeprefix("rnn_"), **common)


class RNNLanguageModel(nn.Module):
    """A word-level recurrent language model."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.dropout_embedding = nn.Dropout(config.dropout_embedding)
        self.rnn = _recurrent_layer(config)
        self.dropout_output = nn.Dropout(config.dropout_output)
        self.projection: nn.Linear | None = None
        self.decoder: nn.Linear | None = None
        self.adaptive: nn.AdaptiveLogSoftmaxWithLoss | None = None
        if config.tie_weights and config.hidden_size != config.embedding_size:
            self.projection = nn.Linear(config.hidden_size, config.embedding_size)
        if config.output_layer == "full":
            self.decoder = nn.Linear(config.feature_size, config.vocab_size)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight
        else:
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                config.feature_size, config.vocab_size, config.cutoffs, config.adaptive_div_value
            )
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if self.decoder is not None:
            nn.init.zeros_(self.decoder.bias)
            if not self.config.tie_weights:
                nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def init_state(self, batch_size: int) -> torch.Tensor:
        """The zero start state, shape (S, L, B, H)."""
        c = self.config
        weight = self.embedding.weight
        return weight.new_zeros(c.state_slots, c.num_layers, batch_size, c.hidden_size)

    def forward(
        self,
        tokens: torch.Tensor,
        state: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, D) for the output layer and the new state (S, L, B, H) after reading
        tokens (B, T) from state (zeros when None).

        With lengths (B,), row i reads only its first lengths[i] tokens (a packed sequence) and
        its new state is the one at that point; features past a row's length mean nothing.
        """
        if state is None:
            state = self.init_state(tokens.size(0))
        embedded = self.dropout_embedding(self.embedding(tokens))  # (B, T, E)
        inputs: torch.Tensor | PackedSequence = embedded
        if lengths is not None:
            inputs = pack_padded_sequence(
                embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
        if self.config.cell == "lstm":
            output, (h, c) = self.rnn(inputs, (state[0].contiguous(), state[1].contiguous()))
            new_state = torch.stack((h, c))
        else:
            output, h = self.rnn(inputs, state[0].contiguous())
            new_state = h.unsqueeze(0)
        if isinstance(output, PackedSequence):
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=tokens.size(1))
        features = self.dropout_output(output)  # (B, T, H)
        if self.projection is not None:
            features = self.projection(features)  # (B, T, E)
        return features, new_state

    def target_log_probs(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probability (N,) of each target that is not IGNORE, in reading order; padding
        costs no output-layer work at all."""
        mask = targets != IGNORE
        chosen, wanted = features[mask], targets[mask]  # (N, D), (N,)
        if self.adaptive is not None:
            # torch's adaptive softmax mixes its head's and tails' dtypes under autocast and
            # fails, so it runs in fp32 (the recurrent layers keep their bf16 speed)
            with torch.autocast(chosen.device.type, enabled=False):
                return self.adaptive(chosen.float(), wanted).output
        assert self.decoder is not None
        return -F.cross_entropy(self.decoder(chosen), wanted, reduction="none")

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """Exact log-probabilities over the whole vocabulary, (N, V) for features (N, D)."""
        if self.adaptive is not None:
            return self.adaptive.log_prob(features)
        assert self.decoder is not None
        return F.log_softmax(self.decoder(features), dim=-1)
