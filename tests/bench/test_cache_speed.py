"""bench/cache_speed on the tiny real checkpoint: one model-step row, one mix_rows row per
window, and the cache's memory growing with the window."""

from bench.cache_speed import measure


def test_cache_speed_times_the_step_and_each_window(tiny_checkpoint):
    lines = measure(str(tiny_checkpoint), batch=4, windows=[10, 40], repeats=2)
    assert lines[0].startswith("batch 4,") and "cores" in lines[0]
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert [r[0].strip() for r in rows] == [
        "model step (forward + log_probs)",
        "mix_rows",
        "mix_rows",
    ]
    assert all(float(r[2]) > 0 for r in rows)
    assert float(rows[2][3]) > float(rows[1][3])
