"""bench/cache_speed on the tiny real checkpoint: a header naming the batch, the model and the
CPU; one model-step row, then one mix_rows row per window asked for, in that order; each cache
full, so its memory is CacheConfig.max_bytes; each figure the median of the timed calls, in ms.
The clock is replaced by one that advances a known amount per reading, so the figures are
checked exactly and never against the machine's speed."""

import types

import pytest

from bench import cache_speed
from bench.cache_speed import full_caches, main, measure, median_ms
from model.checkpoint import load_checkpoint
from model.hardware import describe_cpu
from model.pointer_cache import CacheConfig

TABLE_HEAD = ["| what | window | ms | MiB of cache per row |", "|---|---:|---:|---:|"]


class FakeClock:
    """perf_counter that moves on by `tick` seconds at each reading; a test may also move
    `now` itself, as a call that lasts a known time."""

    def __init__(self, tick: float = 0.0):
        self.now, self.tick, self.readings = 0.0, tick, 0

    def perf_counter(self) -> float:
        self.readings += 1
        self.now += self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock(tick=0.00125)  # every timed call lasts 1.25 ms
    monkeypatch.setattr(cache_speed, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("|")[1:-1]]


def test_median_ms_warms_up_once_then_reports_the_median_of_the_repeats_in_ms(monkeypatch):
    durations = iter([9.0, 0.005, 0.001, 0.003])  # seconds: the warm-up, then three timed calls
    fake = FakeClock()
    monkeypatch.setattr(cache_speed, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    calls = []

    def call() -> None:
        calls.append(1)
        fake.now += next(durations)

    assert median_ms(call, repeats=3) == pytest.approx(3.0)  # the 9 s warm-up is not counted
    assert len(calls) == 4 and fake.readings == 6


def test_every_cache_is_full_so_it_takes_the_most_memory_its_window_allows():
    caches = full_caches(batch=3, window=50, feature_size=16, vocab_size=100)
    assert len(caches) == 3
    assert all(len(cache) == 50 for cache in caches)
    assert all(cache.nbytes == CacheConfig(50, 0.3, 0.1).max_bytes(16) for cache in caches)


def test_the_table_has_the_step_then_a_row_per_window_asked_for_with_consistent_figures(
    tiny_checkpoint, clock
):
    config = load_checkpoint(tiny_checkpoint).model.config
    windows = [3000, 1000, 2000]  # any order: the rows follow it
    lines = measure(str(tiny_checkpoint), batch=2, windows=windows, repeats=3)

    assert lines[0] == (
        f"batch 2, vocabulary {config.vocab_size:,}, features {config.feature_size}; "
        f"{describe_cpu()}"
    )
    assert lines[1:3] == TABLE_HEAD
    rows = [_cells(line) for line in lines[3:]]
    assert rows[0] == ["model step (forward + log_probs)", "-", "1.25", "-"]
    assert [row[0] for row in rows[1:]] == ["mix_rows"] * len(windows)
    assert [int(row[1]) for row in rows[1:]] == windows
    assert [row[2] for row in rows[1:]] == ["1.25"] * len(windows)
    mib = [float(row[3]) for row in rows[1:]]
    for window, figure in zip(windows, mib, strict=True):
        full = CacheConfig(window, 0.3, 0.1).max_bytes(config.feature_size) / 2**20
        assert figure == pytest.approx(full, abs=0.005)  # printed to two decimals
    # 3 rows plus the step, each one warm-up and 3 timed calls, two clock readings per call
    assert clock.readings == 4 * 3 * 2


def test_the_command_line_prints_the_table_for_the_batch_and_windows_it_is_given(
    tiny_checkpoint, clock, capsys
):
    main(
        ["--checkpoint", str(tiny_checkpoint), "--batch", "3", "--windows", "500", "--repeats", "2"]
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("batch 3, ") and printed[0].endswith(describe_cpu())
    assert printed[1:3] == TABLE_HEAD
    assert [_cells(line)[:3] for line in printed[3:]] == [
        ["model step (forward + log_probs)", "-", "1.25"],
        ["mix_rows", "500", "1.25"],
    ]
