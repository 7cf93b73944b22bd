"""The OpenAI-compatible bodies (app/v1/protocol.py): parameters this server cannot honour are
accepted only with their no-op values, refused saying what to use instead, and a request becomes
the engine's sampling options, nulls and vLLM's "off" values included."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.v1.protocol import CompletionRequest
from model.sampling import SamplingOptions
from tests.app.support import complete

REFUSED = {  # parameter: (a value that would change something, what the refusal says)
    "presence_penalty": (0.5, "use repetition_penalty instead"),
    "frequency_penalty": (-1.0, "use repetition_penalty instead"),
    "logit_bias": ({"5": 10.0}, "only {} or null"),
    "best_of": (2, "ask for n choices instead"),
    "suffix": ("。", "cannot write towards a suffix"),
}


def test_no_op_penalties_and_user_are_accepted(client: TestClient) -> None:
    no_ops = {"presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "best_of": 1,
              "suffix": "", "user": "someone", "seed": None, "logprobs": None}  # fmt: skip
    answer = complete(client, prompt="我", max_tokens=2, **no_ops)
    assert len(answer["choices"]) == 1
    empty = complete(client, prompt="我", max_tokens=0)["choices"][0]
    assert (empty["text"], empty["finish_reason"]) == ("", "length")


@pytest.mark.parametrize("field", REFUSED)
def test_a_parameter_that_would_change_something_is_refused_saying_why(field: str) -> None:
    value, instead = REFUSED[field]
    refusal = f"{field} is not supported by this server: .*{instead}"
    with pytest.raises(ValidationError, match=refusal):
        CompletionRequest(prompt="我", **{field: value})


def test_a_request_becomes_the_engines_sampling_options() -> None:
    given = CompletionRequest(prompt="我", max_tokens=7, temperature=0.5, top_p=0.9, top_k=4,
                              repetition_penalty=1.3, seed=2, stop="。", ignore_eos=True,
                              logprobs=3)  # fmt: skip
    assert given.to_sampling_options() == SamplingOptions(
        temperature=0.5, top_k=4, top_p=0.9, repetition_penalty=1.3, max_new_tokens=7, seed=2,
        stop=("。",), ignore_eos=True, top_logprobs=3,
    )  # fmt: skip
    nulls = CompletionRequest(prompt="我", max_tokens=None, temperature=None, top_p=None,
                              top_k=-1, repetition_penalty=None, stop=None)  # fmt: skip
    assert nulls.to_sampling_options() == SamplingOptions(max_new_tokens=16)
    for off in (0, None):
        assert CompletionRequest(prompt="我", top_k=off).to_sampling_options().top_k is None
    listed = CompletionRequest(prompt="我", stop=["。", "！"]).to_sampling_options()
    assert listed.stop == ("。", "！")
