"""POST /fill-blank (app/routes/fill_blank.py) on the tiny real checkpoints, forward and
backward, float weights so the figures compare with the model's own: the words ranked by the
whole line's log-probability, each with its probability given each side; every filled line
scored in one call into the forward engine; edges defined; bad blanks, over-long texts and a
backward model asked to rank refused with a 4xx that says why."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from app.main import create_app
from app.routes import fill_blank
from model.checkpoint import Checkpoint, load_checkpoint
from model.fill_blank import FORWARD_ONLY_CANDIDATES, WITH_BACKWARD_CANDIDATES
from model.scoring import score_lines
from model.tokenizers import TextEncoder, build_tokenizer
from tests.app.support import error_of
from tests.oracles import read_prompt

LEFT, RIGHT = "中国人民", "今天宣布。"
TEXT = f"{LEFT}___{RIGHT}"


def with_fill_blank(app: FastAPI) -> FastAPI:
    """The app with POST /fill-blank, ahead of the playground's mount at / (a no-op once
    app/main.py registers the router itself)."""
    if not any(getattr(route, "path", None) == "/fill-blank" for route in app.routes):
        app.include_router(fill_blank.router)
        app.router.routes.sort(key=lambda route: isinstance(route, Mount))  # stable
    return app


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path, backward_checkpoint: Path) -> dict[str, Path]:
    return {"forward": tiny_checkpoint, "backward": backward_checkpoint}


@pytest.fixture(scope="module")
def both(make_settings, models) -> Iterator[TestClient]:
    """Both models served, float weights."""
    app = with_fill_blank(create_app(make_settings(models=models, quantize="none")))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def forward_only(make_settings) -> Iterator[TestClient]:
    """The forward model alone, with small text limits."""
    settings = make_settings(quantize="none", max_text_chars=60, max_text_tokens=12)
    with TestClient(with_fill_blank(create_app(settings))) as client:
        yield client


@pytest.fixture(scope="module")
def loaded(models) -> dict[str, tuple[Checkpoint, TextEncoder]]:
    """Each model on its own, float, with an encoder that reads left to right."""
    checkpoints = {name: load_checkpoint(directory) for name, directory in models.items()}
    return {
        name: (c, TextEncoder(build_tokenizer(c.tokenizer_spec), c.vocab))
        for name, c in checkpoints.items()
    }


def fill(client: TestClient, **body: object) -> dict:
    response = client.post("/fill-blank", json={"text": TEXT, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_words_rank_by_the_whole_lines_log_probability_with_each_sides_view(both, loaded):
    answer = fill(both, top_k=6, candidates=8)
    assert answer["models"] == {"forward": "forward", "backward": "backward"}
    forward, encoder = loaded["forward"]
    left, right = encoder.encode(LEFT), encoder.encode(RIGHT)
    assert [t["token"] for t in answer["left"]] == left.tokens
    assert [t["token"] for t in answer["right"]] == right.tokens
    words = answer["candidates"]
    assert len(words) == 6
    assert [w["line_logprob"] for w in words] == sorted(
        (w["line_logprob"] for w in words), reverse=True
    )
    lines = [[*left.ids, forward.vocab.stoi[w["token"]], *right.ids] for w in words]
    backward, _ = loaded["backward"]
    before_gap, _ = read_prompt(backward.model, right.ids[::-1], backward.vocab.eos_id)
    expected = score_lines(forward.model, lines, forward.vocab.eos_id)
    for word, scores in zip(words, expected, strict=True):
        assert word["line_logprob"] == pytest.approx(float(scores.sum()), abs=1e-4)
        assert word["left_prob"] == pytest.approx(math.exp(scores[len(left.ids)]), rel=1e-4)
        right_logprob = float(before_gap[backward.vocab.stoi[word["token"]]])
        assert word["right_prob"] == pytest.approx(math.exp(right_logprob), rel=1e-4)
        assert set(word["proposed_by"]) <= {"forward", "backward"} and word["proposed_by"]
    assert all(w["token"] not in ("<unk>", "<eos>") for w in words)


def test_each_side_is_read_once_per_model_and_every_line_scored_in_one_call(
    both, loaded, monkeypatch
):
    """The backward model reads the right side once, proposing its words and giving its
    probability of every word; the forward model then reads the left side once, proposes its
    words at the blank and scores every filled line, in one call."""
    calls: list[tuple[str, str, int]] = []  # (model, method, words asked)
    for name, engine in both.app.state.engines.items():
        real_fill, real_predict = engine.fill_lines, engine.predict_next

        async def fill_lines(gap, proposer, _name=name, _real=real_fill):
            calls.append((_name, "fill_lines", proposer.ask))
            return await _real(gap, proposer)

        async def predict(
            text, top_k, cache=True, every_word=False, _name=name, _real=real_predict
        ):
            calls.append((_name, "predict", top_k))
            assert every_word and not cache
            return await _real(text, top_k, cache, every_word)

        monkeypatch.setattr(engine, "fill_lines", fill_lines)
        monkeypatch.setattr(engine, "predict_next", predict)
    answer = fill(both, top_k=3, candidates=8)
    assert calls == [("backward", "predict", 9), ("forward", "fill_lines", 9)]
    assert len(answer["candidates"]) == 3
    calls.clear()  # the defaults: 8 words each with a backward model, 32 from the forward alone
    fill(both, top_k=3)
    fill(both, top_k=3, backward=False)
    assert calls == [
        ("backward", "predict", WITH_BACKWARD_CANDIDATES + 1),
        ("forward", "fill_lines", WITH_BACKWARD_CANDIDATES + 1),
        ("forward", "fill_lines", FORWARD_ONLY_CANDIDATES + 1),
    ]


def test_the_route_makes_one_call_into_the_engine_per_request(both, monkeypatch):
    """Proposing, scoring and ranking belong to the engine's entry point: the route validates,
    encodes and calls it once."""
    calls: list[dict] = []
    real = fill_blank.fill_in_blank

    async def counting(forward, gap, top_k, candidates=None, backward=None):
        calls.append({"top_k": top_k, "candidates": candidates, "backward": backward})
        return await real(forward, gap, top_k, candidates, backward)

    monkeypatch.setattr(fill_blank, "fill_in_blank", counting)
    fill(both, top_k=4)
    fill(both, top_k=2, backward=False)
    assert [c["top_k"] for c in calls] == [4, 2]
    assert calls[0]["backward"] is not None and calls[1]["backward"] is None


@pytest.mark.parametrize("served", ["forward only", "both, backward false"])
def test_without_a_backward_model_only_the_forward_one_proposes(forward_only, both, served):
    if served == "forward only":
        answer, name = fill(forward_only, top_k=5, candidates=5), "nextword"
    else:
        answer, name = fill(both, top_k=5, candidates=5, backward=False), "forward"
    assert answer["models"] == {"forward": name, "backward": None}
    assert len(answer["candidates"]) == 5
    assert all(w["right_prob"] is None for w in answer["candidates"])
    assert all(w["proposed_by"] == ["forward"] for w in answer["candidates"])


def test_at_least_top_k_words_are_proposed_whatever_the_candidates(both):
    assert len(fill(both, top_k=12, candidates=1)["candidates"]) == 12


@pytest.mark.parametrize(
    ("text", "left", "right"),
    [("___今天宣布。", "", "今天宣布。"), ("中国人民___", "中国人民", ""), ("___", "", "")],
)
def test_a_blank_at_an_edge_begins_or_ends_the_line(both, loaded, text, left, right):
    forward, encoder = loaded["forward"]
    words = fill(both, text=text, top_k=3)["candidates"]
    ids = encoder.encode(left).ids, encoder.encode(right).ids
    lines = [[*ids[0], forward.vocab.stoi[w["token"]], *ids[1]] for w in words]
    expected = score_lines(forward.model, lines, forward.vocab.eos_id)  # each with its <eos>
    for word, scores in zip(words, expected, strict=True):
        assert word["line_logprob"] == pytest.approx(float(scores.sum()), abs=1e-4)


def test_the_request_names_its_own_marker(both):
    named = fill(both, text=f"{LEFT}[MASK]{RIGHT}", blank="[MASK]", top_k=4)
    assert named["candidates"] == fill(both, top_k=4)["candidates"]


@pytest.mark.parametrize(
    ("body", "status", "error_type", "message"),
    [
        ({"text": "中国人民今天宣布。"}, 422, "validation_error", "text: the text holds no blank"),
        ({"text": "___人民___"}, 422, "validation_error", "holds 2 blanks '___'"),
        ({"text": "中国___\n今天"}, 422, "validation_error", "holds 2 lines"),
        ({"text": TEXT, "blank": "  "}, 422, "validation_error", "blank"),
        ({"text": TEXT, "top_k": 0}, 422, "validation_error", "top_k"),
        ({"text": TEXT, "candidates": 33}, 422, "validation_error", "candidates"),
        ({}, 422, "validation_error", "text"),
        ({"text": TEXT, "model": "backward"}, 400, "unsupported_by_model", "reads right to left"),
        ({"text": TEXT, "model": "sideways"}, 404, "model_not_found", "'sideways'"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(both, body, status, error_type, message):
    answer = error_of(both.post("/fill-blank", json=body))
    assert answer[:2] == (status, error_type) and message in answer[2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("我们" * 40 + "___", "characters long; the limit is 60 (NEXTWORD_MAX_TEXT_CHARS)"),
        ("我们" * 8 + "___" + "你们" * 8, "tokens; the limit is 12 (NEXTWORD_MAX_TEXT_TOKENS)"),
    ],
)
def test_an_over_long_text_is_refused_before_any_work(forward_only, text, message):
    status, error_type, error = error_of(forward_only.post("/fill-blank", json={"text": text}))
    assert (status, error_type) == (413, "too_large") and message in error
