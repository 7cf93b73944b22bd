"""The batched step over rows: one forward of the network for every sequence in the batch, then
what each row wants from it. The service's engine (app/engine/) runs it step after step on its
worker thread, `python -m model.generate` on a batch of one, and `bench.serve` times it: every
generated token, scored target and prediction comes out of `Runner.step`.

A sequence's recurrent state has a fixed size, so every row lives as one column of a single
state tensor (S, L, B, H). In one step a decoding row reads one token while a row still reading
its prompt reads a chunk of it:

    row 0 (decode):   t          ·  ·  ·      lengths [1, 4, 2]
    row 1 (prefill):  p1 p2 p3 p4             padded to (B=3, T=4)
    row 2 (prefill):  q7 q8      ·  ·

Padding must not reach a row's state, so ragged steps pass the rows' lengths to the model,
which reads a packed sequence: each row stops at its own length and its state is taken there.
Steps where every row reads the same number of tokens (all decoding, the common case) need no
lengths. Nothing is ever read twice: a generated token costs one step of the recurrent layer and
one output-layer pass, however long the text before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch

from model.checkpoint import Checkpoint, load_cache_scope, load_inference_config
from model.decoding import next_tokens
from model.distribution import NextWordDistribution
from model.pointer_cache import PointerCache, mix_rows
from model.rnn import RNNLanguageModel
from model.rows import (
    BlankLines,
    BlankRow,
    Candidate,
    Generated,
    GenerateRow,
    Prediction,
    PredictRow,
    Row,
    Scored,
    ScoreRow,
    TopTokens,
)
from model.scoring import chunk_target_log_probs

PREFILL_CHUNK = 64  # most prompt tokens one row reads per step (the service's default)


@dataclass
class Outbox:
    """One step's results, by kind, each with the row it answers for: a scored text, a
    prediction, a generated token or finish, a blank's filled lines (at most one per row)."""

    scored: list[tuple[ScoreRow, Scored]] = field(default_factory=list)
    predicted: list[tuple[PredictRow, Prediction]] = field(default_factory=list)
    generated: list[tuple[GenerateRow, Generated]] = field(default_factory=list)
    blanks: list[tuple[BlankRow, BlankLines]] = field(default_factory=list)

    def all(self) -> list[tuple[Row, Scored | Prediction | Generated | BlankLines]]:
        """Every result with its row, whatever its kind."""
        return [*self.scored, *self.predicted, *self.generated, *self.blanks]


def forward_rows(
    model: RNNLanguageModel, chunks: Sequence[Sequence[int]], state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, T, D) after each row reads its chunk (T = longest chunk; positions past a
    row's chunk hold no meaning) and the new state (S, L, B, H), each row's at its own end."""
    device = model.device
    lengths = [len(chunk) for chunk in chunks]
    width = max(lengths)
    if min(lengths) == width:
        return model(torch.tensor(chunks, dtype=torch.long, device=device), state)
    tokens = torch.zeros(len(chunks), width, dtype=torch.long)  # (B, T)
    for row, chunk in enumerate(chunks):
        tokens[row, : len(chunk)] = torch.as_tensor(chunk, dtype=torch.long)
    return model(tokens.to(device), state, torch.tensor(lengths))


class Runner:
    """The rows of one batch, their recurrent state, and the step that advances them all. The
    checkpoint's recorded reading applies to every row: under line context each line of a text
    starts from the start state, and a line-scoped cache starts empty at each line."""

    def __init__(
        self, checkpoint: Checkpoint, prefill_chunk: int = PREFILL_CHUNK, prune: bool = True
    ):
        self.model = checkpoint.model
        # prune: compute a tail cluster only where a row's answer can need it (the same
        # answers); False computes the whole distribution of every row (the baseline)
        self.prune = prune
        self.vocab = checkpoint.vocab
        self.context, self.cache_config = load_inference_config(checkpoint)
        self.cache_scope = load_cache_scope(checkpoint)
        self.prefill_chunk = prefill_chunk
        self.rows: list[Row] = []  # row i is column i of the state
        self.state = self.model.init_state(0)  # (S, L, B, H)

    # -- the batch --------------------------------------------------------------------------
    def new_cache(self, wanted: bool) -> PointerCache | None:
        """A fresh cache for one row, if the checkpoint has one and the request wants it."""
        if self.cache_config is None or not wanted:
            return None
        return PointerCache(self.cache_config, self.model.config.feature_size, self.vocab.unk_id)

    @property
    def cache_bytes_per_row(self) -> int:
        """The most memory one row's cache can take (0 without a cache)."""
        if self.cache_config is None:
            return 0
        return self.cache_config.max_bytes(self.model.config.feature_size)

    def add(self, rows: Sequence[Row]) -> None:
        """Rows join the batch, each from the start state."""
        if self.context == "line" or self.cache_scope == "line":
            for row in rows:
                row.read_line_by_line(self.vocab.eos_id)
        self.state = torch.cat([self.state, self.model.init_state(len(rows))], dim=2)
        self.rows.extend(rows)

    def keep(self, indices: Sequence[int]) -> None:
        """Only these rows (and their state columns) stay in the batch."""
        self.rows = [self.rows[i] for i in indices]
        self.state = self.state[:, :, list(indices)]

    @torch.inference_mode()
    def warm_up(self) -> None:
        """One single-token forward and output layer: proves the model runs."""
        features, _ = forward_rows(self.model, [[self.vocab.eos_id]], self.model.init_state(1))
        probabilities = self.model.log_probs(features[:, -1]).exp().sum()
        if not abs(float(probabilities) - 1.0) < 1e-3:
            raise RuntimeError(f"the model's next-token probabilities sum to {probabilities}")

    # -- the step ---------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> Outbox:
        """One batched forward over every row, then what each row wants from it: the results
        for the rows' requests, in order."""
        rows = self.rows
        self._start_lines(rows)
        starts = [row.position for row in rows]
        chunks = [row.next_chunk(self.prefill_chunk) for row in rows]
        features, self.state = forward_rows(self.model, chunks, self.state)  # (B, T, D)
        for i, row in enumerate(rows):
            if row.cache is not None and not isinstance(row, ScoreRow):
                row.remember(features[i, : len(chunks[i])], chunks[i])
        outbox = Outbox()
        # a blank row that reached its blank is scored with the words proposed there, at once
        blanks = [i for i, row in enumerate(rows) if isinstance(row, BlankRow) and row.caught_up]
        scoring = [i for i, row in enumerate(rows) if isinstance(row, ScoreRow) and i not in blanks]
        if scoring:
            self._score_rows(scoring, starts, chunks, features, outbox)
        wanting = [
            i for i, row in enumerate(rows) if row.caught_up and not isinstance(row, ScoreRow)
        ]
        if wanting:
            ends = {len(chunks[i]) - 1 for i in wanting}
            if len(wanting) == len(rows) and len(ends) == 1:  # every row, one place: a view
                last_features = features[:, ends.pop()]
            else:
                last = torch.tensor([len(chunks[i]) - 1 for i in wanting])
                last_features = features[wanting, last]
            self._answer([rows[i] for i in wanting], last_features, outbox)
        if blanks:
            self._fill_blanks(blanks, starts, chunks, features, outbox)
        return outbox

    def _fill_blanks(
        self,
        read: list[int],
        starts: list[int],
        chunks: list[list[int]],
        features: torch.Tensor,
        outbox: Outbox,
    ) -> None:
        """Each blank row whose left side is now read (row indices): its last targets scored
        and the words proposed at its blank from one distribution (one pass over each tail's
        weights for both); the lines filled with the words it chooses join the batch with copies
        of its state, and the row answers once they are scored. The blank row is finished and
        leaves."""
        for i in read:
            row = cast(BlankRow, self.rows[i])
            blank = len(chunks[i]) - 1  # where the chunk's last token leaves the model
            distribution = NextWordDistribution.of(self.model, features[i, : blank + 1])
            device = distribution.device
            targets = row.targets[starts[i] : starts[i] + blank]
            row.add_scores(
                distribution.log_prob_of(
                    torch.arange(blank, device=device),
                    torch.tensor(targets, dtype=torch.long, device=device),
                    whole=torch.tensor([blank], device=device),
                ).cpu()
            )
            ask = min(row.chooser.ask, len(self.vocab) - 1)
            values, ids = self._top_tokens(distribution, [blank], ask, ban_unk=True)
            proposed = self._candidates(zip(ids[0], values[0], strict=True))
            words = row.chooser(proposed)
            places = torch.full((len(words),), blank, device=device)
            found = distribution.log_prob_of(places, torch.tensor(words, device=device))
            lines = row.lines(proposed, words, found.cpu().tolist())
            if not lines:  # nothing to fill the blank with: it answers at once
                outbox.blanks.append((row, row.answer()))
            self.rows.extend(lines)
            self.state = torch.cat([self.state, self.state[:, :, [i] * len(lines)]], dim=2)

    def _start_lines(self, rows: Sequence[Row]) -> None:
        """Rows about to read a new line of their text: under line context it starts from the
        start state, and under a line-scoped cache with an empty cache."""
        starting = [i for i, row in enumerate(rows) if row.at_line_start]
        for i in starting:
            rows[i].start_line(clear_cache=self.cache_scope == "line")
        if starting and self.context == "line":
            self.state[:, :, starting] = 0.0

    def _score_rows(
        self,
        scoring: list[int],
        starts: list[int],
        chunks: list[list[int]],
        features: torch.Tensor,
        outbox: Outbox,
    ) -> None:
        """Log-probabilities of the targets the scoring rows just read, in one output-layer
        call; a row whose text is read sends (index, scores, tops) to its request."""
        rows = [self.rows[i] for i in scoring]
        targets = []
        for i, row in zip(scoring, rows, strict=True):
            assert isinstance(row, ScoreRow)
            targets.append(row.targets[starts[i] : starts[i] + len(chunks[i])])
        pieces = chunk_target_log_probs(self.model, features[scoring], targets)
        for i, row, piece, chunk_targets in zip(scoring, rows, pieces, targets, strict=True):
            assert isinstance(row, ScoreRow)
            if row.cache is not None:
                row_features = features[i, : len(chunk_targets)].float().cpu()
                piece = row.cache.score_targets(row_features, piece, torch.tensor(chunk_targets))
            tops: list[TopTokens] = []
            if row.top_n:  # the model's own top tokens at each place (no cache)
                distribution = NextWordDistribution.of(self.model, features[i, : len(chunks[i])])
                places = range(len(chunks[i]))
                tops = self._named(*self._top_tokens(distribution, places, row.top_n, False))
            scored = row.add_scores(piece, tops)
            if scored is None:
                continue
            if isinstance(row.origin, BlankRow):  # a line of a blank: the blank answers
                filled = row.origin.line_scored(scored)
                if filled is not None:
                    outbox.blanks.append((row.origin, filled))
            else:
                outbox.scored.append((row, scored))

    def _answer(self, rows: list[Row], features: torch.Tensor, outbox: Outbox) -> None:
        """Predictions and sampled tokens of rows that read features (N, D): rows with a
        cache from the model's distribution mixed with their cache, the others from the
        model's distribution, computed where their answers need it."""
        cached = [j for j, row in enumerate(rows) if row.cache is not None]
        plain = [j for j, row in enumerate(rows) if row.cache is None]
        groups = []
        if plain:
            plain_features = features if len(plain) == len(rows) else features[plain]
            distribution = NextWordDistribution.of(self.model, plain_features)
            if not self.prune:
                distribution.full(torch.arange(len(plain), device=features.device))
            groups.append(([rows[j] for j in plain], distribution))
        if cached:
            caches = [rows[j].cache for j in cached]
            whole = self.model.log_probs(features[cached]).float().cpu()  # (n, V)
            mixed = mix_rows(caches, features[cached].float().cpu(), whole)  # type: ignore[arg-type]
            groups.append(([rows[j] for j in cached], NextWordDistribution.known(mixed)))
        for group, distribution in groups:
            predicting = [j for j, row in enumerate(group) if isinstance(row, PredictRow)]
            generating = [j for j, row in enumerate(group) if isinstance(row, GenerateRow)]
            if predicting:
                self._predict([group[j] for j in predicting], distribution, predicting, outbox)
            if generating:
                self._sample([group[j] for j in generating], distribution, generating, outbox)

    def _top_tokens(
        self, distribution: NextWordDistribution, index: Sequence[int], k: int, ban_unk: bool
    ) -> tuple[list[list[float]], list[list[int]]]:
        """The k most probable tokens of the rows index of the distribution, best first
        (<unk> left out when ban_unk): their logprobs and ids, copied to the host."""
        rows = torch.tensor(index, device=distribution.device)
        unk = None
        if ban_unk:
            positions = torch.arange(len(index), device=rows.device)
            unk = (positions, torch.full_like(positions, self.vocab.unk_id))
        values, ids = distribution.top_k(rows, k, unk)
        return values.cpu().tolist(), ids.cpu().tolist()

    def _named(self, values: list[list[float]], ids: list[list[int]]) -> list[TopTokens]:
        """Each row's (token, logprob) pairs."""
        itos = self.vocab.itos
        return [
            tuple((itos[i], v) for i, v in zip(row_ids, row_values, strict=True))
            for row_ids, row_values in zip(ids, values, strict=True)
        ]

    def _predict(
        self, rows: list[Row], distribution: NextWordDistribution, index: list[int], outbox: Outbox
    ) -> None:
        """The top-k candidates of each predicting row (<unk> excluded) and, where it asks,
        the log-probability of every word; the row is done."""
        predicting = [row for row in rows if isinstance(row, PredictRow)]
        widest = min(max(row.top_k for row in predicting), len(self.vocab) - 1)
        values, ids = self._top_tokens(distribution, index, widest, ban_unk=True)
        for j, (row, row_values, row_ids) in enumerate(zip(predicting, values, ids, strict=True)):
            every_word = None
            if row.every_word:
                place = torch.tensor([index[j]], device=distribution.device)
                every_word = distribution.full(place)[0].cpu().tolist()
            top = zip(row_ids[: row.top_k], row_values[: row.top_k], strict=True)
            row.finished = True
            outbox.predicted.append((row, Prediction(self._candidates(top), every_word)))

    def _candidates(self, top: Iterable[tuple[int, float]]) -> list[Candidate]:
        """(id, logprob) pairs as candidates, <eos> marked as the end of the text."""
        return [Candidate(self.vocab.itos[i], v, i == self.vocab.eos_id) for i, v in top]

    def _sample(
        self, rows: list[Row], distribution: NextWordDistribution, index: list[int], outbox: Outbox
    ) -> None:
        """Next token of every generating row at once, each with its own parameters and
        generator; each row's events (TokenEvent, FinishEvent) go to its request. Only the
        chosen ids and the logprobs the responses carry leave the device."""
        generating = [row for row in rows if isinstance(row, GenerateRow)]
        decodings = [row.decoding for row in generating]
        chosen, chosen_logprobs = next_tokens(
            distribution, index, decodings, self.vocab.unk_id, self.prune
        )
        tops: list[TopTokens] = [()] * len(generating)
        asking = [j for j, row in enumerate(generating) if row.options.top_logprobs]
        if asking:
            widest = max(generating[j].options.top_logprobs for j in asking)
            values, ids = self._top_tokens(distribution, [index[j] for j in asking], widest, False)
            for j, top in zip(asking, self._named(values, ids), strict=True):
                tops[j] = top[: generating[j].options.top_logprobs]
        for row, token_id, logprob, top in zip(
            generating, chosen.cpu().tolist(), chosen_logprobs.cpu().tolist(), tops, strict=True
        ):
            generated = row.accept(token_id, self.vocab.itos[token_id], logprob, top)
            if generated.token is not None or generated.finish is not None:
                outbox.generated.append((row, generated))
