"""A real uvicorn in a subprocess on a free loopback port, called over HTTP: every endpoint,
the event stream read by a real client, liveness during a long generation, seeded
determinism amid concurrent requests, disconnection and overload. Only loopback traffic;
every wait is bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.app.support import metric, sse_events

TIMEOUT = httpx.Timeout(30.0)


def first_event(lines: Iterator[str]) -> str:
    """The first `data:` line of a stream. Keep `lines` referenced while the stream should stay
    open: closing httpx's line iterator closes the connection."""
    return next(line for line in lines if line.startswith("data:"))


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=TIMEOUT).text


def wait_for_held(url: str, held: tuple[int, int], seconds: float = 10.0) -> str:
    """The first scrape showing (running, waiting) sequences == held (fails after seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        text = scrape(url)
        now = metric(text, "nextword_batch_size"), metric(text, "nextword_queue_size")
        if now == held:
            return text
        assert time.monotonic() < deadline, f"(running, waiting) = {now} after {seconds} s"
        time.sleep(0.05)


def wait_until_idle(url: str, seconds: float = 10.0) -> str:
    """The first scrape showing no running and no waiting sequence (fails after seconds)."""
    return wait_for_held(url, (0, 0), seconds)


def test_every_endpoint_answers_over_http(live_url: str) -> None:
    with httpx.Client(base_url=live_url, timeout=TIMEOUT) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").json()["ready"] is True
        assert http.get("/info").json()["model"]["cell"] == "lstm"
        assert http.get("/openapi.json").json()["paths"].keys() >= {"/generate", "/perplexity"}
        assert http.get("/docs").status_code == 200
        predicted = http.post("/predict-next", json={"text": "我爱", "top_k": 3}).json()
        assert len(predicted["candidates"]) == 3
        generated = http.post("/generate", json={"prompt": "我爱", "max_new_tokens": 5}).json()
        assert generated["usage"]["prompt_tokens"] == 2
        scored = http.post("/perplexity", json={"texts": ["我爱北京", "今天"]}).json()
        assert len(scored["results"]) == 2
        assert metric(http.get("/metrics").text, "nextword_requests_total", route="/info") >= 1


def test_stream_arrives_event_by_event(live_url: str) -> None:
    request = {"prompt": "我爱", "max_new_tokens": 40, "seed": 8, "stream": True}
    with httpx.stream("POST", f"{live_url}/generate", json=request, timeout=TIMEOUT) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
    *tokens, final, done = events
    assert done == "[DONE]" and final["seed"] == 8
    assert "".join(t["text"] for t in tokens) == final["generated_text"]
    assert final["usage"]["generated_tokens"] == len(tokens)


def test_health_answers_between_the_tokens_of_a_500_token_generation(live_url: str) -> None:
    started, finished = threading.Event(), threading.Event()
    request = {"prompt": "我", "max_new_tokens": 500, "ignore_eos": True, "stream": True}
    events: list[object] = []

    def generate() -> None:
        with httpx.stream("POST", f"{live_url}/generate", json=request, timeout=TIMEOUT) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    started.set()
                    events.append(line)
        finished.set()

    # how many tokens streamed while each /health call was in flight: a health check that
    # waited for the generation would see all 500; one answered between steps sees a few (a
    # loaded machine may delay a single call by a dozen or two)
    streamed_during = []
    with httpx.Client(base_url=live_url, timeout=TIMEOUT) as http:
        http.get("/health")  # the connection is open before the generation starts
        thread = threading.Thread(target=generate)
        thread.start()
        assert started.wait(30)
        while not finished.is_set() and len(streamed_during) < 200:
            before = len(events)
            assert http.get("/health").status_code == 200
            if not finished.is_set():
                streamed_during.append(len(events) - before)
        thread.join(30)
    assert finished.is_set() and len(events) == 500 + 2  # tokens, final event, [DONE]
    assert len(streamed_during) >= 3, streamed_during  # answered while the tokens still came
    assert sorted(streamed_during)[len(streamed_during) // 2] <= 10, streamed_during
    assert max(streamed_during) < 100, streamed_during


def test_seeded_request_same_text_alone_and_amid_15_concurrent(live_url: str) -> None:
    seeded = {"prompt": "今天", "max_new_tokens": 50, "seed": 77, "temperature": 0.9,
              "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.2}  # fmt: skip
    others = [
        {"prompt": prompt, "max_new_tokens": 30 + 5 * i, "temperature": 1.0 + i / 10}
        for i, prompt in enumerate(["", "我爱", "新华社北京电", "人民日报", "中国"] * 3)
    ]

    def post(body: dict) -> dict:
        response = httpx.post(f"{live_url}/generate", json=body, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    alone = post(seeded)
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, [*others[:8], seeded, *others[8:]]))
    assert len(answers) == 16
    assert answers[8] == alone


def test_metrics_parse_and_counters_move_over_http(live_url: str) -> None:
    before = wait_until_idle(live_url)
    for _ in range(3):
        httpx.post(f"{live_url}/predict-next", json={"text": "我"}, timeout=TIMEOUT)
    httpx.post(f"{live_url}/generate", json={"prompt": "x", "temperature": -1}, timeout=TIMEOUT)
    after = scrape(live_url)
    route, invalid = {"route": "/predict-next"}, {"route": "/generate", "status": "422"}
    assert (
        metric(after, "nextword_requests_total", **route)
        - metric(before, "nextword_requests_total", **route)
        == 3
    )
    assert (
        metric(after, "nextword_requests_total", **invalid)
        - metric(before, "nextword_requests_total", **invalid)
        == 1
    )
    assert metric(after, "nextword_request_duration_seconds_count", **route) >= 3


def test_full_engine_answers_429_with_retry_after_at_once(narrow_url: str) -> None:
    endless = {"prompt": "我", "max_new_tokens": 200_000, "ignore_eos": True, "stream": True}
    generate = f"{narrow_url}/generate"
    with httpx.stream("POST", generate, json=endless, timeout=TIMEOUT) as running:
        running_lines = running.iter_lines()
        first_event(running_lines)
        with httpx.stream("POST", generate, json=endless, timeout=TIMEOUT) as waiting:
            assert waiting.status_code == 200  # queued: its events come when a slot frees
            refused = httpx.post(f"{narrow_url}/predict-next", json={"text": "我"}, timeout=TIMEOUT)
            # at once: refused while the endless generation still holds the only slot and the
            # other still waits (a refusal that waited for a slot would never have come)
            held = scrape(narrow_url)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error_type"] == "overloaded"
    assert (metric(held, "nextword_batch_size"), metric(held, "nextword_queue_size")) == (1, 1)
    wait_until_idle(narrow_url)
    assert httpx.post(f"{narrow_url}/predict-next", json={"text": "我"}).status_code == 200


def test_client_leaving_a_stream_frees_its_slot(narrow_url: str) -> None:
    before = wait_until_idle(narrow_url)
    endless = {"prompt": "我", "max_new_tokens": 200_000, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{narrow_url}/generate", json=endless, timeout=TIMEOUT) as r:
        lines = r.iter_lines()
        first_event(lines)
        wait_for_held(narrow_url, (1, 0))  # still generating
    after = wait_until_idle(narrow_url)  # the only slot is free again
    cancelled = {"reason": "cancelled"}
    assert (
        metric(after, "nextword_sequences_finished_total", **cancelled)
        - metric(before, "nextword_sequences_finished_total", **cancelled)
        == 1
    )
    generated = metric(after, "nextword_generated_tokens_total") - metric(
        before, "nextword_generated_tokens_total"
    )
    assert 1 <= generated < 200_000
    answer = httpx.post(f"{narrow_url}/generate", json={"max_new_tokens": 3}, timeout=TIMEOUT)
    assert answer.status_code == 200


def test_client_leaving_a_plain_request_frees_its_slot(narrow_url: str) -> None:
    before = wait_until_idle(narrow_url)
    endless = {"prompt": "我", "max_new_tokens": 200_000, "ignore_eos": True}
    try:
        httpx.post(f"{narrow_url}/generate", json=endless, timeout=0.5)
        raise AssertionError("a 200,000-token generation answered within 0.5 s")
    except httpx.ReadTimeout:
        pass  # the client gives up and closes the connection
    after = wait_until_idle(narrow_url)
    cancelled = {"reason": "cancelled"}
    assert (
        metric(after, "nextword_sequences_finished_total", **cancelled)
        - metric(before, "nextword_sequences_finished_total", **cancelled)
        == 1
    )
