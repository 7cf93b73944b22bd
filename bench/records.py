"""The JSON record each bench writes beside its page, with the machine left out: commands and
paths are written as anyone would type them in a checkout (python, paths relative to the
repository), so a record says what to run, not where it once ran."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def portable(value: object) -> object:
    """value with every string's machine-specific parts rewritten: this interpreter's path as
    `python`, the repository's own path removed (its files as relative paths), the folder
    beside it as `..`, the temporary directory as `$TMPDIR`. Lists and dicts recursively."""
    if isinstance(value, dict):
        return {portable(key): portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item) for item in value]
    if not isinstance(value, str):
        return value
    if value == str(ROOT):
        return "."
    text = value.replace(sys.executable, "python")
    for prefix, replacement in _prefixes():
        text = text.replace(prefix, replacement)
    return text


def _prefixes() -> list[tuple[str, str]]:
    """(machine prefix, what anyone would type), the most specific first, so that the result
    does not depend on where the checkout lives: a clone directly in the temporary directory
    writes "$TMPDIR/" (not "../") for the temporary directory's other files."""
    temp = {str(Path(tempfile.gettempdir()).resolve()), tempfile.gettempdir()}
    prefixes = [
        (f"{ROOT}/", ""),
        *((f"{t}/", "$TMPDIR/") for t in temp),
        (f"{ROOT.parent}/", "../"),
    ]
    # longest first; on a tie (the clone's parent is the temporary directory) $TMPDIR wins
    return sorted(prefixes, key=lambda pair: -len(pair[0]))


def write_record(path: Path, record: dict) -> None:
    """Write record as indented JSON at path, made portable first."""
    path.write_text(json.dumps(portable(record), indent=2) + "\n", encoding="utf-8")
