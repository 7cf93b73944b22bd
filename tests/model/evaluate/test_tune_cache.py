"""tune_cache on a copy of the tiny real checkpoint: the five best points and the winner,
recorded in config.json with every other key untouched and read back by evaluate, the whole
grid in a file, each point judged on the split as read and on its lines alone, the choice among
close windows, and a bad grid refused before any reading."""

import json
import shutil
from pathlib import Path

import pytest

from model.checkpoint import load_cache_scope, load_inference_config
from model.evaluate import cli as evaluate_cli
from model.evaluate import tune_cache
from model.pointer_cache import CacheConfig


@pytest.fixture
def copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "tiny"))


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.split()[0] in ("line", "document")]


def test_tune_cache_records_the_best_grid_point(copy, tmp_path, capsys):
    before = json.loads((copy / "config.json").read_text())
    grid = ["--windows", "20", "200", "--thetas", "0.2", "--lambdas", "0.1", "0.3",
            "--half-fills", "0", "10", "--min-fills", "0", "4"]  # fmt: skip
    dynamic = ["--dynamic", "--dynamic-lrs", "0.1", "--dynamic-decays", "0.01"]
    table = tmp_path / "grid.tsv"
    tune_cache.main(["--checkpoint", str(copy), *grid, *dynamic, "--dynamic-lines", "5",
                     "--tolerance", "0", "--grid-file", str(table)])  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("valid split of ")  # the corpus the checkpoint was trained on
    # the whole grid in the file: the model alone per context, then the 16-point grid twice for
    # lines (a cache per line or across them) and once for the document
    every = _rows(table.read_text())
    assert len(every) == (1 + 2 * 16) + (1 + 16)
    best = min(every, key=lambda row: float(row[-1]))
    # on stdout: the five best, the two without a cache, then the chosen one (the best)
    shown = _rows(out)
    assert shown[:5] == sorted(every, key=lambda row: float(row[-1]))[:5]
    assert shown[-1] == best and len(shown) == 5 + 2 + 1
    after = json.loads((copy / "config.json").read_text())
    assert {k: v for k, v in after.items() if k != "inference"} == before
    context, cache = load_inference_config(after)
    assert context == best[0] and load_cache_scope(after) == best[1] and cache is not None
    recorded = (cache.window, cache.theta, cache.lam, cache.half_fill, cache.min_fill)
    assert recorded == (int(best[2]), float(best[3]), float(best[4]), float(best[5]), int(best[6]))
    assert after["inference"]["dynamic"] == {"lr": 0.1, "decay": 0.01, "segment": 50}
    evaluate_cli.main(["--checkpoint", str(copy), "--cache", "--json", "--context", context])
    assert json.loads(capsys.readouterr().out)["cache"] == cache.to_dict()


def test_every_point_is_judged_as_read_and_line_by_line(copy, tmp_path, capsys):
    table = tmp_path / "grid.tsv"
    tune_cache.main(["--checkpoint", str(copy), "--windows", "50", "--thetas", "0.3",
                     "--lambdas", "0.2", "--half-fills", "0", "5", "--min-fills", "0",
                     "--grid-file", str(table), "--dry-run"])  # fmt: skip
    capsys.readouterr()
    rows = {
        (row[0], row[1], row[-5]): [float(x) for x in row[-3:]] for row in _rows(table.read_text())
    }
    for half in ("0.0", "5.0"):
        # the line reading with a cache per line is the lines-alone reading itself
        read, alone, joint = rows["line", "line", half]
        assert read == alone == joint
        # the document: its own figure, the same lines-alone figure, and their pooled mean
        document, doc_alone, doc_joint = rows["document", "document", half]
        assert doc_alone == alone and min(document, alone) <= doc_joint <= max(document, alone)
    assert "inference" not in json.loads((copy / "config.json").read_text())


def test_the_smallest_window_within_the_tolerance_is_chosen():
    def point(window: int | None, ppl: float) -> tune_cache.GridPoint:
        cache = CacheConfig(window, 0.3, 0.1) if window else None
        return tune_cache.GridPoint("document", "document", cache, ppl + 10, ppl - 10, ppl)

    points = [point(None, 200.0), point(100, 170.0), point(300, 160.5), point(1000, 160.0)]
    assert tune_cache.choose(points, 0.005).cache.window == 300
    assert tune_cache.choose(points, 0.0).cache.window == 1000
    assert tune_cache.choose(points, 0.10).cache.window == 100
    assert tune_cache.choose([point(None, 150.0), *points[1:]], 0.005).cache is None


def test_within_the_tolerance_the_cache_that_waits_longest_is_chosen():
    def point(min_fill: int, ppl: float) -> tune_cache.GridPoint:
        cache = CacheConfig(300, 0.2, 0.2, half_fill=100.0, min_fill=min_fill)
        return tune_cache.GridPoint("line", "document", cache, ppl, ppl, ppl)

    points = [point(0, 165.25), point(4, 165.25), point(8, 165.29), point(16, 170.0)]
    assert tune_cache.choose(points, 0.005).cache.min_fill == 8
    assert tune_cache.choose(points, 0.0).cache.min_fill == 4  # 0 and 4 tie: 4 waits longer
    assert tune_cache.choose(points, 0.05).cache.min_fill == 16


def test_tune_cache_refuses_a_bad_grid_before_reading(copy):
    with pytest.raises(SystemExit, match="lambda must be in"):
        tune_cache.main(["--checkpoint", str(copy), "--lambdas", "1.5"])
    assert "inference" not in json.loads((copy / "config.json").read_text())
