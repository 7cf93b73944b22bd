"""The HAProxy balancer of docker-compose.yml (deploy/haproxy/haproxy.cfg) seen from outside:
its pool of replicas, read from the stats page's CSV, and the replica an answer names."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest

BACKEND = "replicas"  # haproxy.cfg's backend
WAITING_FOR_DNS = "MAINT (resolution)"  # a server-template slot that holds no replica


def pool(stats_url: str) -> dict[str, str]:
    """{slot: status} of the backend's slots that hold a replica found through DNS: "UP",
    "DOWN", or a state in between such as "UP 1/2" (going down) or "DOWN 1/2" (coming up)."""
    text = httpx.get(f"{stats_url}/stats;csv", timeout=5).text.lstrip("# ")
    return {
        row["svname"]: row["status"]
        for row in csv.DictReader(io.StringIO(text))
        if row["pxname"] == BACKEND
        and row["svname"] != "BACKEND"
        and row["status"] != WAITING_FOR_DNS
    }


def serving(stats_url: str) -> int:
    """How many replicas take traffic now (fully UP)."""
    return sum(status == "UP" for status in pool(stats_url).values())


def wait_for_serving(stats_url: str, count: int, timeout_seconds: float) -> float:
    """Poll every 0.1 s until exactly `count` replicas are UP; the seconds it took. Fails with
    the pool otherwise."""
    started = time.monotonic()
    while (now := serving(stats_url)) != count:
        if time.monotonic() - started > timeout_seconds:
            pytest.fail(f"{now} replicas UP, not {count}, after {timeout_seconds} s: "
                        f"{pool(stats_url)}")  # fmt: skip
        time.sleep(0.1)
    return time.monotonic() - started


def replica_address(served_by: str | None) -> str | None:
    """The replica's IP address in an X-Served-By header ("api2 172.19.0.3:8000"); None for
    an answer that names none (HAProxy answered itself, or no answer came)."""
    if not served_by:
        return None
    return served_by.split()[-1].rsplit(":", 1)[0]
