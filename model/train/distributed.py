"""Multi-process training with PyTorch's own DistributedDataParallel, started by torchrun
(gloo on CPUs, NCCL on GPUs). Outside torchrun everything here is a no-op for one process.

Every rank reads the same length-grouped batches and takes its own share of each batch's rows,
so all ranks run the same number of windows (and DDP all-reduces) per batch, whatever the
line lengths; decisions such as "out of time" are agreed by all ranks before anyone acts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from model.rnn import RNNLanguageModel


@dataclass(frozen=True)
class World:
    """This process's rank among world_size training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.size > 1

    def rows(self, count: int) -> slice | list[int]:
        """Which of a batch's `count` rows this rank trains on (every rank gets at least one)."""
        if count >= self.size:
            return slice(self.rank, None, self.size)
        return [self.rank % count]

    def agree(self, *flags: bool) -> list[bool]:
        """Each flag is true for all ranks when it is true for any (all-reduce MAX)."""
        if not self.distributed:
            return list(flags)
        values = torch.tensor([float(f) for f in flags])
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(v) for v in values]

    def total(self, *numbers: float) -> list[float]:
        """Each number summed over all ranks."""
        if not self.distributed:
            return list(numbers)
        values = torch.tensor(numbers, dtype=torch.float64)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values.tolist()

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has written the checkpoint)."""
        if self.distributed:
            dist.barrier()


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the torchrun process group when WORLD_SIZE > 1; returns the world and the device
    this rank uses (cuda:LOCAL_RANK on GPUs)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


class LossHead(nn.Module):
    """The language model with its loss in forward(), the shape DDP synchronises."""

    def __init__(self, model: RNNLanguageModel):
        super().__init__()
        self.model = model

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probabilities of the real targets, new state)."""
        features, state = self.model(inputs, state)
        return self.model.target_log_probs(features, targets), state


def wrap_for_training(model: RNNLanguageModel, world: World) -> nn.Module:
    """LossHead, inside DistributedDataParallel when there are several ranks."""
    head = LossHead(model)
    if not world.distributed:
        return head
    device_ids = [model.device.index] if model.device.type == "cuda" else None
    # a window whose targets miss an adaptive-softmax cluster leaves that cluster without grad
    return nn.parallel.DistributedDataParallel(
        head, device_ids=device_ids, find_unused_parameters=True
    )
