"""`python -m app` (app/__main__.py) against a live server: SIGTERM drains requests in flight,
refuses new connections and exits 0; request ids are echoed and written to the JSON access log.
(A damaged checkpoint and a planted pickle at start-up: tests/app/test_main.py.)"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.app.support import metric
from tests.live_server import live_server

# The generation in flight is sized from this machine's speed, measured on the same server
# first, to last about IN_FLIGHT_SECONDS on any CPU; the grace, which the server reads at start,
# must be at least GRACE_FACTOR times what it is expected to last (and is never under 10 s).
IN_FLIGHT_SECONDS = 2.0
GRACE_FACTOR = 5
GRACE_SECONDS = 15
MIN_TOKENS = 32  # the shortest generation in flight, however slow the machine
TOKEN_CEILING = 200_000  # the server's cap on max_new_tokens: above 2 s on any CPU
GENERATION = {"prompt": "我", "ignore_eos": True, "seed": 1}


def timed_generation(url: str, length: int) -> float:
    """Seconds the server at url takes to answer a generation of length tokens."""
    body = {**GENERATION, "max_new_tokens": length}
    started = time.perf_counter()
    answer = httpx.post(f"{url}/generate", json=body, timeout=60)
    seconds = time.perf_counter() - started
    assert answer.status_code == 200 and answer.json()["usage"]["generated_tokens"] == length
    return seconds


def generation_speed(url: str, min_seconds: float = 0.25) -> float:
    """Generated tokens/s of the server at url on this machine now, to size the work in flight:
    after one untimed generation (the first request pays for warming the server up), one
    timed generation, four times longer until it lasts min_seconds."""
    timed_generation(url, MIN_TOKENS)
    tokens = MIN_TOKENS
    while (seconds := timed_generation(url, tokens)) < min_seconds and tokens * 4 <= TOKEN_CEILING:
        tokens *= 4
    return tokens / seconds


def in_flight_tokens(speed: float) -> int:
    """max_new_tokens of a generation lasting about IN_FLIGHT_SECONDS at speed tokens/s, so
    that the test asks as much of a slow CPU as of a fast one."""
    return max(MIN_TOKENS, min(TOKEN_CEILING, round(speed * IN_FLIGHT_SECONDS)))


def wait_for_a_running_sequence(url: str, seconds: float = 10.0) -> None:
    """Return once the engine runs a sequence, so that SIGTERM finds a request in flight."""
    deadline = time.monotonic() + seconds
    while metric(httpx.get(f"{url}/metrics").text, "nextword_batch_size") < 1:
        assert time.monotonic() < deadline, "the generation never started"
        time.sleep(0.02)


def refused_within(url: str, seconds: float) -> bool:
    """Whether a new connection is refused within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.ConnectError:
            return True
        time.sleep(0.05)
    return False


def access_log(path: Path) -> list[dict]:
    """The JSON entries of a server's log (its other lines are skipped)."""
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_sigterm_completes_requests_in_flight_refuses_new_ones_and_exits_0(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """SIGTERM during a generation: new connections are refused at once, the generation runs to
    its end and is answered, the process exits 0 within the grace; request ids are logged."""
    env = {
        "threads": "1",
        "max_new_tokens": str(TOKEN_CEILING),
        "shutdown_grace_seconds": str(GRACE_SECONDS),
    }
    with live_server(tiny_checkpoint, tmp_path, entry="app", **env) as server:
        speed = generation_speed(server.url)
        tokens = in_flight_tokens(speed)
        expected = tokens / speed
        measured = f"{speed:.0f} tokens/s, {tokens} tokens expected to take {expected:.1f} s"
        assert GRACE_FACTOR * expected <= GRACE_SECONDS, f"too slow for the grace: {measured}"
        echoed = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "trace-42"})
        generated = httpx.get(f"{server.url}/health").headers["x-request-id"]
        answers: list[httpx.Response] = []
        long = {**GENERATION, "max_new_tokens": tokens}
        thread = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/generate", json=long, timeout=GRACE_SECONDS + 20)
            )
        )
        thread.start()
        wait_for_a_running_sequence(server.url)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        refused = refused_within(server.url, 3)
        still_running = thread.is_alive()
        code = server.process.wait(timeout=GRACE_SECONDS + 10)
        elapsed = time.monotonic() - stopped_at
        thread.join(5)
    assert echoed.headers["x-request-id"] == "trace-42" and len(generated) == 32
    # new connections refused while the generation ran on
    assert refused and still_running, f"refused {refused}, running {still_running}: {measured}"
    assert answers[0].status_code == 200
    assert answers[0].json()["usage"]["generated_tokens"] == tokens, measured
    assert code == 0 and elapsed < GRACE_SECONDS + 5, f"exit {code} after {elapsed:.1f} s"
    entries = access_log(server.log)
    traced = [e for e in entries if e.get("request_id") == "trace-42"]
    assert len(traced) == 1 and traced[0]["path"] == "/health" and traced[0]["status"] == 200
    assert any(e.get("path") == "/generate" and e.get("status") == 200 for e in entries)
    assert {e["request_id"] for e in entries if "request_id" in e} >= {"trace-42", generated}
