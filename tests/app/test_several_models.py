"""Several models in one service (NEXTWORD_MODELS; app/main.py loads one engine each): the tiny
forward checkpoint served as "forward" beside the tiny backward one as "backward". A request's
`model` reaches the model it names, each model runs its own batch, an unknown name is a 404
naming the models served, and the metrics tell the models apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model.checkpoint import load_checkpoint, load_direction
from model.direction import in_reading_order
from model.scoring import perplexity_of, score_lines
from model.tokenizers import TextEncoder, build_tokenizer
from tests.app.support import complete, error_of, metric, openai_error_of

TEXT = "我爱北京。\n天安门上太阳升。"


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path, backward_checkpoint: Path) -> dict[str, Path]:
    return {"forward": tiny_checkpoint, "backward": backward_checkpoint}


@pytest.fixture(scope="module")
def two(make_settings, models) -> Iterator[TestClient]:
    """One app serving both models, float weights (figures comparable with evaluation's)."""
    with TestClient(create_app(make_settings(models=models, quantize="none"))) as client:
        yield client


def own_perplexity(directory: Path, text: str) -> float:
    """The figure model.evaluate gives text (each line afresh, in the model's reading order)
    with the float checkpoint at directory."""
    checkpoint = load_checkpoint(directory)
    encoder = TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)
    lines = [encoder.encode(line).ids for line in text.splitlines()]
    ordered = in_reading_order(lines, load_direction(checkpoint))
    return perplexity_of(score_lines(checkpoint.model, ordered, checkpoint.vocab.eos_id))[0]


def test_every_model_is_listed_described_and_ready_the_first_the_default(two) -> None:
    assert two.get("/ready").json() == {"ready": True, "reason": None}
    assert [card["id"] for card in two.get("/v1/models").json()["data"]] == ["forward", "backward"]
    info = two.get("/info").json()
    assert info["default_model"] == "forward" and list(info["models"]) == ["forward", "backward"]
    assert {k: info[k] for k in info["models"]["forward"]} == info["models"]["forward"]
    directions = {name: card["serving"]["direction"] for name, card in info["models"].items()}
    assert directions == {"forward": "forward", "backward": "backward"}


def test_perplexity_is_the_named_models_own_figure(two, models) -> None:
    def perplexity(**choice: str) -> float:
        (result,) = two.post("/perplexity", json={"text": TEXT, **choice}).json()["results"]
        return result["perplexity"]

    forward, backward = perplexity(model="forward"), perplexity(model="backward")
    assert forward != pytest.approx(backward, rel=1e-3)
    assert forward == pytest.approx(own_perplexity(models["forward"], TEXT), rel=1e-5)
    assert backward == pytest.approx(own_perplexity(models["backward"], TEXT), rel=1e-5)
    assert perplexity() == forward  # no model: the default


def test_the_forward_model_continues_text_and_the_backward_one_refuses(two) -> None:
    for path, body in (("/generate", {"prompt": "我们", "max_new_tokens": 3}),
                       ("/predict-next", {"text": "我们"})):  # fmt: skip
        assert two.post(path, json={**body, "model": "forward"}).status_code == 200
        status, error_type, message = error_of(two.post(path, json={**body, "model": "backward"}))
        assert (status, error_type) == (400, "unsupported_by_model") and path in message
    named = complete(two, model="forward", prompt="我", max_tokens=2, seed=1)
    default = complete(two, prompt="我", max_tokens=2, seed=1)
    assert named["model"] == default["model"] == "forward"
    assert named["choices"] == default["choices"] and named["choices"][0]["text"]
    backward = {"model": "backward", "prompt": "我", "max_tokens": 2}
    status, error = openai_error_of(two.post("/v1/completions", json=backward))
    assert (status, error["code"]) == (400, "unsupported_by_model")


def test_the_tokenizer_routes_answer_for_the_model_named(two) -> None:
    def tokens(**choice: str) -> list[int]:
        return two.post("/tokenize", json={"prompt": "我爱北京", **choice}).json()["tokens"]

    # each model's ids in its reading order: the backward model reads the text right to left
    assert tokens(model="backward") == tokens(model="forward")[::-1] != tokens(model="forward")
    assert tokens() == tokens(model="forward")
    text = two.post("/detokenize", json={"model": "forward", "tokens": tokens()}).json()
    assert text == {"prompt": "我爱北京"}
    for name in ("forward", "backward"):
        info = two.get("/tokenizer_info", params={"model": name}).json()
        assert info["eos_token"] == "<eos>"


def test_an_unknown_model_is_404_or_400_under_v1_naming_the_models_served(two) -> None:
    for path, body in (("/predict-next", {"text": "我"}), ("/generate", {}),
                       ("/perplexity", {"text": "我"})):  # fmt: skip
        status, error_type, message = error_of(two.post(path, json={**body, "model": "gpt-4"}))
        assert (status, error_type) == (404, "model_not_found")
        assert "'gpt-4'" in message and "'forward', 'backward'" in message
    for method, path, request in (
        ("POST", "/v1/completions", {"json": {"model": "gpt-4", "prompt": "我"}}),
        ("POST", "/tokenize", {"json": {"model": "gpt-4", "prompt": "我"}}),
        ("GET", "/v1/tokenizer_info", {"params": {"model": "gpt-4"}}),
    ):
        status, error = openai_error_of(two.request(method, path, **request))
        assert (status, error["code"], error["param"]) == (400, "model_not_found", "model")
        assert "'forward', 'backward'" in error["message"]


def test_the_openapi_schema_lists_the_served_names_wherever_model_is_taken(two) -> None:
    schema = two.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    requests = [
        name
        for name, body in components.items()
        if name.endswith("Request") and "model" in body.get("properties", {})
    ]
    assert len(requests) == 7  # predict, generate, perplexity, fill-blank, completion, tokenizer
    queries = [schema["paths"][f"{prefix}/tokenizer_info"]["get"]["parameters"][0]["schema"]
               for prefix in ("", "/v1")]  # fmt: skip
    served = [["forward", "backward"], None]  # a served name, or null for the default
    for field in [*(components[name]["properties"]["model"] for name in requests), *queries]:
        assert [variant.get("enum") for variant in field["anyOf"]] == served


def test_metrics_carry_the_model_that_answered(two) -> None:
    before = two.get("/metrics").text
    scored = {
        name: two.post("/perplexity", json={"text": TEXT, "model": name}).json()["results"][0]
        for name in ("forward", "backward")
    }
    generated = complete(two, model="forward", prompt="我", max_tokens=3, ignore_eos=True)
    two.post("/perplexity", json={"text": TEXT, "model": "gpt-4"})
    after = two.get("/metrics").text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    for name in ("forward", "backward"):
        ok = {"route": "/perplexity", "status": "200", "model": name}
        assert moved("nextword_requests_total", **ok) == 1
        assert moved("nextword_scored_tokens_total", model=name) == scored[name]["num_tokens"]
        assert metric(after, "nextword_model_info", model=name) == 1
    unknown = {"route": "/perplexity", "status": "404", "model": ""}
    assert moved("nextword_requests_total", **unknown) == 1
    tokens = generated["usage"]["completion_tokens"]
    assert moved("nextword_generated_tokens_total", model="forward") == tokens
    assert moved("nextword_generated_tokens_total", model="backward") == 0


def test_each_model_has_its_own_batch(make_settings, models) -> None:
    """With one batch slot each and no queue, a generation holding the forward model's slot
    turns the next forward request away (429) while the backward model still answers."""
    settings = make_settings(models=models, max_batch_size=1, max_waiting=0,
                             max_new_tokens=100_000)  # fmt: skip
    endless = {"prompt": "我", "max_new_tokens": 100_000, "ignore_eos": True, "stream": True}
    with (
        TestClient(create_app(settings)) as narrow,
        narrow.stream("POST", "/generate", json=endless) as generating,
    ):
        lines = generating.iter_lines()  # kept: dropping it would close the stream
        next(line for line in lines if line.startswith("data:"))
        refused = narrow.post("/perplexity", json={"text": "我", "model": "forward"})
        answered = narrow.post("/perplexity", json={"text": "我", "model": "backward"})
    assert error_of(refused)[:2] == (429, "overloaded")
    assert answered.status_code == 200
