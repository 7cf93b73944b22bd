"""The real clients of the OpenAI protocol against a live uvicorn on the tiny checkpoint: the
openai SDK, LangChain's OpenAI (langchain-openai) and lm-evaluation-harness's
local-completions with the remote tokenizer, run as its command line on task YAMLs of our own
that read local JSON files (nothing leaves 127.0.0.1)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from langchain_openai import OpenAI as LangChainOpenAI

from model.tokenizers import TokenizerSpec
from model.train.corpora import PEOPLES_DAILY
from model.train.data import open_store
from tests.app.support import metric
from tests.live_server import uvicorn_server

SAMPLING = {"temperature": 0.8, "top_p": 0.9, "seed": 21}
KEY = "sk-nextword-test"


@pytest.fixture(scope="module")
def keyed_url(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server that wants the API key KEY."""
    log_dir = tmp_path_factory.mktemp("keyed")
    with uvicorn_server(tiny_checkpoint, log_dir, threads="1", api_key=KEY) as url:
        yield url


@pytest.fixture(scope="module")
def sdk(keyed_url: str) -> openai.OpenAI:
    """The openai SDK on the keyed server, without retries (a retry would hide an error)."""
    return openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEY, max_retries=0, timeout=30)


def native(url: str, path: str, body: dict) -> dict:
    """POST to one of nextword's own routes of the keyed server."""
    headers = {"Authorization": f"Bearer {KEY}"}
    response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# -- the openai SDK -----------------------------------------------------------------------------
def test_sdk_completion_equals_generate_and_stream_yields_the_same(sdk, keyed_url) -> None:
    generated = native(keyed_url, "/generate", {"prompt": "今天", "max_new_tokens": 25, **SAMPLING})
    completion = sdk.completions.create(model="nextword", prompt="今天", max_tokens=25, **SAMPLING)
    assert completion.choices[0].text == generated["generated_text"]
    assert completion.usage.prompt_tokens == generated["usage"]["prompt_tokens"]
    chunks = list(
        sdk.completions.create(
            model="nextword", prompt="今天", max_tokens=25, stream=True,
            stream_options={"include_usage": True}, **SAMPLING,
        )
    )  # fmt: skip
    assert "".join(c.choices[0].text for c in chunks if c.choices) == generated["generated_text"]
    assert chunks[-1].usage.total_tokens == completion.usage.total_tokens


def test_sdk_echo_logprobs_equal_perplexity(sdk, keyed_url) -> None:
    text = "中国人民银行今天宣布，从明天起下调存款利率。"
    (scored,) = native(keyed_url, "/perplexity", {"text": text, "details": True})["results"]
    completion = sdk.completions.create(
        model="nextword", prompt=text, echo=True, logprobs=1, max_tokens=0
    )
    logprobs = completion.choices[0].logprobs
    expected = [t["logprob"] for t in scored["tokens"][:-1]]  # without the closing <eos>
    assert logprobs.token_logprobs == pytest.approx(expected, abs=1e-4)
    assert completion.choices[0].text == text


def test_sdk_bad_parameter_is_bad_request_and_no_key_is_refused(sdk, keyed_url) -> None:
    retrying = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEY, max_retries=2)
    refusals = {"route": "/v1/completions", "status": "400"}
    before = metric(httpx.get(f"{keyed_url}/metrics").text, "nextword_requests_total", **refusals)
    with pytest.raises(openai.BadRequestError) as refused:
        retrying.completions.create(model="nextword", prompt="我", presence_penalty=1.0)
    after = metric(httpx.get(f"{keyed_url}/metrics").text, "nextword_requests_total", **refusals)
    assert refused.value.body["param"] == "presence_penalty"
    assert after - before == 1  # answered once: the SDK does not retry a 400
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="我")
    assert (unknown.value.body["code"], unknown.value.body["param"]) == ("model_not_found", "model")
    wrong = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    assert [m.id for m in sdk.models.list()] == ["nextword"]


# -- LangChain ----------------------------------------------------------------------------------
def test_langchain_openai_invoke_and_batch(keyed_url) -> None:
    llm = LangChainOpenAI(
        model="nextword", base_url=f"{keyed_url}/v1", api_key=KEY, max_tokens=12,
        temperature=0.8, top_p=0.9, seed=21, max_retries=0,
    )  # fmt: skip
    generated = native(keyed_url, "/generate", {"prompt": "今天", "max_new_tokens": 12, **SAMPLING})
    assert llm.invoke("今天") == generated["generated_text"]
    prompts = ["今天", "我爱", "人民日报"]
    answers = llm.batch(prompts)
    assert answers[0] == generated["generated_text"] and len(answers) == 3
    for prompt, answer in zip(prompts[1:], answers[1:], strict=True):
        alone = native(keyed_url, "/generate", {"prompt": prompt, "max_new_tokens": 12, **SAMPLING})
        assert answer == alone["generated_text"]


# -- lm-evaluation-harness ----------------------------------------------------------------------
def _write_task(folder: Path, name: str, docs: list[dict], config: dict) -> None:
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    task = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {
        "test": str(data)}}, "test_split": "test", **config}  # fmt: skip
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(task, allow_unicode=True), "utf-8")


def _choice_docs(lines: list[str]) -> list[dict]:
    """Each line cut in two: which of three endings (its own and two others') follows?"""
    halves = [(line[: len(line) // 2], line[len(line) // 2 :]) for line in lines]
    docs = []
    for i, (context, ending) in enumerate(halves):
        others = [halves[(i + k) % len(halves)][1] for k in (1, 2)]
        choices = [*others[: i % 3], ending, *others[i % 3 :]]
        docs.append({"context": context, "choices": choices, "answer": i % 3})
    return docs


def _continuation_logprob(url: str, context: str, ending: str) -> float:
    """log P(ending | context) from /perplexity and /tokenize, split as lm-eval splits it."""
    scored = native(url, "/perplexity", {"text": context + ending, "details": True})
    whole = scored["results"][0]["tokens"]
    context_tokens = native(url, "/tokenize", {"prompt": context})["count"]
    return sum(t["logprob"] for t in whole[context_tokens:-1])


def test_lm_eval_local_completions_with_the_remote_tokenizer(keyed_url, tmp_path) -> None:
    test = open_store(PEOPLES_DAILY, TokenizerSpec("jieba"), progress=False).token_lines("test")
    lines = [text for text in map("".join, test) if 10 <= len(text) <= 60][:6]
    _write_task(tmp_path, "nextword_rolling", [{"text": t} for t in lines], {
        "output_type": "loglikelihood_rolling", "doc_to_text": "",
        # the end of the text is scored too, as nextword's perplexity scores it
        "doc_to_target": "{{text}}<eos>", "metric_list": [{"metric": "word_perplexity"}],
    })  # fmt: skip
    choices = _choice_docs(lines)
    _write_task(tmp_path, "nextword_choice", choices, {
        "output_type": "multiple_choice", "doc_to_text": "{{context}}",
        "doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}", "target_delimiter": "",
        "metric_list": [{"metric": "acc"}],
    })  # fmt: skip
    model_args = (
        f"base_url={keyed_url}/v1/completions,tokenizer_backend=remote,model=nextword,"
        f"auth_token={KEY},max_retries=1"
    )
    command = [
        sys.executable, "-m", "lm_eval", "run", "--model", "local-completions",
        "--model_args", model_args, "--tasks", "nextword_rolling,nextword_choice",
        "--include_path", str(tmp_path), "--batch_size", "4",
        "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    offline = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": KEY,
               "HF_HOME": str(tmp_path / "hf"), "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    run = subprocess.run(
        command, env={**os.environ, **offline}, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    samples = {
        path.name.split("_")[1] + "_" + path.name.split("_")[2]: [
            json.loads(line) for line in path.read_text("utf-8").splitlines()
        ]
        for path in (tmp_path / "out").rglob("samples_*.jsonl")
    }
    rolling = sorted(samples["nextword_rolling"], key=lambda s: s["doc_id"])
    for sample, line in zip(rolling, lines, strict=True):
        (scored,) = native(keyed_url, "/perplexity", {"text": line})["results"]
        total_nll = scored["mean_nll"] * scored["num_tokens"]
        assert -_loglikelihood(sample) == pytest.approx(total_nll, abs=1e-4)
    expected = [
        max(range(3), key=lambda k: _continuation_logprob(keyed_url, d["context"], d["choices"][k]))
        == d["answer"]
        for d in choices
    ]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text("utf-8"))
    accuracy = results["results"]["nextword_choice"]["acc,none"]
    print(f"lm-eval multiple-choice accuracy on {len(choices)} People's Daily lines: {accuracy}")
    assert accuracy == pytest.approx(sum(expected) / len(expected))
    assert not math.isnan(accuracy)


def _loglikelihood(sample: dict) -> float:
    """The document's log-likelihood as lm-eval logged it."""
    response = sample["filtered_resps"][0]
    return float(response[0] if isinstance(response, list) else response)
