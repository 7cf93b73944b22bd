"""bench/recipe's table: each variant against the base run, failed runs shown as such."""

from bench.recipe import table
from bench.time_to_ppl import Run


def _run(variant, test_ppl, returncode=0):
    run = Run("peoples-daily", variant, [], f"/tmp/{variant}", f"/tmp/{variant}.log", returncode)
    if returncode == 0:
        run.curve = [{"wall_seconds": 540.0, "tokens_seen": 7_400_000, "valid_ppl": 260.0}]
        run.trained_seconds, run.tokens_per_second = 540.0, 13_700.0
        run.best_valid_ppl, run.test_ppl = 260.0, test_ppl
    return run


def test_each_variant_is_compared_with_the_base_test_ppl():
    rows = table([_run("base", 320.0), _run("average", 304.0), _run("tied", None, returncode=1)])
    base, average, tied = rows[2:]
    assert "| base | `—` |" in base and base.endswith("| 320.0 | +0.0% |")
    assert "`--average-from 0.5`" in average and average.endswith("| 304.0 | -5.0% |")
    assert "failed: see /tmp/tied.log" in tied
    assert "| 7.40M | 13,700 |" in average
