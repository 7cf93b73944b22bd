"""Helpers for the service tests: reading server-sent events and Prometheus scrapes."""

from __future__ import annotations

import json
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families


def sse_events(lines: Iterable[str]) -> list[object]:
    """The `data:` payloads of an event stream, JSON-decoded, up to and including "[DONE]"
    (kept as that string)."""
    events: list[object] = []
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            events.append(data)
            break
        events.append(json.loads(data))
    return events


def metric(scrape: str, sample_name: str, **labels: str) -> float:
    """Sum of the samples called sample_name whose labels include `labels` (0 if none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == sample_name and labels.items() <= sample.labels.items()
    )
