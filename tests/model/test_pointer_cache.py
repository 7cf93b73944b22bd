"""The continuous cache pointer on a tiny real model's features: what an empty or lam = 0 cache
changes (nothing), normalisation, the two scoring paths agreeing, batch independence, the point
of it all (a repeated rare word becomes likelier), and a weight that follows the cache's fill:
a one-word text's cache no longer predicts its own word, while a constant weight (what a
checkpoint tuned before records) mixes exactly as the paper's formula."""

import math

import pytest
import torch

from model.checkpoint import Checkpoint, load_inference_config
from model.pointer_cache import CacheConfig, PointerCache, mix_rows


@pytest.fixture(scope="module")
def reading(checkpoint: Checkpoint) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """features (T, D), full log-probs (T, V) and targets (T,) of the tiny corpus' first
    lines read as one stream (with some <unk> targets among them)."""
    vocab = checkpoint.vocab
    text = [vocab.eos_id, *vocab.encode(["今天", "的", "天气", "很", "好"])]
    ids = torch.tensor(text * 12 + [vocab.unk_id, 5, vocab.unk_id, 7, vocab.unk_id])
    with torch.inference_mode():
        features, _ = checkpoint.model(ids[None, :-1])
        return features[0], checkpoint.model.log_probs(features[0]), ids[1:]


def _cache(checkpoint: Checkpoint, config: CacheConfig) -> PointerCache:
    return PointerCache(config, checkpoint.model.config.feature_size, checkpoint.vocab.unk_id)


def _gather(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return log_probs.gather(1, targets[:, None])[:, 0]


def test_empty_cache_and_zero_lambda_give_the_model_exactly(checkpoint, reading):
    features, log_probs, targets = reading
    empty = _cache(checkpoint, CacheConfig(window=50, theta=0.3, lam=0.4))
    assert torch.equal(empty.mix(features[0], log_probs[0]), log_probs[0])
    first = empty.score_targets(features[:1], _gather(log_probs, targets)[:1], targets[:1])
    assert torch.equal(first, _gather(log_probs, targets)[:1])
    off = _cache(checkpoint, CacheConfig(window=50, theta=0.3, lam=0.0))
    scored = off.score_targets(features, _gather(log_probs, targets), targets)
    assert torch.equal(scored, _gather(log_probs, targets))
    assert torch.equal(mix_rows([off], features[-1:], log_probs[-1:].clone()), log_probs[-1:])


@pytest.mark.parametrize("unk_takes_mass", [False, True])
def test_mixed_distribution_sums_to_one(checkpoint, reading, unk_takes_mass):
    features, log_probs, targets = reading
    cache = _cache(checkpoint, CacheConfig(20, 0.5, 0.3, unk_takes_mass))
    cache.score_targets(features[:-1], _gather(log_probs, targets)[:-1], targets[:-1])
    mixed = cache.mix(features[-1], log_probs[-1])
    assert not torch.equal(mixed, log_probs[-1])
    assert float(mixed.double().exp().sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("unk_takes_mass", "half_fill", "min_fill"),
    [(False, 0.0, 0), (True, 0.0, 0), (False, 3.0, 0), (False, 3.0, 4)],
)
def test_score_targets_equals_mix_then_append_token_by_token(
    checkpoint, reading, unk_takes_mass, half_fill, min_fill
):
    features, log_probs, targets = reading
    config = CacheConfig(7, 0.5, 0.25, unk_takes_mass, half_fill, min_fill)
    chunked = _cache(checkpoint, config)
    model_logp = _gather(log_probs, targets)
    half = len(targets) // 2  # two chunks: the second reads pairs of the first and its own
    scored = torch.cat(
        [
            chunked.score_targets(features[:half], model_logp[:half], targets[:half]),
            chunked.score_targets(features[half:], model_logp[half:], targets[half:]),
        ]
    )
    stepped = _cache(checkpoint, config)
    expected = []
    for t in range(len(targets)):
        expected.append(stepped.mix(features[t], log_probs[t])[targets[t]])
        stepped.append(features[t], int(targets[t]))
    assert torch.allclose(scored, torch.stack(expected), atol=1e-5)
    assert len(chunked) == len(stepped) == 7


def test_unk_targets_get_cache_mass_only_when_asked(checkpoint, reading):
    features, log_probs, targets = reading
    model_logp = _gather(log_probs, targets)
    is_unk = targets == checkpoint.vocab.unk_id
    conservative = _cache(checkpoint, CacheConfig(100, 0.5, 0.3, unk_takes_mass=False))
    generous = _cache(checkpoint, CacheConfig(100, 0.5, 0.3, unk_takes_mass=True))
    low = conservative.score_targets(features, model_logp, targets)[is_unk][1:]
    high = generous.score_targets(features, model_logp, targets)[is_unk][1:]
    assert torch.allclose(low, model_logp[is_unk][1:] + torch.log1p(torch.tensor(-0.3)))
    assert (high > low).all()


def _filled_caches(checkpoint, reading) -> list[PointerCache]:
    features, log_probs, targets = reading
    configs = [
        CacheConfig(5, 0.5, 0.3),
        CacheConfig(100, 0.2, 0.1, unk_takes_mass=True),
        CacheConfig(30, 1.0, 0.5),
        CacheConfig(30, 1.0, 0.0),
        CacheConfig(8, 0.0, 0.2),
        CacheConfig(30, 0.5, 0.3, half_fill=10.0),
    ]
    caches = [_cache(checkpoint, c) for c in configs]
    for row, cache in enumerate(caches):  # different lengths, some wrapped around their ring
        stop = [len(targets) - 1, 3, 40, 20, 11, 6][row]
        cache.score_targets(features[:stop], _gather(log_probs, targets)[:stop], targets[:stop])
    caches.append(_cache(checkpoint, CacheConfig(10, 0.5, 0.3)))  # an empty one
    return caches


def test_mix_rows_equals_mix_of_each_row_whatever_the_batch(checkpoint, reading):
    features, log_probs, _ = reading
    caches = _filled_caches(checkpoint, reading)
    rows = torch.arange(len(caches)) * 3 % len(features)  # a different query per row
    batched = mix_rows(caches, features[rows], log_probs[rows])
    for i, cache in enumerate(caches):
        alone = cache.mix(features[rows[i]], log_probs[rows[i]])
        assert torch.allclose(batched[i], alone, atol=1e-5)
    order = [4, 0, 6, 5, 2]
    subset = mix_rows([caches[i] for i in order], features[rows[order]], log_probs[rows[order]])
    assert torch.allclose(subset, batched[order], atol=1e-5)


def test_a_repeated_rare_word_becomes_likelier(checkpoint):
    vocab, model = checkpoint.vocab, checkpoint.model
    rare = len(vocab) - 1  # the vocabulary is in frequency order
    line = [vocab.eos_id, *vocab.encode(["中国", "人民", "在", "北京"]), rare, vocab.eos_id]
    ids = torch.tensor(line * 2)
    with torch.inference_mode():
        features, _ = model(ids[None, :-1])
        targets = ids[1:]
        model_logp = model.target_log_probs(features[0], targets)
    cache = _cache(checkpoint, CacheConfig(window=100, theta=0.5, lam=0.2))
    mixed = cache.score_targets(features[0], model_logp, targets)
    second = len(line) + line.index(rare) - 1  # the target position of its second occurrence
    assert int(targets[second]) == rare
    assert float(mixed[second]) > float(model_logp[second]) + 1.0


def test_memory_is_bounded_by_the_window(checkpoint, reading):
    features, _, targets = reading
    cache = _cache(checkpoint, CacheConfig(window=9, theta=0.5, lam=0.2))
    for t in range(len(targets)):
        cache.append(features[t], int(targets[t]))
    size = checkpoint.model.config.feature_size
    assert len(cache) == 9 and cache.nbytes == 9 * (size * 4 + 12)  # W × (4 D + 12), no more
    assert cache.config.max_bytes(size) == cache.nbytes


def test_the_weight_grows_with_the_fill_toward_lambda():
    held = torch.arange(0, 400)
    weight = CacheConfig(window=300, theta=0.3, lam=0.2, half_fill=20.0).weight(held)
    assert float(weight[0]) == 0.0 and float(weight[20]) == pytest.approx(0.1)
    assert (weight[1:] > weight[:-1]).all() and (weight < 0.2).all()
    constant = CacheConfig(window=300, theta=0.3, lam=0.2).weight(held)
    assert float(constant[0]) == 0.0 and (constant[1:] == 0.2).all()


def test_the_cache_is_silent_until_it_holds_min_fill_pairs(checkpoint, reading):
    held = torch.arange(0, 40)
    gated = CacheConfig(window=300, theta=0.3, lam=0.2, half_fill=20.0, min_fill=8)
    open_from_one = CacheConfig(window=300, theta=0.3, lam=0.2, half_fill=20.0)
    assert (gated.weight(held)[:8] == 0).all() and (open_from_one.weight(held)[1:8] > 0).all()
    assert torch.equal(gated.weight(held)[8:], open_from_one.weight(held)[8:])
    features, log_probs, targets = reading
    model_logp = _gather(log_probs, targets)
    mixed = _cache(checkpoint, gated).score_targets(features, model_logp, targets)
    _, usable = _cache(checkpoint, gated).target_log_probs(features, targets)
    silent = usable < 8
    assert silent.any() and (~silent).any()
    assert torch.equal(mixed[silent], model_logp[silent])  # exactly the model's own figure
    assert not torch.equal(mixed[~silent], model_logp[~silent])


def test_a_checkpoint_tuned_before_the_fill_mixes_with_a_constant_lambda(checkpoint, reading):
    # the inference entry tune_cache wrote before half_fill existed
    recorded = {"context": "document", "cache": {"window": 30, "theta": 0.5, "lam": 0.3,
                                                 "unk_takes_mass": False}}  # fmt: skip
    _, config = load_inference_config({"inference": recorded})
    assert config is not None and config.half_fill == 0.0 and config.min_fill == 0
    features, log_probs, targets = reading
    model_logp = _gather(log_probs, targets)
    cache_logp, usable = _cache(checkpoint, config).target_log_probs(features, targets)
    mixed = _cache(checkpoint, config).score_targets(features, model_logp, targets)
    # the paper's p = (1 - lam) p_model + lam p_cache wherever the cache held a usable pair
    paper = torch.logaddexp(model_logp + math.log1p(-0.3), cache_logp + math.log(0.3))
    assert torch.equal(mixed, torch.where(usable > 0, paper, model_logp))
    assert (usable[1:] > 0).all()


def _top_after_one_word(checkpoint: Checkpoint, config: CacheConfig, word: int) -> int:
    """The top next word after the text `word` alone, its cache fed as a service row's is."""
    with torch.inference_mode():
        features, _ = checkpoint.model(torch.tensor([[checkpoint.vocab.eos_id, word]]))
        log_probs = checkpoint.model.log_probs(features[0])
    cache = _cache(checkpoint, config)
    cache.append(features[0, 0], word)  # <eos> was followed by the word
    return int(cache.mix(features[0, 1], log_probs[1]).argmax())


def test_a_one_word_texts_own_word_is_not_its_predicted_successor(checkpoint):
    words = checkpoint.vocab.encode(["中国", "经济", "今天", "发展", "人民", "北京"])
    constant = CacheConfig(window=40, theta=0.3, lam=0.4)  # the tests' tuned checkpoint's
    filling = CacheConfig(window=40, theta=0.3, lam=0.4, half_fill=20.0)
    # a constant weight hands the one word it holds 40% of the mass: it comes first
    assert [_top_after_one_word(checkpoint, constant, w) for w in words] == words
    assert all(_top_after_one_word(checkpoint, filling, w) != w for w in words)


def test_config_round_trips_and_refuses_nonsense():
    config = CacheConfig(window=500, theta=0.3, lam=0.1, unk_takes_mass=True, half_fill=20.0)
    assert CacheConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="lambda"):
        CacheConfig(window=5, theta=0.3, lam=1.0)
    with pytest.raises(ValueError, match="window"):
        CacheConfig(window=0, theta=0.3, lam=0.1)
    with pytest.raises(ValueError, match="half_fill"):
        CacheConfig(window=5, theta=0.3, lam=0.1, half_fill=-1.0)
    with pytest.raises(ValueError, match="min_fill"):
        CacheConfig(window=5, theta=0.3, lam=0.1, min_fill=-2)
    with pytest.raises(ValueError, match="unknown"):
        CacheConfig.from_dict({**config.to_dict(), "size": 3})
