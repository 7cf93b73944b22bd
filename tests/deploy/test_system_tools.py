"""The missing-system-tool rule: skip and say which package, but fail under CI=true."""

from __future__ import annotations

import pytest

from tests.system_tools import require_tool

MISSING = "nextword-no-such-tool"


def test_require_tool_returns_the_path_of_a_present_tool() -> None:
    assert require_tool("sh", "dash").endswith("/sh")


def test_require_tool_skips_naming_the_package_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package 'some-package'"):
        require_tool(MISSING, "some-package")


def test_require_tool_fails_instead_of_skipping_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_tool(MISSING, "some-package")
