"""A bounded load of concurrent clients on POST /generate, for the tests that fail replicas
while it runs: each client sends one request at a time on its own kept-alive connection, and
every answer (or transport error) is recorded with when it was sent and which replica served it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.deploy.balancer import replica_address

BODY = {"prompt": "我", "max_new_tokens": 8}
REQUEST_TIMEOUT_SECONDS = 30
MAX_REQUESTS_PER_CLIENT = 2000


@dataclass(frozen=True)
class Answer:
    """One request of the load: sent at `sent` (time.monotonic()), answered with `status`
    (None: no HTTP answer, `error` names why) by `replica` (X-Served-By's address, if any)."""

    sent: float
    status: int | None
    replica: str | None
    error: str = ""


def _client(url: str, answers: list[Answer], stop: threading.Event, deadline: float) -> None:
    """Send BODY to url/generate until stopped, past the deadline, or after the cap."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set() or time.monotonic() > deadline:
                return
            sent = time.monotonic()
            try:
                response = client.post(f"{url}/generate", json=BODY)
            except httpx.HTTPError as error:
                answers.append(Answer(sent, None, None, f"{type(error).__name__}: {error}"))
            else:
                served_by = response.headers.get("x-served-by")
                answers.append(Answer(sent, response.status_code, replica_address(served_by)))


@contextmanager
def generate_load(url: str, clients: int, max_seconds: float) -> Iterator[list[Answer]]:
    """Run `clients` clients until the block ends (or max_seconds pass); yields the list their
    answers are appended to as they come (list.append is atomic), complete once the block has
    ended and every client has finished its last request."""
    answers: list[Answer] = []
    stop = threading.Event()
    deadline = time.monotonic() + max_seconds
    threads = [
        threading.Thread(target=_client, args=(url, answers, stop, deadline), daemon=True)
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_SECONDS + 5)


def wait_for_answers(answers: list[Answer], count: int, timeout_seconds: float = 60) -> None:
    """Block until the load has `count` answers; fail if it has not within the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while len(answers) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{len(answers)} answers, not {count}, within {timeout_seconds} s")
        time.sleep(0.05)
