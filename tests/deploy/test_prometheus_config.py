"""deploy/prometheus/prometheus.yml passes `promtool check config`."""

from __future__ import annotations

import subprocess

from tests.deploy.support import ROOT
from tests.system_tools import require_tool


def test_promtool_accepts_the_prometheus_configuration() -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
