"""The next-word distribution of a batch of rows, computed one tail cluster at a time and only
where a row's choice can need it.

An adaptive softmax splits the vocabulary into a shortlist of frequent words and tail clusters
of rarer ones. Its head gives every shortlist word its exact log-probability and every cluster
its total mass; a tail computes the words of one cluster. The cluster's mass bounds every word
in it (p(w) <= p(cluster)), so a tail that cannot change a row's answer need not run for it:

    shortlist  | cluster 1 (mass 0.12) | cluster 2 (mass 0.04)
    exact      | computed only for rows whose kept set, top-k or draw can reach it

The top-k words of a row are exact once every cluster left out is bounded below the k-th word
found; a plain draw at temperature 1 picks a shortlist word or a cluster from the head, then a
word inside the chosen cluster only. Whatever is computed is computed exactly as the full
output layer does (torch's AdaptiveLogSoftmaxWithLoss.log_prob), row by row, so the answers
are those of the full distribution. A model with a full softmax (or log-probabilities already
mixed with a cache) is a distribution whose clusters are all known from the start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.rnn import RNNLanguageModel

NEG_INF = float("-inf")
# words some rows may not take: (row positions (P,), word ids (P,)), pairs on the device
Banned = tuple[torch.Tensor, torch.Tensor]


class NextWordDistribution:
    """Exact next-word log-probabilities of N rows, each tail cluster computed on demand.

    Every tensor lives on the model's device; nothing is copied to the host here."""

    def __init__(self, head: torch.Tensor, vocab_size: int):
        # head (N, S + C): log-probabilities of the S shortlist words, then of the C clusters
        self.head = head
        self.vocab_size = vocab_size
        self.shortlist = head.size(1)
        self.starts: list[int] = []  # first word id of each cluster
        self.stops: list[int] = []
        self._features: torch.Tensor | None = None
        self._tails: list[torch.nn.Module] = []
        # per cluster (N, size): log-probs where computed (None until a row needs it)
        self._words: list[torch.Tensor | None] = []
        self._done: torch.Tensor = torch.zeros(0, head.size(0), dtype=torch.bool)  # (C, N)

    @classmethod
    def of(cls, model: RNNLanguageModel, features: torch.Tensor) -> NextWordDistribution:
        """The distribution after features (N, D): the head (or the full softmax) now, the
        tails later, as they are asked for."""
        if model.adaptive is None:
            assert model.decoder is not None
            return cls.known(F.log_softmax(model.decoder(features), dim=-1))
        softmax = model.adaptive
        with torch.autocast(features.device.type, enabled=False):
            features = features.float()
            head = F.log_softmax(softmax.head(features), dim=1)  # (N, S + C)
        shortlist = softmax.shortlist_size
        distribution = cls(head[:, :shortlist], softmax.n_classes)
        distribution._cluster_log_probs = head[:, shortlist:]  # (N, C)
        distribution._features = features
        distribution._tails = list(softmax.tail)
        distribution.starts = list(softmax.cutoffs[:-1])
        distribution.stops = list(softmax.cutoffs[1:])
        distribution._words = [None] * len(distribution.starts)
        distribution._done = torch.zeros(
            len(distribution.starts), features.size(0), dtype=torch.bool, device=head.device
        )
        return distribution

    @classmethod
    def known(cls, log_probs: torch.Tensor) -> NextWordDistribution:
        """A distribution computed already: log_probs (N, V), no cluster left to compute."""
        distribution = cls(log_probs, log_probs.size(1))
        distribution._cluster_log_probs = log_probs.new_zeros(log_probs.size(0), 0)
        return distribution

    _cluster_log_probs: torch.Tensor  # (N, C): each cluster's total log-probability

    # -- what is known ----------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """N, the number of rows."""
        return self.head.size(0)

    @property
    def device(self) -> torch.device:
        """Where the log-probabilities live."""
        return self.head.device

    @property
    def clusters(self) -> int:
        """C, the number of tail clusters."""
        return len(self._words)

    def cluster_bounds(self, rows: torch.Tensor) -> torch.Tensor:
        """Log upper bounds (n, C) on any word of each cluster: the cluster's own mass."""
        return self._cluster_log_probs[rows]

    def done(self, cluster: int, rows: torch.Tensor) -> torch.Tensor:
        """Whether each of rows (n,) has its words of cluster computed, (n,) bool."""
        return self._done[cluster, rows]

    # -- computing --------------------------------------------------------------------------
    def compute(self, cluster: int, rows: torch.Tensor) -> torch.Tensor:
        """Compute (once) the words of cluster for rows (n,); their log-probs (n, size)."""
        missing = rows[~self._done[cluster, rows]]
        if missing.numel():
            assert self._features is not None
            with torch.autocast(self.device.type, enabled=False):
                tail = self._tails[cluster](self._features[missing])
                words = F.log_softmax(tail, dim=1)
                words += self._cluster_log_probs[missing, cluster].unsqueeze(1)
            if self._words[cluster] is None and missing.numel() == self.rows:
                self._words[cluster] = words.index_select(0, missing.argsort())
            else:
                if self._words[cluster] is None:
                    size = self.stops[cluster] - self.starts[cluster]
                    self._words[cluster] = words.new_full((self.rows, size), NEG_INF)
                self._words[cluster][missing] = words  # type: ignore[index]
            self._done[cluster, missing] = True
        return self._words[cluster][rows]  # type: ignore[index]

    def full(self, rows: torch.Tensor) -> torch.Tensor:
        """The whole distribution (n, V) of rows, computing every cluster they miss."""
        parts = [self.head[rows]]
        parts.extend(self.compute(cluster, rows) for cluster in range(self.clusters))
        return torch.cat(parts, dim=1)

    def log_prob_of(
        self, rows: torch.Tensor, words: torch.Tensor, whole: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The exact log-probability (n,) of one word per row, computing its cluster if
        needed. With whole (rows), every cluster of those rows is computed too, in the same
        pass over each tail's weights: their top-k or draw then needs no pass of its own."""
        values = torch.empty(len(rows), device=self.device)
        in_shortlist = words < self.shortlist
        if bool(in_shortlist.any()):
            values[in_shortlist] = self.head[rows[in_shortlist], words[in_shortlist]]
        for cluster, start in enumerate(self.starts):
            inside = (words >= start) & (words < self.stops[cluster])
            if whole is not None:
                self.compute(cluster, torch.cat([rows[inside], whole]))
            if bool(inside.any()):
                cluster_words = self.compute(cluster, rows[inside])
                picked = (words[inside] - start).unsqueeze(1)
                values[inside] = cluster_words.gather(1, picked).squeeze(1)
        return values

    def top_k(
        self, rows: torch.Tensor, k: int, banned: Banned | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k most probable words of each row, exactly: log-probs and ids (n, k), best
        first; banned words are never among them. A cluster is computed for a row only when
        its mass reaches the k-th best word found so far."""
        k = min(k, self.vocab_size)
        values = self.masked(self.head[rows], banned, 0, self.shortlist)
        width = min(k, self.shortlist)
        values, ids = values.topk(width, dim=1)
        if width < k:  # fewer shortlist words than k: the rest come from the clusters
            pad = values.new_full((len(rows), k - width), NEG_INF)
            values = torch.cat([values, pad], dim=1)
            ids = torch.cat([ids, torch.zeros_like(pad, dtype=torch.long)], dim=1)
        for cluster, (start, stop) in enumerate(zip(self.starts, self.stops, strict=True)):
            bounds = self._cluster_log_probs[rows, cluster]
            taking = (bounds >= values[:, -1]) | self._done[cluster, rows]
            if not bool(taking.any()):
                continue
            picked = taking.nonzero().squeeze(1)
            words = self.compute(cluster, rows[picked])
            words = self.masked(words, banned_of(banned, picked), start, stop)
            word_ids = torch.arange(start, stop, device=self.device).expand(len(picked), -1)
            best, where = torch.cat([values[picked], words], dim=1).topk(k, dim=1)
            values[picked] = best
            ids[picked] = torch.cat([ids[picked], word_ids], dim=1).gather(1, where)
        return values, ids

    @staticmethod
    def masked(values: torch.Tensor, banned: Banned | None, start: int, stop: int) -> torch.Tensor:
        """values (n, stop - start) of the words start..stop with the banned ones at -inf."""
        if banned is None:
            return values
        positions, words = banned
        inside = (words >= start) & (words < stop)
        if not bool(inside.any()):
            return values
        values = values.clone()
        values[positions[inside], words[inside] - start] = NEG_INF
        return values


def banned_of(banned: Banned | None, picked: torch.Tensor) -> Banned | None:
    """The banned pairs of the picked rows (n,), renumbered 0..n-1 in picked's order."""
    if banned is None or not banned[0].numel():
        return banned
    positions, words = banned
    size = max(int(positions.max()), int(picked.max())) + 1
    lookup = torch.full((size,), -1, dtype=torch.long, device=positions.device)
    lookup[picked] = torch.arange(len(picked), device=positions.device)
    mapped = lookup[positions]
    return mapped[mapped >= 0], words[mapped >= 0]
