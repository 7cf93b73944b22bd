"""Print pyproject.toml's requirements, one a line, for `pip install -r`: the runtime
dependencies, or with an argument those of that extra (e.g. `train`).

The Dockerfile installs from these lists so that its dependency layers depend on pyproject.toml
alone, not on the code. Python's standard library only (tomllib, Python 3.11+).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def requirements(pyproject: Path, extra: str | None = None) -> list[str]:
    """The project's dependencies, or those of `extra` when given (KeyError if it has none)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    if extra is None:
        return list(project["dependencies"])
    return list(project["optional-dependencies"][extra])


if __name__ == "__main__":
    extra = sys.argv[1] if len(sys.argv) > 1 else None
    print(*requirements(Path("pyproject.toml"), extra), sep="\n")
