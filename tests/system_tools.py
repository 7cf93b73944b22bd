"""The rule for tests that need a system tool (promtool, docker-compose, chromium, ...).

Where the tool is missing the test skips and says which Debian package brings it; under CI=true
it fails instead, since CI installs every package in deploy/apt-packages.txt and a skip there
would hide a broken install.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(command: str, package: str) -> str:
    """Absolute path of `command` on PATH; skips the calling test when it is missing (fails
    under CI=true). `package` is the Debian package to name in the reason."""
    path = shutil.which(command)
    if path:
        return path
    reason = (
        f"{command} not found on PATH: install the Debian package {package!r} "
        "(listed in deploy/apt-packages.txt)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip")
    pytest.skip(reason)
