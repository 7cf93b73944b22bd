"""How a generation samples and when it stops (SamplingOptions, the one options type of the CLI,
the engine and every request schema), and choosing the next token of every row of a batch at
once (temperature, top-k, top-p, repetition penalty, each row seeded by its own generator).

What a row keeps is defined on its whole distribution, as in Hugging Face's and vLLM's
samplers: scores are log-probabilities / temperature; top-k keeps the k best words; top-p
then keeps the best words until the mass before a word reaches top_p (the mass of the top-k
words renormalised when top-k is set, of the whole vocabulary otherwise); the draw is from the
kept words, renormalised. Each row is served by the cheapest route that gives exactly that
(model/distribution.py computes a tail cluster only where it can matter):

    greedy (temperature 0)          the top-1 word, by the bounds
    plain, temperature 1            the head, then the chosen cluster only
    top-k (with or without top-p)   the exact top-k words, by the bounds
    top-p alone                     the head's words when the bounds settle the kept set
    anything else                   the whole distribution (repetition penalty, a plain draw
                                    at another temperature, a top-p the bounds cannot settle)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from model.distribution import NEG_INF, Banned, NextWordDistribution, banned_of

SEED_SPACE = 2**64  # a seed is an integer in [0, SEED_SPACE): what a torch generator takes


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

    @classmethod
    def of(cls, values: Mapping[str, object]) -> SamplingOptions:
        """Options from named values (a request's fields, a command line's flags), the one way
        from a request to options (/generate, /v1/completions, python -m model.generate): a
        name that is no option is ignored, a value of None takes the option's default, a top_k
        below 1 is off and stop is one string or several."""
        names = {option.name for option in fields(cls)}
        given: dict[str, Any] = {k: v for k, v in values.items() if k in names and v is not None}
        if given.get("top_k", 1) < 1:  # OpenAI-style clients write -1 or 0 for off
            del given["top_k"]
        stop = given.get("stop", ())
        given["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        return cls(**given)

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
            scores[row, seen.to(scores.device)] = scores[row, seen.to(scores.device)] * penalty


def _kept(
    values: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, log_total: torch.Tensor
) -> torch.Tensor:
    """Which of the descending scores (R, W) a row keeps (R, W) bool: the first top_k, then
    while the mass before a word, out of exp(log_total), is below top_p (the best word
    always)."""
    positions = torch.arange(values.size(1), device=values.device)
    probs = torch.exp(values - log_total[:, None])
    before = probs.cumsum(-1) - probs
    return (positions < top_k[:, None]) & ((before < top_p[:, None]) | (positions == 0))


def _top_k_total(values: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """log of the mass (R,) of each row's first top_k descending scores."""
    positions = torch.arange(values.size(1), device=values.device)
    return values.masked_fill(positions >= top_k[:, None], NEG_INF).logsumexp(-1)


def _locate(weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """For each row of non-negative weights (R, W), the index where the running total passes
    its target (R,): an inverse-CDF draw when target = u · total."""
    cumulative = weights.cumsum(-1)
    chosen = torch.searchsorted(cumulative, targets[:, None], right=True).squeeze(1)
    return chosen.clamp_(max=weights.size(1) - 1)


def _draw(values: torch.Tensor, kept: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """A position (R,) drawn from the kept scores (R, W), renormalised."""
    weights = torch.exp(values - values[:, :1]).masked_fill(~kept, 0.0)
    return _locate(weights, uniforms * weights.sum(-1))


_FIRST_CANDIDATES = 256  # a top-p row tries this many candidates before a full sort


class _Batch:
    """The rows of one sampling call: row j (a position) reads row index[j] of the
    distribution and has its own options and uniform; routes fill chosen[j]."""

    def __init__(
        self,
        distribution: NextWordDistribution,
        index: Sequence[int],
        params: Sequence[SamplingOptions],
        uniforms: torch.Tensor,
        history: Sequence[Sequence[int]],
        banned: Banned | None,
    ):
        device = distribution.device
        self.distribution = distribution
        self.index = torch.tensor(list(index), dtype=torch.long, device=device)
        self.params = params
        self.history = history
        self.uniforms = uniforms.to(device)
        self.banned = banned  # pairs numbered by position
        self.chosen = torch.empty(len(params), dtype=torch.long, device=device)
        # the chosen words' model log-probabilities, where a route already has them
        self.logprobs = torch.full((len(params),), float("nan"), device=device)

    @functools.cached_property
    def temperature(self) -> torch.Tensor:
        """Each row's temperature (0 as a tiny one), (n,)."""
        values = [max(p.temperature, 1e-6) for p in self.params]
        return torch.tensor(values, device=self.distribution.device)

    @functools.cached_property
    def top_k(self) -> torch.Tensor:
        """Each row's top_k (the vocabulary size when off), (n,)."""
        vocab = self.distribution.vocab_size
        return torch.tensor(
            [p.top_k or vocab for p in self.params], device=self.distribution.device
        )

    @functools.cached_property
    def top_p(self) -> torch.Tensor:
        """Each row's top_p, (n,)."""
        return torch.tensor([p.top_p for p in self.params], device=self.distribution.device)

    def _rows(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor, Banned | None]:
        """positions as a tensor, the distribution rows they read, and their banned pairs
        renumbered within them."""
        device = self.distribution.device
        if len(positions) == len(self.params):  # every row (positions are in order)
            return torch.arange(len(positions), device=device), self.index, self.banned
        picked = torch.tensor(positions, dtype=torch.long, device=device)
        return picked, self.index[picked], banned_of(self.banned, picked)

    # -- the routes -------------------------------------------------------------------------
    def greedy(self, positions: list[int]) -> None:
        """The most probable allowed word, exactly."""
        picked, rows, banned = self._rows(positions)
        _, ids = self.distribution.top_k(rows, 1, banned)
        self.chosen[picked] = ids[:, 0]

    def top_k_rows(self, positions: list[int]) -> None:
        """Rows with a top-k: the exact top-k words, then top-p on their renormalised mass."""
        picked, rows, banned = self._rows(positions)
        top_k, top_p = self.top_k[picked], self.top_p[picked]
        values, ids = self.distribution.top_k(rows, int(top_k.max()), banned)
        scaled = values / self.temperature[picked, None]
        kept = _kept(scaled, top_k, top_p, _top_k_total(scaled, top_k))
        drawn = _draw(scaled, kept, self.uniforms[picked])
        self.chosen[picked] = ids.gather(1, drawn[:, None]).squeeze(1)

    def plain(self, positions: list[int]) -> None:
        """Temperature 1: a shortlist word or a cluster from the head, then a word of the
        chosen cluster only, with what is left of the same uniform: the full inverse-CDF draw
        over the vocabulary in id order, with one cluster computed."""
        dist = self.distribution
        picked, rows, banned = self._rows(positions)
        slots = torch.cat([dist.head[rows], dist.cluster_bounds(rows)], dim=1).exp_()  # (n, S+C)
        if banned is not None:
            shortlist = banned[1] < dist.shortlist
            slots[banned[0][shortlist], banned[1][shortlist]] = 0.0
            for cluster in self._clusters_holding(banned):  # a banned word's mass leaves it
                start, stop = dist.starts[cluster], dist.stops[cluster]
                words = dist.masked(dist.compute(cluster, rows), banned, start, stop)
                slots[:, dist.shortlist + cluster] = torch.exp(words).sum(-1)
        cumulative = slots.cumsum(-1)
        targets = self.uniforms[picked] * cumulative[:, -1]
        slot = torch.searchsorted(cumulative, targets[:, None], right=True)
        slot = slot.clamp_(max=slots.size(1) - 1)  # (n, 1)
        self.chosen[picked] = slot.squeeze(1)
        in_shortlist = slot.clamp(max=dist.shortlist - 1)
        self.logprobs[picked] = dist.head[rows].gather(1, in_shortlist).squeeze(1)
        if not dist.clusters or int(slot.max()) < dist.shortlist:
            return
        before = (cumulative.gather(1, slot) - slots.gather(1, slot)).squeeze(1)
        for cluster, (start, stop) in enumerate(zip(dist.starts, dist.stops, strict=True)):
            here = (slot.squeeze(1) == dist.shortlist + cluster).nonzero().squeeze(1)
            if not here.numel():
                continue
            words = dist.masked(
                dist.compute(cluster, rows[here]), banned_of(banned, here), start, stop
            )
            inside = _locate(torch.exp(words), targets[here] - before[here])
            self.chosen[picked[here]] = start + inside
            self.logprobs[picked[here]] = words.gather(1, inside[:, None]).squeeze(1)

    def _clusters_holding(self, banned: Banned | None) -> list[int]:
        """The tail clusters that hold a banned word."""
        dist = self.distribution
        if banned is None or not dist.clusters or int(banned[1].max()) < dist.shortlist:
            return []
        words = banned[1]
        return [
            cluster
            for cluster, (start, stop) in enumerate(zip(dist.starts, dist.stops, strict=True))
            if bool(((words >= start) & (words < stop)).any())
        ]

    def top_p_rows(self, positions: list[int]) -> list[int]:
        """Top-p alone, where the head settles it: its words' kept set is the same for the
        least and the most mass the uncomputed clusters can hold, and every cluster word is
        bounded below the last kept word. Returns the positions it could not settle."""
        dist = self.distribution
        picked, rows, banned = self._rows(positions)
        temperature = self.temperature[picked, None]
        scaled = dist.masked(dist.head[rows], banned, 0, dist.shortlist) / temperature
        width = min(_FIRST_CANDIDATES, dist.shortlist)
        values, ids = scaled.topk(width, dim=1)
        least = scaled.logsumexp(-1)
        # a cluster of n words and mass m holds at most m^(1/T) n^(1 - 1/T) when T > 1
        sizes = torch.tensor(
            [stop - start for start, stop in zip(dist.starts, dist.stops, strict=True)],
            dtype=scaled.dtype,
            device=dist.device,
        )
        bounds = dist.cluster_bounds(rows) / temperature  # (n, C): a word's bound
        spread = (1 - 1 / temperature).clamp(min=0) * sizes.log()
        most = torch.logaddexp(least, (bounds + spread).logsumexp(-1))
        top_k, top_p = self.top_k[picked], self.top_p[picked]
        kept_least = _kept(values, top_k, top_p, least)
        kept_most = _kept(values, top_k, top_p, most)
        last = kept_most.sum(-1) - 1
        highest = bounds.amax(-1) if dist.clusters else torch.full_like(least, NEG_INF)
        settled = (
            (kept_least == kept_most).all(-1)
            & ((last < width - 1) | (width == dist.vocab_size))
            & (highest < values.gather(1, last[:, None]).squeeze(1))
        )
        if bool(settled.any()):
            done = settled.nonzero().squeeze(1)
            drawn = _draw(values[done], kept_least[done], self.uniforms[picked[done]])
            self.chosen[picked[done]] = ids[done].gather(1, drawn[:, None]).squeeze(1)
        return [positions[j] for j in (~settled).nonzero().squeeze(1).tolist()]

    def whole(self, positions: list[int]) -> None:
        """Any row, from its whole distribution: the reference every other route equals."""
        picked, rows, banned = self._rows(positions)
        params = [self.params[j] for j in positions]
        scores = self.distribution.full(rows) / self.temperature[picked, None]  # (n, V)
        scores = NextWordDistribution.masked(scores, banned, 0, scores.size(1))
        penalised = [j for j, p in enumerate(params) if p.repetition_penalty != 1.0]
        if penalised:  # (lp * penalty) / T == (lp / T) * penalty
            _apply_repetition_penalty(
                scores,
                penalised,
                [params[j].repetition_penalty for j in penalised],
                [self.history[j] for j in positions],
            )
        greedy = [j for j, p in enumerate(params) if p.temperature == 0]
        plain = [j for j, p in enumerate(params) if p.temperature > 0 and not p.truncates]
        cutting = [j for j, p in enumerate(params) if p.temperature > 0 and p.truncates]
        if greedy:
            self.chosen[picked[greedy]] = scores[greedy].argmax(-1)
        if plain:
            weights = torch.softmax(scores[plain], -1)
            targets = self.uniforms[picked[plain]] * weights.sum(-1)
            self.chosen[picked[plain]] = _locate(weights, targets)
        if cutting:
            self._cut_whole(picked[cutting], scores[cutting])

    def _cut_whole(self, picked: torch.Tensor, scores: torch.Tensor) -> None:
        """Top-k / top-p rows from their whole scores (n, V): candidates from a top-k of at
        most _FIRST_CANDIDATES (or the row's top_k), a full sort only for a row whose kept
        set reaches past them."""
        top_k, top_p = self.top_k[picked], self.top_p[picked]
        vocab = scores.size(1)
        width = min(vocab, max(_FIRST_CANDIDATES, int(top_k.clamp(max=vocab).max())))
        values, ids = scores.topk(width, dim=-1)
        log_total = torch.where(top_k < vocab, _top_k_total(values, top_k), scores.logsumexp(-1))
        kept = _kept(values, top_k, top_p, log_total)
        beyond = kept[:, -1] & (width < vocab)
        if bool(beyond.any()):
            far = beyond.nonzero().squeeze(1)
            values_all, ids_all = scores[far].sort(dim=-1, descending=True)
            kept_all = _kept(values_all, top_k[far], top_p[far], log_total[far])
            drawn = _draw(values_all, kept_all, self.uniforms[picked[far]])
            self.chosen[picked[far]] = ids_all.gather(1, drawn[:, None]).squeeze(1)
        near = (~beyond).nonzero().squeeze(1)
        if near.numel():
            drawn = _draw(values[near], kept[near], self.uniforms[picked[near]])
            self.chosen[picked[near]] = ids[near].gather(1, drawn[:, None]).squeeze(1)


def route(options: SamplingOptions, prune: bool) -> str:
    """Which route samples a row with these options (see the module's table)."""
    if not prune or options.repetition_penalty != 1.0:
        return "whole"
    if options.temperature == 0:
        return "greedy"
    if options.top_k is not None:
        return "top_k"
    if options.top_p < 1.0:
        return "top_p"
    return "plain" if options.temperature == 1.0 else "whole"


def sample_rows(
    distribution: NextWordDistribution,
    index: Sequence[int],
    params: Sequence[SamplingOptions],
    generators: Sequence[torch.Generator],
    history: Sequence[Sequence[int]],
    banned: Banned | None = None,
    prune: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token id of each row (row j reads row index[j] of the distribution) and its
    model log-probability, both (n,) on the distribution's device.

    Each row follows its own params and draws one uniform from its own generator (on the
    CPU, so a seeded request gets the same tokens on any device, whatever else shares the
    batch). Banned (position, word) pairs are never chosen. prune=False sends every row
    through its whole distribution: the baseline that the bounds must equal."""
    uniforms = torch.cat([torch.rand(1, generator=g) for g in generators])  # (n,)
    batch = _Batch(distribution, index, params, uniforms, history, banned)
    routes = [route(p, prune) for p in params]
    unsettled: list[int] = []
    for name, run in (
        ("greedy", batch.greedy),
        ("plain", batch.plain),
        ("top_k", batch.top_k_rows),
    ):
        positions = [j for j, r in enumerate(routes) if r == name]
        if positions:
            run(positions)
    top_p_positions = [j for j, r in enumerate(routes) if r == "top_p"]
    if top_p_positions:
        unsettled = batch.top_p_rows(top_p_positions)
    whole = [j for j, r in enumerate(routes) if r == "whole"] + unsettled
    if whole:
        batch.whole(sorted(whole))
    unknown = batch.logprobs.isnan()
    if bool(unknown.any()):
        batch.logprobs[unknown] = distribution.log_prob_of(
            batch.index[unknown], batch.chosen[unknown]
        )
    return batch.chosen, batch.logprobs
