"""Helpers for the deployment tests: the repository root, the Dockerfile's instructions, the
dashboard's PromQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "atan2"}


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each a list of (INSTRUCTION, arguments) with comments
    dropped and continuation lines joined; instructions before the first FROM are left out."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages


def promql_metric_names(expression: str) -> set[str]:
    """Metric names a PromQL expression reads: its identifiers once strings, label matchers,
    ranges, offsets, Grafana variables and by/without/on/ignoring clauses are removed, less the
    keywords and the function and aggregation names (identifiers followed by a parenthesis)."""
    for pattern in (
        r'"[^"]*"',
        r"\{[^}]*\}",
        r"\[[^\]]*\]",
        r"\$\w+",
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
        r"\boffset\s+\w+",
    ):
        expression = re.sub(pattern, " ", expression)
    names = set(re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expression))
    return names - PROMQL_KEYWORDS


def dashboard_expressions(path: Path) -> list[str]:
    """Every PromQL expression of a Grafana dashboard JSON file, panel by panel."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
