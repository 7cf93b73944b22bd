"""RNNLanguageModel: embedding → stacked RNN/LSTM/GRU → output layer (full or adaptive softmax).

The recurrent state of a batch is one tensor of shape (S, L, B, H): S = 2 for an LSTM (h and c),
1 for the other cells; L layers, B rows, H hidden units. One tensor per batch lets the serving
engine pick, add and drop rows with plain indexing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

IGNORE = -100  # target id of padding: skipped by the loss and by target_log_probs


CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
OUTPUT_LAYERS = ("full", "adaptive")
# positions the output layer scores in one call: a training step's tokens fit in one, an
# evaluation batch (64 lines × 256 steps) is read in several, so its memory does not depend on
# how densely the corpus fills the batch
OUTPUT_CHUNK = 2048


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
    # share input and output word vectors (projecting hidden → embedding size if they differ);
    # with the adaptive softmax the input side becomes an AdaptiveInput over its weights
    tie_weights: bool = False
    output_layer: str = "adaptive"
    cutoffs: list[int] = field(default_factory=lambda: [2000, 10000])
    adaptive_div_value: float = 4.0
    variational_dropout: bool = False  # one embedding/output dropout mask per row, all steps
    dropout_words: float = 0.0  # drop whole word types from the input (same word, same fate)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {CELLS}")
        if self.output_layer not in OUTPUT_LAYERS:
            raise ValueError(f"unknown output layer {self.output_layer!r}; choose {OUTPUT_LAYERS}")
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


class AdaptiveInput(nn.Module):
    """Input word vectors read from an adaptive softmax's own weights (tied adaptive input and
    output, Baevski & Auli 2019): a shortlist word reads its row of the head; a word of tail
    cluster i reads its row of the tail's output matrix (width D / div^(i+1)) and is projected
    back to D by the transpose of the tail's first matrix. No parameters of its own."""

    def __init__(self, softmax: nn.AdaptiveLogSoftmaxWithLoss):
        super().__init__()
        self._softmax = [softmax]  # a list: registered once, by the model, not twice

    @property
    def weight(self) -> torch.Tensor:
        """The head's matrix: gives the device and dtype, like nn.Embedding.weight."""
        return self._softmax[0].head.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vectors (B, T, D) of tokens (B, T)."""
        softmax = self._softmax[0]
        flat = tokens.reshape(-1)  # (N,)
        bounds = [0, *softmax.cutoffs]  # cutoffs end with the vocabulary size
        vectors = F.embedding(flat.clamp(max=bounds[1] - 1), softmax.head.weight)  # (N, D)
        for cluster, tail in enumerate(softmax.tail):
            low, high = bounds[cluster + 1], bounds[cluster + 2]
            rows = ((flat >= low) & (flat < high)).nonzero().squeeze(1)
            if rows.numel():
                # tail = Linear(D, D / div^(i+1)), Linear(D / div^(i+1), cluster size)
                down, out = (cast(nn.Linear, layer) for layer in cast(nn.Sequential, tail))
                narrow = F.embedding(flat[rows] - low, out.weight)  # (n, D / div^(i+1))
                vectors = vectors.index_copy(0, rows, (narrow @ down.weight).to(vectors.dtype))
        return vectors.view(*tokens.shape, -1)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout on (B, T, D): one mask per row, the same at every step (Gal &
    Ghahramani 2016), so a unit is either there for the whole window or not at all."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


def word_dropout(tokens: torch.Tensor, embedded: torch.Tensor, p: float) -> torch.Tensor:
    """Zero every occurrence of a random p of the word types in the window (embedding dropout
    of Gal & Ghahramani, as in AWD-LSTM), scaling the rest by 1 / (1 - p)."""
    kept = torch.rand(int(tokens.max()) + 1, device=tokens.device) >= p
    return embedded * (kept[tokens].unsqueeze(-1).to(embedded.dtype) / (1 - p))


class RNNLanguageModel(nn.Module):
    """A word-level recurrent language model."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding: nn.Embedding | AdaptiveInput
        self.dropout_embedding = nn.Dropout(config.dropout_embedding)
        self.rnn = _recurrent_layer(config)  # quantize_int8 puts an Int8Recurrent in its place
        self.dropout_output = nn.Dropout(config.dropout_output)
        self.projection: nn.Linear | None = None
        self.decoder: nn.Linear | None = None
        self.adaptive: nn.AdaptiveLogSoftmaxWithLoss | None = None
        if config.tie_weights and config.hidden_size != config.embedding_size:
            self.projection = nn.Linear(config.hidden_size, config.embedding_size)
        if config.output_layer == "full":
            self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
            self.decoder = nn.Linear(config.feature_size, config.vocab_size)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight
        else:
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                config.feature_size, config.vocab_size, config.cutoffs, config.adaptive_div_value
            )
            tied = config.tie_weights
            self.embedding = (
                AdaptiveInput(self.adaptive)
                if tied
                else nn.Embedding(config.vocab_size, config.embedding_size)
            )
        self._init_weights()

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return self.embedding.weight.device

    def _init_weights(self) -> None:
        if isinstance(self.embedding, nn.Embedding):
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if self.decoder is not None:
            nn.init.zeros_(self.decoder.bias)
            if not self.config.tie_weights:
                nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input vectors (B, T, E) of tokens (B, T), with the configured input dropouts."""
        c = self.config
        embedded = self.embedding(tokens)
        if self.training and c.dropout_words:
            embedded = word_dropout(tokens, embedded, c.dropout_words)
        if c.variational_dropout:
            return locked_dropout(embedded, c.dropout_embedding, self.training)
        return self.dropout_embedding(embedded)

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
        embedded = self.embed(tokens)  # (B, T, E)
        if isinstance(self.rnn, nn.RNNBase):
            output, new_state = self._read(embedded, state, lengths)
        else:  # an Int8Recurrent takes the state and lengths as they are
            output, new_state = self.rnn(embedded, state, lengths)
        if self.config.variational_dropout:
            features = locked_dropout(output, self.config.dropout_output, self.training)
        else:
            features = self.dropout_output(output)  # (B, T, H)
        if self.projection is not None:
            features = self.projection(features)  # (B, T, E)
        return features, new_state

    def _read(
        self, embedded: torch.Tensor, state: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The float recurrent layer's output (B, T, H), zeros past each row's length, and new
        state (S, L, B, H), through torch's packed sequences."""
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
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=embedded.size(1))
        return output, new_state

    def target_log_probs(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probability (N,) of each target that is not IGNORE, in reading order; padding
        costs no output-layer work at all."""
        mask = targets != IGNORE
        chosen, wanted = features[mask], targets[mask]  # (N, D), (N,)
        if chosen.size(0) <= OUTPUT_CHUNK:
            return self._output_log_probs(chosen, wanted)
        # a dense evaluation batch has tens of thousands of positions; the output layer's
        # (positions × head or cluster) logits are read a chunk at a time so that memory stays
        # the same whatever the batch holds, and the corpus size with it
        pieces = zip(chosen.split(OUTPUT_CHUNK), wanted.split(OUTPUT_CHUNK), strict=True)
        return torch.cat([self._output_log_probs(c, w) for c, w in pieces])

    def _output_log_probs(self, chosen: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        """Log-probability (N,) of each wanted word from the features (N, D) before it."""
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
