"""Reading a split for evaluation in one of two contexts, keeping what a cache needs.

`line` (the benchmark's own reading, docs/data.md): every line from the start state, so a line's
figure does not depend on its neighbours. `document`: the split as ONE stream in file order, the
state carried across lines, because People's Daily lines are consecutive paragraphs of an
article and the previous paragraph says a lot about the next:

    inputs   <eos> l1 ... <eos> l2 ... <eos> l3 ...
    targets   l1 ... <eos>  l2 ... <eos>  l3 ... <eos>

Each line still ends with its <eos> target, so both contexts score exactly the same targets and
their perplexities compare. The stream is read as a batch of one in windows of `window` tokens
(the window changes memory and speed, never the figure). Dynamic evaluation is the document
reading with a hook that lets the model learn from each window after scoring it
(model/evaluate/dynamic.py).

A Reading keeps, per target in file order, the model's output feature (the cache's key) and
log-probability, and where a cache must start empty: at every line in the line context, once
in the document context. Every perplexity, here and in training, the tools and the service, is
`perplexity` of a mean negative log-likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from model.allocator import release_free_memory
from model.batching import document_stream, line_lengths, make_batches, stream_reader
from model.pointer_cache import CacheConfig, PointerCache, mix_log_probs
from model.rnn import IGNORE, RNNLanguageModel

CONTEXTS = ("line", "document")  # the two readings of a split; config.json names one
READ_POSITIONS = 4096  # rows × steps one forward pass of read_each_line reads at most


def perplexity(mean_nll: float) -> float:
    """exp of the mean negative log-likelihood per target (in nats): the one formula behind
    every perplexity nextword reports."""
    return math.exp(mean_nll)


def log_likelihood(scores: Sequence[torch.Tensor]) -> tuple[float, int]:
    """(summed log-probability in float64, number of targets) of per-line scores: the two
    numbers that pool, over lines or over training processes, before `perplexity`."""
    total = sum(float(s.double().sum()) for s in scores)
    return total, sum(int(s.numel()) for s in scores)


@torch.inference_mode()
def read_each_line(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    window: int = 256,
    keep_features: bool = False,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """(line index, log-probability of each of its targets (T,), and with keep_features the
    output feature before each target (T, D) float32) for every line, each read from the start
    state in length-grouped batches, `window` steps a forward pass, fewer when the batch is wide:
    a pass reads at most READ_POSITIONS positions, so the memory of one pass (the LSTM holds
    four gates a position) is the same for 64 long lines as for a few; the state carries across
    passes, so the scores do not change. Lines come in batch order, not the order given."""
    model.eval()
    device = model.device
    for batch in make_batches(lines, eos_id, batch_size):
        state = None
        scores, outputs = [], []
        steps = max(1, min(window, READ_POSITIONS // batch.inputs.size(0)))
        for inputs, targets in batch.windows(steps):
            features, state = model(inputs.to(device), state)
            window_scores = torch.full(targets.shape, float("nan"))
            window_scores[targets != IGNORE] = (
                model.target_log_probs(features, targets.to(device)).float().cpu()
            )
            scores.append(window_scores)
            if keep_features:
                outputs.append(features.float().cpu())
        row_scores = torch.cat(scores, dim=1)  # (B, T), NaN on padding
        row_features = torch.cat(outputs, dim=1) if keep_features else None
        for row, index in enumerate(batch.rows):
            length = len(lines[index]) + 1
            kept = row_features[row, :length] if row_features is not None else None
            yield index, row_scores[row, :length].clone(), kept
        del scores, outputs, row_scores, row_features
        release_free_memory()  # batches differ in shape: without it the heap creeps per batch


def score_lines(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    window: int = 256,
) -> list[torch.Tensor]:
    """Log-probability of every target of every line (its tokens, then <eos>), each line read
    from the start state, in the order given. Independent of batch_size by construction."""
    scores: list[torch.Tensor] = [torch.empty(0)] * len(lines)
    for index, line_scores, _ in read_each_line(model, lines, eos_id, batch_size, window):
        scores[index] = line_scores
    return scores


def lines_log_likelihood(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    window: int = 256,
) -> tuple[float, int]:
    """log_likelihood of score_lines' scores, summed as the lines are read, so that scoring a
    split of any size keeps one batch in memory and not a tensor per line."""
    total, count = 0.0, 0
    for _, line_scores, _ in read_each_line(model, lines, eos_id, batch_size, window):
        total += float(line_scores.double().sum())
        count += int(line_scores.numel())
    return total, count


def perplexity_of(line_scores: Sequence[torch.Tensor]) -> tuple[float, int]:
    """(perplexity, number of targets) of per-line log-probabilities, pooled over all lines."""
    total, count = log_likelihood(line_scores)
    return perplexity(-total / max(count, 1)), count


@dataclass
class Reading:
    """A split as the model read it, one entry per target in file order."""

    features: torch.Tensor  # (N, D) float32: what the output layer read before each target
    log_probs: torch.Tensor  # (N,) float32: the model's log-probability of each target
    targets: torch.Tensor  # (N,)
    segment_starts: list[int]  # offsets where the context (and a cache) starts afresh

    def perplexity(self, log_probs: torch.Tensor | None = None) -> float:
        """Perplexity of the model's scores (or of the given ones, e.g. mixed with a cache)."""
        return perplexity_of([self.log_probs if log_probs is None else log_probs])[0]


def line_starts(lines: Sequence[Sequence[int]]) -> list[int]:
    """Offset of each line's first target in the concatenated targets."""
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    return starts


def read_document(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    window: int = 256,
    learn: Callable[[torch.Tensor], None] | None = None,
    keep_features: bool = True,
) -> Reading:
    """Read the lines as one stream, `window` tokens a forward pass, carrying the state across
    windows and lines; the stream is read from the lines a window at a time. With `learn`
    (dynamic evaluation), learn(the window's log-probabilities, graph attached) runs after each
    window is scored, so a target is always scored before the model learns from it, and the
    state is detached there; without it, inference mode in the model's evaluation mode (with
    it, the caller's model is set up to learn without dropout). keep_features=False keeps only
    the scores (a perplexity needs no cache keys): the Reading's features are then empty."""
    if learn is None:
        model.eval()
    read = stream_reader(lines, eos_id)
    total = sum(line_lengths(lines)) + len(lines)
    features, scores, targets, state = [], [], [], None
    previous = torch.tensor([eos_id])  # the stream starts as a line does, after an <eos>
    with torch.inference_mode(learn is None):
        for start in range(0, total, window):
            wanted = read(start, min(start + window, total))
            tokens = torch.cat((previous, wanted[:-1]))[None].to(model.device)  # (1, T)
            previous = wanted[-1:]
            output, state = model(tokens, state)
            log_probs = model.target_log_probs(output[0], wanted.to(model.device))  # (T,)
            if keep_features:
                features.append(output[0].detach().float().cpu())
            scores.append(log_probs.detach().float().cpu())
            targets.append(wanted)
            if learn is not None:
                learn(log_probs)
                state = state.detach()  # truncated: the next window does not backprop here
    kept = torch.cat(features) if features else torch.empty(0, 0)
    every = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    return Reading(kept, torch.cat(scores) if scores else torch.empty(0), every, [0])


@torch.inference_mode()
def read_lines(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    window: int = 256,
) -> Reading:
    """Read every line from the start state (as score_lines does, so the scores are the same),
    keeping each target's feature."""
    per_line: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # line index → (features, scores)
    for index, scores, features in read_each_line(model, lines, eos_id, batch_size, window, True):
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
    window: int = 256,
) -> Reading:
    """read_lines or read_document, as `context` says."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; choose one of {CONTEXTS}")
    if context == "document":
        return read_document(model, lines, eos_id, window)
    return read_lines(model, lines, eos_id, batch_size, window)


def cache_target_log_probs(
    reading: Reading, config: CacheConfig, unk_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_cache of every target (N,), how many usable pairs its cache held (N,)), one
    fresh cache per segment of the reading. Independent of lam and half_fill, so the tuner
    mixes one result with every weight of its grid."""
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
    cache_logp, usable = cache_target_log_probs(reading, config, unk_id)
    return mix_log_probs(reading.log_probs, cache_logp, usable, config)


def chunk_target_log_probs(
    model: RNNLanguageModel, features: torch.Tensor, targets: Sequence[Sequence[int]]
) -> list[torch.Tensor]:
    """Log-probability (on the CPU, float) of each row's targets, from the features (B, T, D)
    of a ragged batched forward (model.runner.forward_rows): row i's targets[i] follow the
    tokens its chunk read; one output-layer call for all rows. The service's score rows."""
    padded = torch.full((len(targets), features.size(1)), IGNORE, dtype=torch.long)
    for row, row_targets in enumerate(targets):
        padded[row, : len(row_targets)] = torch.as_tensor(row_targets, dtype=torch.long)
    values = model.target_log_probs(features, padded.to(features.device))
    return list(values.float().cpu().split([len(t) for t in targets]))
