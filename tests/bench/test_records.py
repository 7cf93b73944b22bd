"""A bench's JSON record names commands and paths as a checkout would, never the machine's."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from bench.records import ROOT, portable, write_record
from tests.test_docs import JSON_MACHINE_PATH


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
        "corpus": "../shared/corpora/wikitext-2",
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
