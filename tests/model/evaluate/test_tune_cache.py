"""tune_cache on a copy of the tiny real checkpoint: the table, the winner recorded in
config.json with every other key untouched and read back by evaluate, the choice among close
windows, and a bad grid refused before any reading."""

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


def test_tune_cache_records_the_best_grid_point(copy, capsys):
    before = json.loads((copy / "config.json").read_text())
    grid = ["--windows", "20", "200", "--thetas", "0.2", "--lambdas", "0.1", "0.3"]
    dynamic = ["--dynamic", "--dynamic-lrs", "0.1", "--dynamic-decays", "0.01"]
    tune_cache.main(["--checkpoint", str(copy), *grid, *dynamic, "--dynamic-lines", "5",
                     "--tolerance", "0"])  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("valid split of ")  # the corpus the checkpoint was trained on
    rows = [line.split() for line in out.splitlines() if line.split()[0] in ("line", "document")]
    # the model alone per context, then the 4-point grid: twice for lines (a cache per line or
    # across them), once for the document
    assert len(rows) == (1 + 2 * 4) + (1 + 4)
    best = min(rows, key=lambda row: float(row[-1]))
    after = json.loads((copy / "config.json").read_text())
    assert {k: v for k, v in after.items() if k != "inference"} == before
    context, cache = load_inference_config(after)
    assert context == best[0] and load_cache_scope(after) == best[1] and cache is not None
    assert (cache.window, cache.theta, cache.lam) == (int(best[2]), float(best[3]), float(best[4]))
    assert after["inference"]["dynamic"] == {"lr": 0.1, "decay": 0.01, "segment": 50}
    evaluate_cli.main(["--checkpoint", str(copy), "--cache", "--json", "--context", context])
    assert json.loads(capsys.readouterr().out)["cache"] == cache.to_dict()


def test_the_smallest_window_within_the_tolerance_is_chosen():
    def point(window: int | None, ppl: float) -> tune_cache.GridPoint:
        cache = CacheConfig(window, 0.3, 0.1) if window else None
        return tune_cache.GridPoint("document", "document", cache, ppl)

    points = [point(None, 200.0), point(100, 170.0), point(300, 160.5), point(1000, 160.0)]
    assert tune_cache.choose(points, 0.005).cache.window == 300
    assert tune_cache.choose(points, 0.0).cache.window == 1000
    assert tune_cache.choose(points, 0.10).cache.window == 100
    assert tune_cache.choose([point(None, 150.0), *points[1:]], 0.005).cache is None


def test_tune_cache_refuses_a_bad_grid_before_reading(copy):
    with pytest.raises(SystemExit, match="lambda must be in"):
        tune_cache.main(["--checkpoint", str(copy), "--lambdas", "1.5"])
    assert "inference" not in json.loads((copy / "config.json").read_text())
