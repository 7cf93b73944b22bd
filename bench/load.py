"""Bounded load: 64 concurrent clients on loopback against a real uvicorn, mixed endpoints, for
a fixed time; zero errors other than deliberate 429s, p50/p99 latency, and the server's
resident memory (from /proc) after the first 1,000 and after 10,000 requests (a leak shows as
growth between the two).

    python -m bench.load --checkpoint checkpoints/default --seconds 50   # writes docs/load.md

Bounded twice: by time and by a request cap. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from model.hardware import describe_cpu
from tests.live_server import ROOT, live_server

# the mix every client cycles through: (method, path, JSON body)
MIX: list[tuple[str, str, dict | None]] = [
    ("POST", "/predict-next", {"text": "中国人民银行今天宣布", "top_k": 10}),
    ("POST", "/generate", {"prompt": "我们", "max_new_tokens": 16, "temperature": 0.9}),
    ("POST", "/perplexity", {"texts": ["我爱北京天安门。", "今天天气很好。"]}),
    ("POST", "/predict-next", {"text": "", "top_k": 5}),
    ("GET", "/health", None),
    ("GET", "/info", None),
]
MEMORY_MARKS = (1_000, 10_000)


def resident_kib(pid: int) -> int:
    """The resident set size of process pid in KiB, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


@dataclass
class LoadResult:
    """What a bounded load produced."""

    clients: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # transport errors by kind
    latencies: list[float] = field(default_factory=list)
    memory_kib: dict[int, int] = field(default_factory=dict)  # requests done → RSS

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.failures.values())

    @property
    def errors(self) -> int:
        """Answers other than 200 and the deliberate 429, plus transport failures."""
        unexpected = sum(n for status, n in self.statuses.items() if status not in (200, 429))
        return unexpected + sum(self.failures.values())

    def percentile_ms(self, q: float) -> float:
        """The q-quantile (0..1) of request latency in ms."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def memory_growth(self) -> float | None:
        """Relative RSS growth from the first mark to the last, None if both were not reached."""
        first, last = (self.memory_kib.get(mark) for mark in MEMORY_MARKS)
        return None if first is None or last is None else (last - first) / first


async def drive(url: str, pid: int, clients: int, seconds: float, max_requests: int) -> LoadResult:
    """`clients` concurrent clients cycling through MIX until `seconds` pass or `max_requests`
    are sent; RSS of pid recorded as the request count passes each of MEMORY_MARKS."""
    result = LoadResult(clients)
    counter = itertools.count(1)
    stop_at = time.monotonic() + seconds
    # expire idle connections well before uvicorn does (5 s), so none is reused as it closes
    limits = httpx.Limits(
        max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def client(offset: int) -> None:
            for method, path, body in itertools.islice(itertools.cycle(MIX), offset, None):
                number = next(counter)
                if number > max_requests or time.monotonic() > stop_at:
                    return
                started = time.perf_counter()
                try:
                    response = await http.request(method, path, json=body)
                    result.statuses[response.status_code] += 1
                except httpx.TransportError as error:
                    result.failures[type(error).__name__] += 1
                result.latencies.append(time.perf_counter() - started)
                if number in MEMORY_MARKS:
                    result.memory_kib[number] = resident_kib(pid)

        started = time.perf_counter()
        await asyncio.gather(*(client(i % len(MIX)) for i in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


def report(result: LoadResult, command: str) -> str:
    """The Markdown page docs/load.md."""
    growth = result.memory_growth()
    memory = ", ".join(f"{kib / 1024:.1f} MiB after {mark:,}" for mark, kib in
                       sorted(result.memory_kib.items()))  # fmt: skip
    verdict = "not measured (fewer than 10,000 requests)"
    if growth is not None:
        verdict = f"{growth:+.1%} ({'within' if abs(growth) <= 0.10 else 'OUTSIDE'} 10%)"
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(result.statuses.items()))
    failures = ", ".join(f"{kind}: {n}" for kind, n in sorted(result.failures.items()))
    return "\n".join([
        "# Bounded load",
        "",
        f"Machine: {describe_cpu()}; server and load generator share it.",
        f"Command: `{command}`.",
        "",
        f"{result.clients} concurrent clients on loopback, each cycling through /predict-next, "
        "/generate (16 tokens), /perplexity (2 texts), /predict-next, /health and /info.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| duration | {result.seconds:.1f} s |",
        f"| requests | {result.requests:,} ({result.requests / result.seconds:.0f}/s) |",
        f"| answers by status | {statuses} |",
        f"| errors (not 200 or 429) | {result.errors} |",
        f"| transport failures | {failures or 'none'} |",
        f"| latency p50 / p99 | {result.percentile_ms(0.5):.1f} / "
        f"{result.percentile_ms(0.99):.1f} ms |",
        f"| server resident memory | {memory or 'not measured'} |",
        f"| memory growth, 1,000 → 10,000 requests | {verdict} |",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Start a server, load it, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=ROOT / "checkpoints/default",
        help="checkpoint directory to serve",
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=50, help="how long the load lasts")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=12_000,
        help="stop after this many requests even if time is left",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs/load.md",
        help="where to write the Markdown report",
    )
    args = parser.parse_args(argv)  # fmt: skip
    command = " ".join(["python -m bench.load", *(sys.argv[1:] if argv is None else argv)])
    print(f"Machine: {describe_cpu()}. Loading for {args.seconds:g} s...", flush=True)
    with (
        tempfile.TemporaryDirectory() as logs,
        live_server(args.checkpoint, Path(logs), threads="1") as server,
    ):
        result = asyncio.run(
            drive(server.url, server.process.pid, args.clients, args.seconds, args.max_requests)
        )
    page = report(result, command)
    print(page)
    args.output.write_text(page)
    if result.errors:
        raise SystemExit(f"{result.errors} errors other than 429 under load")


if __name__ == "__main__":
    main()
