"""A bench's JSON record names commands and paths as a checkout would, never the machine's."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import pytest

from bench import records
from bench.records import ROOT, portable, write_record
from tests.test_docs import JSON_MACHINE_PATH

TEMP = Path(tempfile.gettempdir()).resolve()


def test_machine_paths_become_what_anyone_would_type(tmp_path: Path) -> None:
    record = {
        "command": [sys.executable, "-m", "bench.serve", "--checkpoint", str(ROOT / "ckpt")],
        "runs": [{"log": f"{tempfile.gettempdir()}/recipe-x/run.log", "ppl": 201.7}],
        "corpus": str(ROOT.parent / "shared/corpora/wikitext-2"),
        str(ROOT / "docs"): "a key too",
        "line": f"{sys.executable} -m model.train --output {ROOT}/checkpoints/default",
        "here": str(ROOT),
    }
    assert portable(record) == {
        "command": ["python", "-m", "bench.serve", "--checkpoint", "ckpt"],
        "runs": [{"log": "$TMPDIR/recipe-x/run.log", "ppl": 201.7}],
        "corpus": f"{'$TMPDIR' if ROOT.parent == TEMP else '..'}/shared/corpora/wikitext-2",
        "docs": "a key too",
        "line": "python -m model.train --output checkpoints/default",
        "here": ".",
    }
    path = tmp_path / "record.json"
    write_record(path, record)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == portable(record)
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    assert not [s for s in strings if JSON_MACHINE_PATH.search(s)]


@pytest.mark.parametrize(
    "clone",
    ["/tmp/nextword", "/tmp/a b/nextword", "/home/someone/nextword", "/tmp/x/y/nextword"],
)  # directly in the temporary directory, under a path with a space, under a home directory
def test_a_record_reads_the_same_wherever_the_clone_lives(monkeypatch, clone: str) -> None:
    monkeypatch.setattr(records, "ROOT", Path(clone))
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")
    record = {
        "checkpoint": f"{clone}/checkpoints/default",
        "log": "/tmp/recipe-x/run.log",
        "here": clone,
        "beside": f"{Path(clone).parent}/shared/corpora",
    }
    beside = "$TMPDIR/shared/corpora" if Path(clone).parent == Path("/tmp") else "../shared/corpora"
    assert portable(record) == {
        "checkpoint": "checkpoints/default",
        "log": "$TMPDIR/recipe-x/run.log",
        "here": ".",
        "beside": beside,
    }
