"""One completion choice as it is released (app/v1/choices.py): its logprobs hold the top tokens
and the chosen one, a stop string is left out of its text (held back until no stop string can
claim it), and the end of text is a "stop" with its <eos> entry."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.v1.choices import ChoiceText, Delta, top_dict
from app.v1.protocol import CompletionLogprobs
from model.rows import FinishEvent, TokenEvent
from tests.app.support import complete, sse_events


def _released(choice: ChoiceText, pieces: list[str], finish_reason: str) -> list[str]:
    """The text each call releases: one per token, then the finish."""
    events = [TokenEvent(i, piece, piece, -1.0) for i, piece in enumerate(pieces)]
    released = [choice.add(event).text for event in events]
    finish = FinishEvent("".join(pieces), finish_reason, 1, 1, len(pieces))
    return [*released, choice.finish(finish).text]


def test_logprobs_hold_the_top_tokens_and_the_chosen_one(client: TestClient) -> None:
    answer = complete(client, prompt="今天", max_tokens=10, logprobs=3, seed=2, ignore_eos=True)
    logprobs = answer["choices"][0]["logprobs"]
    text = answer["choices"][0]["text"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == 10
    for token, logprob, top, offset in zip(*logprobs.values(), strict=True):
        assert top[token] == logprob and 3 <= len(top) <= 4
        assert max(top.values()) >= logprob
        assert text[offset:].lstrip().startswith(token)


def test_stop_string_is_left_out_of_the_text(client: TestClient) -> None:
    base = {"prompt": "我们", "max_tokens": 60, "seed": 4, "ignore_eos": True}
    full = complete(client, **base)["choices"][0]["text"]
    stop = full[5:7]  # two characters the text is known to reach
    cut = complete(client, **base, stop=stop, logprobs=0)["choices"][0]
    assert cut["text"] == full[: full.find(stop)] and cut["finish_reason"] == "stop"
    with client.stream(
        "POST", "/v1/completions", json={**base, "stop": [stop], "stream": True}
    ) as r:
        chunks = sse_events(r.iter_lines())[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks) == cut["text"]


def test_end_of_text_is_stop_with_its_eos_entry(client: TestClient) -> None:
    for seed in range(40):  # a seed whose text ends at <eos> within 40 tokens
        answer = complete(client, prompt="我们去北京。", max_tokens=40, seed=seed, logprobs=0)
        if answer["choices"][0]["finish_reason"] == "stop":
            break
    logprobs = answer["choices"][0]["logprobs"]
    assert logprobs["tokens"][-1] == "<eos>"
    assert logprobs["text_offset"][-1] == len(answer["choices"][0]["text"])
    assert answer["usage"]["completion_tokens"] == len(logprobs["tokens"])


def test_text_is_held_back_only_while_a_stop_string_could_claim_it() -> None:
    # the longest stop string has 2 characters: the last character is held until the next token
    released = _released(ChoiceText(("北京",), 0, False), ["我", "爱", "北京"], "stop_sequence")
    assert released == ["", "我", "爱", ""]
    released = _released(ChoiceText(("北京",), 0, False), ["我", "爱", "天"], "length")
    assert released == ["", "我", "爱", "天"]
    assert _released(ChoiceText((), 0, False), ["我", "爱"], "length") == ["我", "爱", ""]


def test_a_stop_string_across_tokens_is_left_out_whole() -> None:
    # "北京" arrives as two tokens: neither its first character nor the rest is released
    released = _released(ChoiceText(("北京",), 0, False), ["我", "爱", "北", "京"], "stop_sequence")
    assert "".join(released) == "我爱"


def test_deltas_add_up_and_the_chosen_token_is_always_among_the_top() -> None:
    assert top_dict("我", None, (("你", -0.5),)) is None  # nothing predicts a leading <eos>
    assert top_dict("我", -1.5, (("你", -0.5),)) == {"你": -0.5, "我": -1.5}
    whole = Delta("我")
    entry = CompletionLogprobs(
        tokens=["爱"], token_logprobs=[-1.0], top_logprobs=[None], text_offset=[1]
    )
    whole.extend(Delta("爱", entry))
    whole.extend(Delta("", None, "stop"))
    assert (whole.text, whole.finish_reason) == ("我爱", "stop")
    assert whole.logprobs is not None and whole.logprobs.text_offset == [1]
