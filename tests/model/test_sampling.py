"""Sampling: greedy, top-k, top-p, repetition penalty, banned ids, per-row seeds."""

import pytest
import torch

from model.distribution import NextWordDistribution
from model.sampling import SamplingOptions, make_generator, sample_rows


def _sample(log_probs, params, generators, history, banned=()):
    """sample_rows over a distribution known whole, every row banning the same ids."""
    rows = log_probs.size(0)
    pairs = (
        torch.tensor([r for r in range(rows) for _ in banned], dtype=torch.long),
        torch.tensor([w for _ in range(rows) for w in banned], dtype=torch.long),
    )
    return sample_rows(
        NextWordDistribution.known(log_probs), range(rows), params, generators, history, pairs
    )


def _log_probs(rows: int = 4, vocab: int = 100, scale: float = 2.0) -> torch.Tensor:
    return torch.log_softmax(
        torch.randn(rows, vocab, generator=torch.Generator().manual_seed(1)) * scale, -1
    )


def _draw(log_probs, params, seed, n=400, history=None):
    generator = make_generator(seed)
    return [int(_sample(log_probs, [params], [generator], [history or []])[0][0]) for _ in range(n)]


def test_options_of_named_values_take_each_default_for_none_and_ignore_other_names():
    given = {"temperature": 0.5, "top_k": 40, "seed": 3, "stop": ["。"], "prompt": "我"}
    assert SamplingOptions.of(given) == SamplingOptions(0.5, 40, seed=3, stop=("。",))
    nulls = {"temperature": None, "top_p": None, "max_new_tokens": None, "top_k": None}
    assert SamplingOptions.of(nulls) == SamplingOptions()
    assert SamplingOptions.of({"top_k": 0}).top_k is None  # OpenAI-style off
    assert SamplingOptions.of({"top_k": -1}).top_k is None
    assert SamplingOptions.of({"stop": "。"}).stop == ("。",)
    with pytest.raises(ValueError, match="top_p"):
        SamplingOptions.of({"top_p": 2.0})


def test_temperature_zero_is_greedy_and_banned_ids_are_skipped():
    lp = _log_probs()
    ids, logprobs = _sample(
        lp, [SamplingOptions(0.0)] * 4, [make_generator(i) for i in range(4)], [[]] * 4
    )
    assert ids.equal(lp.argmax(-1))
    assert torch.allclose(logprobs, lp.max(-1).values)
    best = int(lp[0].argmax())
    banned, _ = _sample(lp[:1], [SamplingOptions(0.0)], [make_generator(0)], [[]], [best])
    assert int(banned[0]) != best


def test_top_k_only_draws_from_the_k_best():
    lp = _log_probs()[:1]
    allowed = set(lp[0].topk(3).indices.tolist())
    assert set(_draw(lp, SamplingOptions(1.0, top_k=3), seed=0)) == allowed


def test_top_p_draws_from_the_smallest_set_reaching_p():
    lp = _log_probs(vocab=40)[:1]
    values, ids = lp[0].sort(descending=True)
    mass_before = values.exp().cumsum(0) - values.exp()
    allowed = set(ids[mass_before < 0.6].tolist())
    assert set(_draw(lp, SamplingOptions(1.0, top_p=0.6), seed=0, n=1000)) == allowed


def test_top_p_beyond_first_candidates_matches_full_sort():
    lp = _log_probs(vocab=2000, scale=0.3)[:1]  # flat: 0.9 of the mass needs > 256 words
    draws = set(_draw(lp, SamplingOptions(1.0, top_p=0.9), seed=0, n=300))
    values, ids = lp[0].sort(descending=True)
    mass_before = values.exp().cumsum(0) - values.exp()
    assert draws <= set(ids[mass_before < 0.9].tolist()) and len(draws) > 200


def test_repetition_penalty_makes_seen_tokens_rarer():
    lp = _log_probs()[:1]
    best = int(lp[0].argmax())
    plain = _draw(lp, SamplingOptions(1.0), seed=0, history=[best]).count(best)
    penalised = _draw(
        lp, SamplingOptions(1.0, repetition_penalty=3.0), seed=0, history=[best]
    ).count(best)
    assert penalised < plain


def test_seeded_row_draws_the_same_alone_and_in_a_batch():
    lp = _log_probs(rows=8)
    params = SamplingOptions(0.9, top_k=20, top_p=0.95)
    alone = _sample(lp[:1], [params], [make_generator(42)], [[]])[0][0]
    others = [SamplingOptions(1.3)] * 7
    batch = _sample(
        lp,
        [params, *others],
        [make_generator(42)] + [make_generator(i) for i in range(7)],
        [[]] * 8,
    )[0][0]
    assert int(alone) == int(batch)


@pytest.mark.parametrize(
    "field", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"max_new_tokens": -1}]
)
def test_options_refuse_values_that_mean_nothing(field) -> None:
    with pytest.raises(ValueError, match=next(iter(field))):
        SamplingOptions(**field)
