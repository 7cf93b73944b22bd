"""The pruned output path: a tail cluster is computed only where a row's answer can need it,
and every answer equals the full distribution's (model.log_probs over the whole vocabulary)."""

import math

import pytest
import torch

from model.distribution import NextWordDistribution
from model.rnn import ModelConfig, RNNLanguageModel
from model.sampling import SamplingOptions, make_generator, sample_rows


@pytest.fixture(scope="module")
def states(checkpoint, lines):
    """Output features (N, D) at every position of the valid lines: many real states."""
    model = checkpoint.model
    rows = []
    with torch.inference_mode():
        for ids in lines:
            tokens = torch.tensor([[checkpoint.vocab.eos_id, *ids]])
            features, _ = model(tokens)
            rows.append(features[0])
    features = torch.cat(rows)
    assert features.size(0) > 200 and model.adaptive is not None
    return features


def _full(model, features):
    with torch.inference_mode():
        return model.log_probs(features)


def test_the_tiny_model_has_tail_clusters(checkpoint, states):
    distribution = NextWordDistribution.of(checkpoint.model, states)
    assert distribution.clusters >= 1 and distribution.shortlist < distribution.vocab_size


@pytest.mark.parametrize("k", [1, 5, 50, 400])
def test_top_k_equals_the_full_distributions_top_k(checkpoint, states, k):
    with torch.inference_mode():
        distribution = NextWordDistribution.of(checkpoint.model, states)
        rows = torch.arange(states.size(0))
        values, ids = distribution.top_k(rows, k)
    full = _full(checkpoint.model, states)
    expected_values, _ = full.topk(k)
    # the same k values, each the log-probability of the word named (tied words may swap)
    assert torch.equal(values, expected_values)
    assert torch.equal(full.gather(1, ids), values)
    assert all(len(set(row)) == k for row in ids.tolist())


def test_top_one_computes_a_cluster_only_for_rows_whose_cluster_mass_could_win(checkpoint, states):
    with torch.inference_mode():
        distribution = NextWordDistribution.of(checkpoint.model, states)
        rows = torch.arange(states.size(0))
        distribution.top_k(rows, 1)
    best_shortlist = distribution.head.max(-1).values
    for cluster in range(distribution.clusters):
        could_win = distribution.cluster_bounds(rows)[:, cluster] >= best_shortlist
        computed = distribution.done(cluster, rows)
        assert torch.equal(computed, computed & could_win)  # never computed needlessly


def test_word_log_probs_are_exact_and_can_bring_whole_rows_along(checkpoint, states, monkeypatch):
    """log_prob_of gives the full distribution's figure of each word; with whole rows, each
    tail runs once for both (fill-blank: the left side's targets and the blank's words)."""
    n = min(states.size(0), 120)
    full = _full(checkpoint.model, states[:n])
    words = torch.randint(0, full.size(1), (n - 1,), generator=torch.Generator().manual_seed(0))
    rows, whole = torch.arange(n - 1), torch.tensor([n - 1])
    passes: list[int] = []
    with torch.inference_mode():
        distribution = NextWordDistribution.of(checkpoint.model, states[:n])
        real = distribution.compute

        def counted(cluster, at):
            if not bool(distribution.done(cluster, at).all()):  # a pass over the tail
                passes.append(cluster)
            return real(cluster, at)

        monkeypatch.setattr(distribution, "compute", counted)
        found = distribution.log_prob_of(rows, words, whole)
        assert passes == list(range(distribution.clusters))  # one pass per tail
        values, ids = distribution.top_k(whole, 5)
    assert torch.allclose(found, full[rows, words], atol=1e-5)
    assert passes == list(range(distribution.clusters))  # the top-k needed none of its own
    assert torch.equal(ids[0], full[n - 1].topk(5).indices)


def test_a_plain_draw_computes_only_the_cluster_it_lands_in(checkpoint, states):
    n = states.size(0)
    with torch.inference_mode():
        distribution = NextWordDistribution.of(checkpoint.model, states)
        chosen, _ = sample_rows(
            distribution,
            range(n),
            [SamplingOptions(temperature=1.0)] * n,
            [make_generator(i) for i in range(n)],
            [[]] * n,
        )
    rows = torch.arange(n)
    for cluster, (start, stop) in enumerate(
        zip(distribution.starts, distribution.stops, strict=True)
    ):
        landed = (chosen >= start) & (chosen < stop)
        assert torch.equal(distribution.done(cluster, rows), landed)
    assert 0 < int((chosen >= distribution.shortlist).sum()) < n  # some rows computed none


OPTIONS = [
    SamplingOptions(temperature=1.0),
    SamplingOptions(temperature=0.0),
    SamplingOptions(temperature=0.7, top_k=5),
    SamplingOptions(temperature=0.9, top_k=50, top_p=0.95),
    SamplingOptions(temperature=1.0, top_p=0.3),
    SamplingOptions(temperature=0.8, top_p=0.6),
    SamplingOptions(temperature=1.3, top_p=0.9),
    SamplingOptions(temperature=0.7),
    SamplingOptions(temperature=1.0, top_k=3, ignore_eos=True),
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: f"T{o.temperature}-k{o.top_k}-p{o.top_p}"
)
def test_pruned_draws_are_the_full_distributions_draws(checkpoint, states, options):
    """Every state, three seeds: the pruned routes and the whole distribution (prune=False
    over torch's own full log-probabilities) draw the same word with the same uniform, so
    their kept sets and probabilities agree."""
    model, unk = checkpoint.model, checkpoint.vocab.unk_id
    n = states.size(0)
    banned_words = [unk] * n + ([checkpoint.vocab.eos_id] * n if options.ignore_eos else [])
    positions = list(range(n)) * (2 if options.ignore_eos else 1)
    banned = (torch.tensor(positions), torch.tensor(banned_words))
    full = _full(model, states)
    for seed in range(3):
        with torch.inference_mode():
            pruned, pruned_logprobs = sample_rows(
                NextWordDistribution.of(model, states),
                range(n),
                [options] * n,
                [make_generator(seed * n + i) for i in range(n)],
                [[]] * n,
                banned,
            )
            reference, _ = sample_rows(
                NextWordDistribution.known(full),
                range(n),
                [options] * n,
                [make_generator(seed * n + i) for i in range(n)],
                [[]] * n,
                banned,
                prune=False,
            )
        assert torch.equal(pruned, reference)
        assert torch.allclose(
            pruned_logprobs, full.gather(1, pruned[:, None]).squeeze(1), atol=1e-5
        )
        assert not bool((pruned == unk).any())
        if options.ignore_eos:
            assert not bool((pruned == checkpoint.vocab.eos_id).any())


def _chi_square_critical(dof: int, z: float = 3.09) -> float:
    """The chi-square value a statistic exceeds with probability about 0.001 (Wilson-Hilferty)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def test_plain_sampling_at_temperature_one_follows_the_full_softmax(checkpoint, states):
    """One fixed state whose tail clusters hold real mass; 20,000 draws from the head-then-
    cluster route; a chi-square test against the full softmax (words with fewer than 5
    expected draws pooled)."""
    model = checkpoint.model
    full = _full(model, states)
    with torch.inference_mode():
        distribution = NextWordDistribution.of(model, states)
    tail_mass = 1 - distribution.head.exp().sum(-1)
    state = int(tail_mass.argmax())
    assert float(tail_mass[state]) > 0.2
    draws, per_call = 20_000, 4_000
    generator = make_generator(1234)
    counts = torch.zeros(full.size(1))
    with torch.inference_mode():
        for _ in range(draws // per_call):
            features = states[state].expand(per_call, -1)
            chosen, _ = sample_rows(
                NextWordDistribution.of(model, features),
                range(per_call),
                [SamplingOptions(temperature=1.0)] * per_call,
                [generator] * per_call,
                [[]] * per_call,
            )
            counts += torch.bincount(chosen, minlength=full.size(1)).float()
    expected = full[state].double().exp() * draws
    big = expected >= 5
    observed = torch.cat([counts.double()[big], counts.double()[~big].sum()[None]])
    wanted = torch.cat([expected[big], expected[~big].sum()[None]])
    statistic = float(((observed - wanted) ** 2 / wanted).sum())
    dof = int(big.sum())
    assert dof > 50
    assert statistic < _chi_square_critical(dof), (statistic, dof)
    tail_draws = counts[distribution.shortlist :].sum() / draws
    assert abs(float(tail_draws) - float(tail_mass[state])) < 0.02


@pytest.fixture(scope="module")
def small_model_states():
    """A small random adaptive-softmax model and 3,000 random states of every sharpness, so
    that many rows have a cluster whose mass lies just above or below their k-th word."""
    torch.manual_seed(0)
    config = ModelConfig(
        60, embedding_size=16, hidden_size=16, cutoffs=[10, 25, 45], adaptive_div_value=2.0
    )
    model = RNNLanguageModel(config).eval()
    scales = torch.logspace(-1, 1.3, 3000)[:, None]
    return model, torch.randn(3000, 16) * scales


@pytest.mark.parametrize("k", [1, 3, 12])
def test_top_k_is_exact_where_the_bounds_are_tight(small_model_states, k):
    model, states = small_model_states
    with torch.inference_mode():
        distribution = NextWordDistribution.of(model, states)
        rows = torch.arange(states.size(0))
        values, ids = distribution.top_k(rows, k)
        full = model.log_probs(states)
        expected, _ = full.topk(k)
    assert torch.equal(values, expected) and torch.equal(full.gather(1, ids), values)
    skipped = ~torch.stack([distribution.done(c, rows) for c in range(distribution.clusters)])
    assert bool(skipped.any()) and not bool(skipped.all())


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: f"T{o.temperature}-k{o.top_k}-p{o.top_p}"
)
def test_pruned_draws_equal_full_draws_where_the_bounds_are_tight(small_model_states, options):
    model, states = small_model_states
    n = states.size(0)
    with torch.inference_mode():
        full = model.log_probs(states)
        draws = [
            sample_rows(
                distribution,
                range(n),
                [options] * n,
                [make_generator(i) for i in range(n)],
                [[]] * n,
                prune=prune,
            )[0]
            for distribution, prune in (
                (NextWordDistribution.of(model, states), True),
                (NextWordDistribution.known(full), False),
            )
        ]
    assert torch.equal(draws[0], draws[1])
