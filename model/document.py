"""Reading a split for evaluation in one of two contexts, keeping what a cache needs.

`line` (the benchmark's own reading, docs/data.md): every line from the start state, so a line's
figure does not depend on its neighbours. `document`: the split as ONE stream in file order, the
state carried across lines, because People's Daily lines are consecutive paragraphs of an
article and the previous paragraph says a lot about the next:

    inputs   <eos> l1 ... <eos> l2 ... <eos> l3 ...
    targets   l1 ... <eos>  l2 ... <eos>  l3 ... <eos>

Each line still ends with its <eos> target, so both contexts score exactly the same targets and
their perplexities compare. The stream is read as a batch of one in windows of bptt tokens.

A Reading keeps, per target in file order, the model's output feature (the cache's key) and
log-probability, and where a cache must start empty: at every line in the line context, once
in the document context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.batching import document_stream
from model.cache import CacheConfig, PointerCache, mix_log_probs
from model.inference import read_each_line
from model.rnn import RNNLanguageModel

CONTEXTS = ("line", "document")


@dataclass
class Reading:
    """A split as the model read it, one entry per target in file order."""

    features: torch.Tensor  # (N, D) float32: what the output layer read before each target
    log_probs: torch.Tensor  # (N,) float32: the model's log-probability of each target
    targets: torch.Tensor  # (N,)
    segment_starts: list[int]  # offsets where the context (and a cache) starts afresh

    def perplexity(self, log_probs: torch.Tensor | None = None) -> float:
        """exp of the mean negative log-likelihood of the model's (or the given) scores."""
        scores = self.log_probs if log_probs is None else log_probs
        return math.exp(-float(scores.double().mean()))


def line_starts(lines: Sequence[Sequence[int]]) -> list[int]:
    """Offset of each line's first target in the concatenated targets."""
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    return starts


@torch.inference_mode()
def read_document(
    model: RNNLanguageModel, lines: Sequence[Sequence[int]], eos_id: int, bptt: int = 256
) -> Reading:
    """Read the lines as one stream, carrying the state across windows and lines."""
    model.eval()
    inputs, targets = document_stream(lines, eos_id)
    features, scores, state = [], [], None
    for start in range(0, targets.numel(), bptt):
        window = inputs[start : start + bptt].to(model.device)[None]  # (1, T)
        output, state = model(window, state)
        wanted = targets[start : start + bptt].to(model.device)
        features.append(output[0].float().cpu())
        scores.append(model.target_log_probs(output[0], wanted).float().cpu())
    return Reading(torch.cat(features), torch.cat(scores), targets, [0])


@torch.inference_mode()
def read_lines(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    bptt: int = 256,
) -> Reading:
    """Read every line from the start state (as model.inference.score_lines does, so the
    scores are the same), keeping each target's feature."""
    per_line: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # line index → (features, scores)
    for index, scores, features in read_each_line(model, lines, eos_id, batch_size, bptt, True):
        per_line[index] = (features, scores)  # type: ignore[assignment]
    _, targets = document_stream(lines, eos_id)
    features = torch.cat([per_line[i][0] for i in range(len(lines))])
    scores = torch.cat([per_line[i][1] for i in range(len(lines))])
    return Reading(features, scores, targets, line_starts(lines))


def read_split(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    context: str,
    batch_size: int = 64,
    bptt: int = 256,
) -> Reading:
    """read_lines or read_document, as `context` says."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; choose one of {CONTEXTS}")
    if context == "document":
        return read_document(model, lines, eos_id, bptt)
    return read_lines(model, lines, eos_id, batch_size, bptt)


def cache_target_log_probs(
    reading: Reading, config: CacheConfig, unk_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_cache of every target (N,), whether its cache held a usable pair (N,)), one
    fresh cache per segment of the reading. Independent of lam, so the tuner mixes one result
    with every lambda of its grid."""
    bounds = [*reading.segment_starts, reading.targets.numel()]
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        cache = PointerCache(config, reading.features.size(1), unk_id)
        pieces.append(
            cache.target_log_probs(reading.features[start:stop], reading.targets[start:stop])
        )
    return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])


def score_with_cache(reading: Reading, config: CacheConfig, unk_id: int) -> torch.Tensor:
    """Every target's log-probability (N,) under the model mixed with a continuous cache."""
    cache_logp, seen = cache_target_log_probs(reading, config, unk_id)
    return mix_log_probs(reading.log_probs, cache_logp, seen, config.lam)
