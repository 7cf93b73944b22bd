"""Averaging of weights late in training (Polyak averaging, as in SWA and AWD-LSTM's ASGD):
the mean of the weights after every optimizer step from some point on, often a better model
than the last weights because it smooths the noise of the final steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """A running mean of a model's parameters over the steps it has been updated with."""

    def __init__(self, model: nn.Module, count: int = 0, means: list[torch.Tensor] | None = None):
        self.parameters = list(model.parameters())
        self.count = count
        self.means = means or [p.detach().float().clone() for p in self.parameters]

    def update(self) -> None:
        """Fold the parameters' current values into the mean."""
        self.count += 1
        current = [p.detach().float() for p in self.parameters]
        torch._foreach_lerp_(self.means, current, 1.0 / self.count)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; its own come back after."""
        live = [p.detach().clone() for p in self.parameters]
        with torch.no_grad():
            for parameter, mean in zip(self.parameters, self.means, strict=True):
                parameter.copy_(mean)
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, saved in zip(self.parameters, live, strict=True):
                    parameter.copy_(saved)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The means by position, for a resumable snapshot (the count goes in its JSON)."""
        return {f"average.{i}": mean for i, mean in enumerate(self.means)}

    @classmethod
    def from_tensors(
        cls, model: nn.Module, tensors: dict[str, torch.Tensor], count: int
    ) -> WeightAverage:
        """Rebuild the average a snapshot saved with tensors()."""
        means = [tensors[f"average.{i}"] for i in range(len(list(model.parameters())))]
        return cls(model, count, means)
