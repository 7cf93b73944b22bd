"""How a generation samples and when it stops (SamplingOptions, the one options type of the CLI,
the engine and every request schema), and choosing the next token of every row of a batch at
once (temperature, top-k, top-p, repetition penalty, each row seeded by its own generator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingOptions:
    """How one generation samples and when it stops. temperature 0 means greedy; top_k None
    and top_p 1 are off; seed None lets the engine draw one (and report it); ignore_eos never
    produces <eos>, so the text ends on max_new_tokens or a stop string; top_logprobs: how many
    of the most probable tokens to report at each generated token; cache True mixes in the
    checkpoint's cache pointer (the text's own recent words), where it has one. It is off
    unless asked: sampling from the mixture feeds each drawn word back to the cache, and the
    text repeats itself (python -m bench.repetition: on the default checkpoint, 40-token samples
    repeated 32.5% of their character pairs with it, 10.6% without; People's Daily 5.0%)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 30
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    top_logprobs: int = 0
    cache: bool = False  # mix in the checkpoint's cache pointer, where it has one

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError("temperature must be >= 0")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be >= 1 or None")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not self.repetition_penalty > 0:
            raise ValueError("repetition_penalty must be > 0")
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")

    @property
    def truncates(self) -> bool:
        """Whether top-k or top-p cut the distribution."""
        return self.top_k is not None or self.top_p < 1.0


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded for one request: its draws depend on nothing else in the batch."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _apply_repetition_penalty(
    scores: torch.Tensor,
    rows: Sequence[int],
    penalties: Sequence[float],
    history: Sequence[Sequence[int]],
) -> None:
    """CTRL-style penalty in place: a seen token's log-probability (≤ 0) is multiplied by the
    penalty, so penalty > 1 makes repeats less likely."""
    for row, penalty in zip(rows, penalties, strict=True):
        if history[row]:
            seen = torch.as_tensor(sorted(set(history[row])), dtype=torch.long)
            scores[row, seen] = scores[row, seen] * penalty


def _sample_sorted(
    sorted_scores: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, uniforms: torch.Tensor
) -> torch.Tensor:
    """Positions drawn from descending scores (R, K) after per-row top-k and top-p cuts."""
    positions = torch.arange(sorted_scores.size(1))
    probs = torch.softmax(sorted_scores, dim=-1)
    probs = probs.masked_fill(positions >= top_k[:, None], 0.0)
    before = probs.cumsum(-1) - probs  # mass of the better candidates
    probs = probs.masked_fill((before >= top_p[:, None]) & (positions > 0), 0.0)
    return _inverse_cdf(probs, uniforms)


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """For each row, the index where the cumulative (unnormalised) mass passes u · total."""
    cumulative = probs.cumsum(-1)
    targets = uniforms * cumulative[:, -1]
    chosen = torch.searchsorted(cumulative, targets[:, None], right=True).squeeze(1)
    return chosen.clamp_(max=probs.size(1) - 1)


_FIRST_CANDIDATES = 256  # top-p rows try this many candidates before paying for a full sort


def _truncated_choice(
    scaled: torch.Tensor, params: Sequence[SamplingOptions], uniforms: torch.Tensor
) -> torch.Tensor:
    """Token ids drawn from scaled scores (R, V) under each row's top-k / top-p cut.

    A full sort of a 36k vocabulary costs about 1 ms a row here, so candidates come from a
    top-k of at most _FIRST_CANDIDATES; only rows whose top-p mass is not reached within them
    (and that have no smaller top_k) are sorted whole.
    """
    vocab_size = scaled.size(1)
    top_k = torch.tensor([p.top_k or vocab_size for p in params])
    top_p = torch.tensor([p.top_p for p in params])
    largest_k = int(top_k.max())
    if largest_k <= _FIRST_CANDIDATES:  # every row has a small top_k: no coverage check needed
        values, ids = scaled.topk(largest_k, dim=-1)
        picked = _sample_sorted(values, top_k, top_p, uniforms)
        return ids.gather(1, picked[:, None]).squeeze(1)
    width = min(vocab_size, max(_FIRST_CANDIDATES, int(top_k.clamp(max=vocab_size).max())))
    values, ids = scaled.topk(width, dim=-1)
    mass = (
        torch.softmax(values, -1) * torch.exp(values.logsumexp(-1) - scaled.logsumexp(-1))[:, None]
    )
    covered = (top_k <= width) | (mass.cumsum(-1)[:, -1] >= top_p)
    chosen = torch.empty(len(params), dtype=torch.long)
    if bool(covered.any()):
        rows = covered.nonzero().squeeze(1)
        picked = _sample_sorted(values[rows], top_k[rows], top_p[rows], uniforms[rows])
        chosen[rows] = ids[rows].gather(1, picked[:, None]).squeeze(1)
    if not bool(covered.all()):
        rows = (~covered).nonzero().squeeze(1)
        values, ids = scaled[rows].sort(dim=-1, descending=True)
        picked = _sample_sorted(values, top_k[rows], top_p[rows], uniforms[rows])
        chosen[rows] = ids.gather(1, picked[:, None]).squeeze(1)
    return chosen


def sample_rows(
    log_probs: torch.Tensor,
    params: Sequence[SamplingOptions],
    generators: Sequence[torch.Generator],
    history: Sequence[Sequence[int]],
    banned: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token id of every row of log_probs (B, V) and its model log-probability.

    Each row follows its own params and draws one uniform from its own generator, so a seeded
    request gets the same tokens whatever else shares the batch. Banned ids (<unk>) are never
    chosen.
    """
    # Every full (B, V) pass costs about 0.5 ms at B = 32 here, as much as a fifth of the
    # network's step, so the common cases (all rows plain sampling) make only four of them.
    temperatures = torch.tensor([p.temperature for p in params])
    scores = log_probs.detach().float() / temperatures.clamp(min=1e-6)[:, None]  # (B, V), new
    if banned:
        scores[:, list(banned)] = float("-inf")
    penalised = [i for i, p in enumerate(params) if p.repetition_penalty != 1.0]
    if penalised:  # (lp * penalty) / T == (lp / T) * penalty
        _apply_repetition_penalty(
            scores, penalised, [params[i].repetition_penalty for i in penalised], history
        )
    uniforms = torch.cat([torch.rand(1, generator=g) for g in generators])  # (B,)
    chosen = torch.empty(len(params), dtype=torch.long)
    kinds = [
        "greedy" if p.temperature == 0 else "truncating" if p.truncates else "plain" for p in params
    ]
    for kind in ("greedy", "plain", "truncating"):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if not rows:
            continue
        every_row = len(rows) == len(params)
        picked_scores = scores if every_row else scores[rows]
        if kind == "greedy":
            picked = picked_scores.argmax(dim=-1)
        elif kind == "plain":
            picked = _inverse_cdf(torch.softmax(picked_scores, dim=-1), uniforms[rows])
        else:
            picked = _truncated_choice(picked_scores, [params[i] for i in rows], uniforms[rows])
        if every_row:
            chosen = picked
        else:
            chosen[rows] = picked
    return chosen, log_probs.gather(1, chosen[:, None]).squeeze(1)
