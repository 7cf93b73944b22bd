"""Dynamic evaluation (Krause, Kahembwe, Murray & Renals 2018, "Dynamic evaluation of neural
sequence models"): read the split as one document and let the model keep learning from what it
has already been scored on.

Segment by segment, in file order: score the segment with the current weights (the figure), then
take one SGD step on that same segment's loss and pull every weight a fraction `decay` back
toward the trained one (their "global prior", which keeps the adaptation local to the recent
text), carrying the recurrent state. A target is always scored before the model learns from it,
so nothing peeks ahead. An evaluation tool only: the checkpoint's weights are never changed,
the adapting copy lives in memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from model.rnn import RNNLanguageModel
from model.scoring import Reading, read_document


@dataclass(frozen=True)
class DynamicConfig:
    """Step size, pull back toward the trained weights, and tokens per update."""

    lr: float
    decay: float
    segment: int = 50

    def __post_init__(self) -> None:
        if not (self.lr >= 0 and math.isfinite(self.lr)):
            raise ValueError(f"dynamic lr must be a finite number ≥ 0, got {self.lr!r}")
        if not 0 <= self.decay <= 1:
            raise ValueError(f"dynamic decay must be in [0, 1], got {self.decay!r}")
        if self.segment < 1:
            raise ValueError(f"dynamic segment must be ≥ 1 token, got {self.segment!r}")

    def to_dict(self) -> dict:
        """Plain-JSON form (config.json keeps the tuned one under inference.dynamic)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DynamicConfig:
        """Rebuild from the JSON form; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown dynamic-evaluation settings {sorted(unknown)}")
        return cls(**data)


def read_document_dynamic(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    config: DynamicConfig,
) -> Reading:
    """scoring.read_document's Reading, in windows of config.segment tokens, by a copy of the
    model that takes adaptation_step after every segment; `model` itself is left untouched."""
    adapted = adapting_copy(model)
    return read_document(adapted, lines, eos_id, config.segment, adaptation_step(adapted, config))


def adapting_copy(model: RNNLanguageModel) -> RNNLanguageModel:
    """A copy of model that reads as in evaluation (no dropout anywhere) and can still learn.
    Its recurrent layer stays in training mode with its dropout at 0, which reads exactly as
    evaluation mode does: cuDNN's RNN has no backward pass outside training mode
    ("cudnn RNN backward can only be called in training mode"), so on CUDA the whole copy in
    eval() could not learn."""
    adapted = copy.deepcopy(model).eval()
    adapted.rnn.dropout = 0.0
    adapted.rnn.train()
    return adapted


def adaptation_step(
    model: RNNLanguageModel, config: DynamicConfig
) -> Callable[[torch.Tensor], None]:
    """The hook read_document calls with each segment's log-probabilities: one SGD step of
    config.lr on their mean negative log-likelihood, then every weight pulled a fraction
    config.decay back toward its value now (the trained one)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in parameters]

    def learn(log_probs: torch.Tensor) -> None:
        model.zero_grad(set_to_none=True)
        (-log_probs.mean()).backward()
        with torch.no_grad():
            for weight, original in zip(parameters, trained, strict=True):
                if weight.grad is not None:
                    weight.sub_(config.lr * weight.grad)
                weight.add_(original - weight, alpha=config.decay)

    return learn
