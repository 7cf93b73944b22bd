"""The short version of bench/load.py: 64 concurrent clients on mixed endpoints for a few
seconds against a real uvicorn: no errors but deliberate 429s, and the report's figures."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bench.load import MIX, drive, report, resident_kib
from model.hardware import cpu_name
from tests.live_server import live_server


def test_64_clients_on_mixed_endpoints_get_no_errors(tiny_checkpoint: Path, tmp_path) -> None:
    with live_server(tiny_checkpoint, tmp_path, threads="1") as server:
        result = asyncio.run(drive(server.url, server.process.pid, 64, 3.0, 100_000))
        memory = resident_kib(server.process.pid)
    assert result.errors == 0, (result.statuses, result.failures)
    assert result.requests >= 2 * 64 and result.statuses[200] >= len(MIX)
    assert 0 < result.percentile_ms(0.5) <= result.percentile_ms(0.99)
    assert result.memory_kib.get(1_000, memory) > 10_000  # a server's RSS is megabytes
    page = report(result, "test")
    assert "| errors (not 200 or 429) | 0 |" in page
    assert f"Machine: {cpu_name()}, " in page


def test_resident_memory_follows_what_the_process_touches() -> None:
    before = resident_kib(os.getpid())
    block = bytearray(64 * 1024 * 1024)  # 64 MiB, resident once each page is written
    block[::4096] = b"\x01" * len(range(0, len(block), 4096))
    grown = resident_kib(os.getpid()) - before
    assert 56 * 1024 <= grown <= 96 * 1024, grown
    del block
