"""A continuous cache pointer (Grave, Joulin & Usunier 2017, "Improving neural language models
with a continuous cache"): the model's own recent output features, each stored with the word
that followed it, vote for the next word.

    p_cache(w | h_t) ∝ Σ_{i : x_{i+1} = w} exp(theta · h_t · h_i)     over the last W pairs
    p(w) = (1 - λ(n)) · p_model(w) + λ(n) · p_cache(w),     λ(n) = lam · n / (n + half_fill)
                                                             (0 while n < min_fill)

An article that names a rare word once tends to name it again; the cache gives the repeat the
probability the model alone cannot. The weight follows the n usable pairs the cache holds: a
cache that has read one word would otherwise hand that word all of lam (a one-word request's
own word predicted as its successor), while a full one earns nearly all of it. half_fill 0 is
the paper's constant lam (what a checkpoint tuned before the gate records, by omission).
Below min_fill pairs the cache stays silent: a text too short to have repeated a word yet
keeps the model's own distribution (a repeat in a short text is rare, and every word that is
not one pays log(1 - λ)); min_fill 0 or 1 lets it speak from its first pair.
No training: only W, theta, lam and half_fill are chosen, on the valid split
(`python -m model.evaluate.tune_cache`). Everything is computed in log space in float32.
An empty cache (a line's first token) leaves the model's distribution exactly as it is.

One PointerCache serves one stream (one batch row of the service, or the whole split read as a
document); `mix_rows` mixes a batch of rows, each with its own cache, in one batched pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

NEG_INF = float("-inf")
_QUERY_CHUNK = 512  # score_targets scores at most this many positions per (chunk, memory) matmul


@dataclass(frozen=True)
class CacheConfig:
    """The cache's four numbers, and whether <unk> counts as a word the cache can recall."""

    window: int  # W: the last W (feature, next word) pairs are kept
    theta: float  # flatness: scores are exp(theta · h_t · h_i)
    lam: float  # interpolation weight of a cache that holds many pairs, in [0, 1)
    # False: <unk> entries never vote, so an <unk> target gets only (1 - lam) p_model(<unk>);
    # True: they vote like any word (repeated <unk>s are easy to predict, which flatters the
    # figure without helping anyone who reads the words)
    unk_takes_mass: bool = False
    # the usable pairs held at which the weight is lam / 2 (λ(n) = lam · n / (n + half_fill));
    # 0: lam from the first pair on, as every checkpoint tuned before 2026-12-06 records
    half_fill: float = 0.0
    # the usable pairs the cache must hold before it speaks at all; 0 (as every checkpoint
    # tuned before 2026-12-07 records, by omission) and 1 mean from its first pair
    min_fill: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
            raise ValueError(f"cache window must be a whole number ≥ 1, got {self.window!r}")
        if not self.theta >= 0 or math.isinf(self.theta):
            raise ValueError(f"cache theta must be a finite number ≥ 0, got {self.theta!r}")
        if not 0 <= self.lam < 1:
            raise ValueError(f"cache lambda must be in [0, 1), got {self.lam!r}")
        if not self.half_fill >= 0 or math.isinf(self.half_fill):
            raise ValueError(
                f"cache half_fill must be a finite number ≥ 0 (pairs held at half the weight; "
                f"0 for a constant weight), got {self.half_fill!r}"
            )
        if (
            not isinstance(self.min_fill, int)
            or isinstance(self.min_fill, bool)
            or self.min_fill < 0
        ):
            raise ValueError(
                f"cache min_fill must be a whole number ≥ 0 (pairs held before the cache "
                f"speaks), got {self.min_fill!r}"
            )

    def weight(self, held: torch.Tensor) -> torch.Tensor:
        """The interpolation weight (float64, held's shape) of caches of these settings holding
        `held` usable pairs (fill_weight)."""
        return fill_weight(self.lam, self.half_fill, held, self.min_fill)

    def max_bytes(self, feature_size: int) -> int:
        """The most memory one full cache takes: W pairs of a float32 feature (D,), the word
        that followed (int64) and its float32 vote bias, W × (4 D + 12) bytes."""
        return self.window * (4 * feature_size + 12)

    def to_dict(self) -> dict:
        """Plain-JSON form (the checkpoint's config.json keeps it under inference.cache)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CacheConfig:
        """Rebuild from the JSON form; unknown or missing keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown cache settings {sorted(unknown)}")
        return cls(**data)


def fill_weight(
    lam: float | torch.Tensor,
    half_fill: float | torch.Tensor,
    held: torch.Tensor,
    min_fill: int | torch.Tensor = 0,
) -> torch.Tensor:
    """λ(n) = lam · n / (n + half_fill) (float64) for caches holding n = held usable pairs, and
    0 while n < min_fill; lam, half_fill and min_fill scalars or tensors of held's shape: 0 for
    an empty cache, exactly lam for every n > 0 when half_fill and min_fill are 0. The one home
    of the weight: the service's rows and the offline scoring both mix with it."""
    held = held.double()
    speaks = (held > 0) & (held >= min_fill)
    return torch.where(speaks, lam * (held / (held + half_fill)), 0.0)


class PointerCache:
    """One stream's cache: a bounded window of (feature vector, the word that followed).

    The pairs live in a ring buffer that grows by doubling up to W rows, so memory is bounded
    by W and a short stream pays only for what it stored."""

    def __init__(self, config: CacheConfig, feature_size: int, unk_id: int):
        self.config = config
        self.feature_size = feature_size
        self.unk_id = unk_id
        self._keys = torch.empty(0, feature_size)  # (capacity, D) float32
        self._values = torch.empty(0, dtype=torch.long)  # (capacity,)
        self._bias = torch.empty(0)  # (capacity,) 0 where a pair may vote, -inf where not
        self._count = 0  # pairs held, ≤ W; slots [0, count) are valid
        self._next = 0  # ring slot of the next write

    def __len__(self) -> int:
        return self._count

    def clear(self) -> None:
        """Forget every pair (a new stream starts), keeping the buffers for reuse."""
        self._count = 0
        self._next = 0

    @property
    def nbytes(self) -> int:
        """Bytes the buffers take (at most config.max_bytes(D))."""
        return self._keys.nbytes + self._values.nbytes + self._bias.nbytes

    def _usable(self, values: torch.Tensor) -> torch.Tensor:
        """Which stored pairs may vote (all, or all but <unk>)."""
        if self.config.unk_takes_mass:
            return torch.ones_like(values, dtype=torch.bool)
        return values != self.unk_id

    def _vote_bias(self, values: torch.Tensor) -> torch.Tensor:
        """0 where a pair with these words may vote, -inf where not: added to its score."""
        return torch.zeros(values.shape, device=values.device).masked_fill_(
            ~self._usable(values), NEG_INF
        )

    def _ordered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held pairs, oldest first: keys (n, D), values (n,)."""
        if self._count < self._keys.size(0):
            return self._keys[: self._count], self._values[: self._count]
        order = torch.cat((self._keys[self._next :], self._keys[: self._next]))
        return order, torch.cat((self._values[self._next :], self._values[: self._next]))

    def _grow(self, needed: int, device: torch.device) -> None:
        """Make room for `needed` more pairs (up to W), keeping the held ones oldest first."""
        capacity = self._keys.size(0)
        window = self.config.window
        if capacity >= window or self._count + needed <= capacity:
            return
        keys, values = self._ordered()
        new_capacity = min(window, max(self._count + needed, 2 * capacity, 16))
        self._keys = torch.zeros(new_capacity, self.feature_size, device=device)
        self._values = torch.zeros(new_capacity, dtype=torch.long, device=device)
        self._bias = torch.zeros(new_capacity, device=device)
        self._keys[: self._count] = keys
        self._values[: self._count] = values
        self._bias[: self._count] = self._vote_bias(values)
        self._next = self._count

    def extend(self, features: torch.Tensor, next_ids: torch.Tensor) -> None:
        """Store pairs (T, D), (T,) in order, each feature with the token that followed it,
        dropping the oldest beyond W."""
        window = self.config.window
        features, next_ids = features[-window:].float(), next_ids[-window:]
        count = next_ids.numel()
        self._grow(count, features.device)
        slots = (self._next + torch.arange(count, device=features.device)) % self._keys.size(0)
        self._keys[slots] = features
        self._values[slots] = next_ids
        self._bias[slots] = self._vote_bias(next_ids)
        self._next = (self._next + count) % self._keys.size(0)
        self._count = min(self._count + count, window)

    def append(self, feature: torch.Tensor, next_id: int) -> None:
        """Store one pair once the token that followed `feature` (D,) is known: three slot
        writes, as a generating row does at every token."""
        self._grow(1, feature.device)
        self._keys[self._next] = feature
        self._values[self._next] = next_id
        usable = self.config.unk_takes_mass or next_id != self.unk_id
        self._bias[self._next] = 0.0 if usable else NEG_INF
        self._next = (self._next + 1) % self._keys.size(0)
        self._count = min(self._count + 1, self.config.window)

    def target_log_probs(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p_cache of each target (T,), how many usable pairs position t saw (T,) int64),
        each position using only the W pairs before it; then appends the T pairs. The tuner
        mixes these with several weights without recomputing them."""
        pieces = []
        for start in range(0, targets.numel(), _QUERY_CHUNK):
            stop = start + _QUERY_CHUNK
            pieces.append(self._target_log_probs_chunk(features[start:stop], targets[start:stop]))
        if not pieces:
            return features.new_empty(0), torch.zeros(0, dtype=torch.long)
        return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])

    def _target_log_probs_chunk(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = features.float()
        old_keys, old_values = self._ordered()
        held, length = old_values.numel(), targets.numel()
        keys = torch.cat((old_keys.to(features.device), features))  # (held + T, D)
        values = torch.cat((old_values.to(targets.device), targets))  # (held + T,)
        scores = self.config.theta * (features @ keys.T)  # (T, held + T)
        # position t reads pairs [held + t - W, held + t): the earlier chunks and this one's past
        position = held + torch.arange(length, device=features.device)[:, None]
        index = torch.arange(held + length, device=features.device)[None, :]
        visible = (index < position) & (index >= position - self.config.window)
        visible &= self._usable(values)[None, :]
        scores = scores.masked_fill(~visible, NEG_INF)
        matching = scores.masked_fill(values[None, :] != targets[:, None], NEG_INF)
        usable = visible.sum(dim=1)  # (T,)
        log_p = torch.logsumexp(matching, 1) - torch.logsumexp(scores, 1)
        self.extend(features, targets)
        return torch.where(usable > 0, log_p, NEG_INF), usable

    def score_targets(
        self, features: torch.Tensor, model_logp: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Mixed log-probability (T,) of each target given features (T, D) and the model's
        log-probabilities of the targets (T,); then the T pairs join the cache. The same
        figure as calling mix() and append() token by token, without a loop per token."""
        cache_logp, usable = self.target_log_probs(features, targets)
        return mix_log_probs(model_logp.float(), cache_logp, usable, self.config)

    def scores(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(theta · h·h_i (n,), -inf where the pair may not vote; the words w_i (n,)) of the
        held pairs, in slot order, for a float32 query (D,)."""
        n = self._count
        scores = torch.addmv(self._bias[:n], self._keys[:n], query, alpha=self.config.theta)
        return scores, self._values[:n]

    def mix(self, feature: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        """The mixed next-token log-distribution (V,) after feature (D,), for sampling / top-k;
        the cache is not changed (call append() once the next token is known)."""
        return mix_rows([self], feature[None], log_probs[None].float().clone())[0]


def mix_log_probs(
    model_logp: torch.Tensor, cache_logp: torch.Tensor, usable: torch.Tensor, config: CacheConfig
) -> torch.Tensor:
    """log((1 - λ(n)) p_model + λ(n) p_cache) of each target, n the usable pairs its cache held
    (config.weight); log p_model exactly where the cache held none (so an empty cache, or
    lam = 0, changes nothing)."""
    if config.lam == 0:
        return model_logp
    weight = config.weight(usable)  # float64; each log rounded to float32 once, as it is added
    mixed = torch.logaddexp(
        model_logp + torch.log1p(-weight).float(), cache_logp + weight.log().float()
    )
    return torch.where(weight > 0, mixed, model_logp)


def mix_rows(
    caches: Sequence[PointerCache], features: torch.Tensor, log_probs: torch.Tensor
) -> torch.Tensor:
    """Mixed log-distributions (B, V) of a batch: row i reads features[i] (D,), the model's
    log_probs[i] (V,) and only caches[i]. One batched pass (B small matmuls into one padded
    score matrix, one softmax, one pass over the vocabulary), equal per row to
    PointerCache.mix; a row with an empty cache (or lam = 0) gets its log_probs back exactly.
    A float32 log_probs is mixed in place and returned (pass a copy to keep it): the step's
    distribution is written once, not copied."""
    device = log_probs.device
    queries, empty = features.float(), torch.empty(0, device=device)
    voting = [
        cache.scores(query) if len(cache) and cache.config.lam else (empty, empty.long())
        for cache, query in zip(caches, queries, strict=True)
    ]  # one fused matmul per row; the rows are padded together in one call each
    if not any(len(v) for _, v in voting):
        return log_probs
    scores = pad_sequence([s for s, _ in voting], batch_first=True, padding_value=NEG_INF)
    values = pad_sequence([v for _, v in voting], batch_first=True)  # (B, n)
    usable = (scores > NEG_INF).sum(dim=1)  # (B,) pairs that vote in each row
    seen = usable > 0
    weights = torch.softmax(scores.masked_fill(~seen[:, None], 0.0), dim=1) * seen[:, None]
    # λ(n) per row (B, 1); 0 where the cache has nothing to say, so the row keeps the model's own
    lams, half_fills, min_fills = (
        torch.tensor([getattr(c.config, name) for c in caches], dtype=torch.float64)
        for name in ("lam", "half_fill", "min_fill")
    )
    lam = fill_weight(lams, half_fills, usable.cpu(), min_fills).float().to(device)[:, None]
    # every word loses a factor (1 - lam); only the (at most n) words in the cache gain mass, so
    # the exact mix is computed at those positions alone, not over the whole vocabulary
    mixed = log_probs.float()  # (B, V)
    at_model = mixed.gather(1, values)  # (B, n), read before the shift below
    mixed.add_(torch.log1p(-lam))
    cache_p = _word_totals(values, weights)  # (B, n)
    at_words = torch.logaddexp(at_model + torch.log1p(-lam), cache_p.log() + lam.log())
    return mixed.scatter_(1, values, at_words)


def _word_totals(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """For each slot (B, n), the total weight of every slot of its row holding the same word:
    the cache's probability of that word. Computed on the (B, n) slots alone (sort, then sums
    over runs of equal words in float64), never on a (B, V) buffer, which would cost a pass
    over the whole vocabulary per row."""
    ordered, order = values.sort(dim=1)
    totals = weights.double().gather(1, order).cumsum(dim=1)  # (B, n)
    positions = torch.arange(values.size(1), device=values.device).expand_as(values)
    changes = ordered[:, 1:] != ordered[:, :-1]  # a new word starts at position j + 1
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = changes
    last = torch.ones_like(ordered, dtype=torch.bool)
    last[:, :-1] = changes
    run_start = torch.where(first, positions, 0).cummax(dim=1).values
    run_end = torch.where(last, positions, values.size(1)).flip(1).cummin(dim=1).values.flip(1)
    before = torch.where(run_start > 0, totals.gather(1, (run_start - 1).clamp(min=0)), 0.0)
    sums = totals.gather(1, run_end) - before  # (B, n) in sorted order
    return torch.empty_like(sums).scatter_(1, order, sums).float()
