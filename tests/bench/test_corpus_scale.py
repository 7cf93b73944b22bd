"""bench/corpus_scale: the sampler sees a process tree's memory, the synthetic corpora repeat the
source exactly, the stages run in order as subprocesses, and the page states every must-show
figure on the CPU it names."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import corpus_scale
from bench.corpus_scale import (
    measure,
    parallel_ceiling,
    parse_args,
    shown_command,
    source_text,
    write_repeated,
)
from bench.corpus_scale_page import checks, format_row, page
from bench.process_tree import run_sampled
from bench.records import ROOT
from model.hardware import describe_cpu
from model.train.corpora import PEOPLES_DAILY
from tests.test_docs import MACHINE_PATH

MIB = 1024  # KiB
ALLOCATE = "import sys, time; block = bytearray(b'x') * ({mib} << 20); time.sleep({seconds})"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_sampler_sees_a_child_allocate_what_it_allocates(tmp_path: Path) -> None:
    idle = run_sampled(_python(ALLOCATE.format(mib=0, seconds=0.6)), tmp_path / "o", tmp_path / "e")
    busy = run_sampled(
        _python(ALLOCATE.format(mib=100, seconds=0.6)), tmp_path / "o", tmp_path / "e"
    )
    assert idle.returncode == busy.returncode == 0 and busy.samples > 1
    grown = busy.peak_kib["RssAnon"] - idle.peak_kib["RssAnon"]
    # the block, less what the idle baseline's own pages vary by, plus at most the copy's slack
    assert 95 * MIB <= grown <= 130 * MIB
    assert busy.peak_kib["VmRSS"] >= busy.peak_kib["RssAnon"]


def test_the_sampler_sums_the_whole_process_tree(tmp_path: Path) -> None:
    child = ALLOCATE.format(mib=80, seconds=0.8)
    parent = (
        "import subprocess, sys; "
        f"worker = subprocess.Popen([sys.executable, '-c', {child!r}]); "
        "block = bytearray(b'y') * (40 << 20); worker.wait()"
    )
    measured = run_sampled(_python(parent), tmp_path / "o", tmp_path / "e")
    assert measured.returncode == 0, (tmp_path / "e").read_text()
    assert measured.peak_kib["RssAnon"] >= 115 * MIB  # the worker's 80 MiB and the parent's 40


def test_a_synthetic_corpus_is_the_source_written_n_times(tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_text("第一行\n\n第二行 有空格\n第三行\n", encoding="utf-8")
    text = source_text(str(source))
    assert text == "第一行\n第二行 有空格\n第三行\n".encode()  # blank lines dropped, as model.train
    corpus = tmp_path / "corpus.txt"
    assert write_repeated(text, 3, corpus) == 3 * len(text)
    assert corpus.read_bytes() == text * 3


def test_stage_commands_show_placeholders_and_given_values() -> None:
    shown = shown_command("training", train_tokens=200_000, preset="default")
    assert shown == (
        "python -m model.train --corpus CORPUS --preset default --no-word2vec-init "
        "--max-tokens 200000 --output CHECKPOINT --no-progress --cache-dir STORE"
    )
    assert shown_command("word2vec").endswith("--epochs 1 --cache-dir STORE")


def _row(size: int, stage: str, seconds: float, anon_mib: int, **extra: object) -> dict:
    return {
        "size": size,
        "stage": stage,
        "workers": extra.pop("workers", None),
        "returncode": 0,
        "seconds": seconds,
        "peak_rss_kib": 2 * anon_mib * MIB,
        "peak_anon_kib": anon_mib * MIB,
        "samples": 10,
        "said": extra.pop("said", "ok"),
    }


def _record(rows: list[dict]) -> dict:
    stages = {
        stage: shown_command(stage, train_tokens=200_000, preset="default")
        for stage in corpus_scale.STAGES
    }
    return {
        "command": "python -m bench.corpus_scale",
        "machine": describe_cpu(),
        "date": "2026-12-06",
        "load_average": [0.1, 1.9],
        "source": "peoples-daily",
        "source_bytes": 5_543_423,
        "workers": 2,
        "compare_workers_at": 10,
        "train_tokens": 200_000,
        "preset": "default",
        "stages": stages,
        "rows": rows,
    }


def test_the_page_names_the_cpu_and_judges_each_must_show_figure() -> None:
    summary = {"store": "s", "lines": 194_840, "tokens": {"train": 9_000_000}, "bytes": 44_000_000}
    rows = [
        _row(1, "training", 20.0, 1000),
        _row(10, "prepare", 25.0, 300, workers=2, said=summary),
        _row(10, "prepare, 1 worker", 44.0, 200, workers=1),
        _row(10, "prepare, 2 workers", 25.0, 300, workers=2),
        _row(100, "prepare", 260.0, 2100, workers=2),
        _row(100, "training", 21.0, 1100),
    ]
    text = page({**_record(rows), "parallel_ceiling": 1.62})
    assert f"on {describe_cpu()} (1-minute load average 0.10 before, 1.90 after)" in text
    assert (
        "| 10× | prepare | 2 | 25.0 s | 629 MB | 315 MB | 194,840 lines, 9,000,000 tokens" in text
    )
    assert "| 100× | prepare | 2 | 4 min 20 s |" in text
    assert "- pass: The 200,000-token training run's peak anonymous memory at 100× is 1,153" in text
    assert "- FAIL: Peak anonymous memory of preparing 100× is 2.20 GB (≤ 2 GB)" in text
    assert "- pass: Preparing 10× with 2 workers runs at 1.76× the rate of 1 worker" in text
    assert (
        "two processes that only segment the same sample, timed after every stage, reached 1.62×"
        in text
    )
    assert "- pass: Preparing 100× takes 10.40× the time of 10×" in text
    assert "file cache: the kernel drops them" in text and "Word2vec runs 1 epoch" in text
    assert "At 10× preparation is also timed with 1 and with 2 workers" in text


def test_figures_a_run_did_not_measure_are_said_to_be_not_measured() -> None:
    failed = {**_row(1, "training", 3.0, 900), "returncode": 1, "error": "Traceback"}
    assert "failed (exit 1): Traceback" in format_row(failed)
    record = _record([_row(1, "prepare", 3.0, 100, workers=2), failed])
    assert checks(record) and all(holds is None for _, holds in checks(record))
    assert "also timed with 1 and with 2 workers" not in page(record)  # no 10× in this run


STAND_IN = """
    import json, sys, time
    flags = sys.argv[1:]
    if "--corpus" in flags and "fail" in open(flags[flags.index("--corpus") + 1]).read():
        sys.exit("stand-in failure")
    block = bytearray(b"x") * (20 << 20)
    time.sleep(0.3)  # two samples or more
    store = flags[flags.index("--cache-dir") + 1]
    print(json.dumps({"store": store, "lines": 3, "tokens": {"train": 9}, "bytes": 1}))
"""


@pytest.fixture
def stand_in_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage replaced by a module that holds 20 MiB for 0.3 s and prints a prepare summary."""
    (tmp_path / "stand_in_stage.py").write_text(textwrap.dedent(STAND_IN), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    stages = {
        stage: "stand_in_stage " + command.split(" ", 1)[1]
        for stage, command in corpus_scale.STAGES.items()
    }
    monkeypatch.setattr(corpus_scale, "STAGES", stages)


@pytest.mark.usefixtures("stand_in_stages")
def test_every_stage_runs_in_order_and_the_folder_is_removed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = parse_args(["--sizes", "2", "--compare-workers-at", "2", "--work-dir", str(work)])
    printed: list[str] = []
    rows = measure(args, "一行\n".encode(), printed.append)
    assert [row["stage"] for row in rows] == [
        *corpus_scale.STAGES,
        "prepare, 1 worker",
        "prepare, 2 workers",
    ]
    assert len(printed) == len(rows) and printed[0].startswith("| 2× | prepare |")
    assert rows[0]["corpus_bytes"] == 2 * len("一行\n".encode())
    assert all(row["peak_anon_kib"] >= 20 * MIB for row in rows)
    assert rows[0]["said"]["lines"] == 3 and rows[0]["workers"] == args.workers
    assert [row["workers"] for row in rows[-2:]] == [1, 2] and rows[1]["workers"] is None
    assert list(work.iterdir()) == []  # removed without --keep


@pytest.mark.usefixtures("stand_in_stages")
def test_a_failed_stage_ends_its_size_and_the_page_says_why(tmp_path: Path) -> None:
    args = parse_args(["--sizes", "1", "--work-dir", str(tmp_path), "--keep"])
    rows = measure(args, b"fail\n", lambda row: None)
    assert len(rows) == 1 and rows[0]["returncode"] == 1
    assert rows[0]["error"] == "stand-in failure"
    assert "| 1× | prepare |" in format_row(rows[0])
    (kept,) = tmp_path.glob("corpus-scale-*")
    assert (kept / "1x" / "corpus.txt").read_text(encoding="utf-8") == "fail\n"


@pytest.mark.skipif(
    importlib.util.find_spec("model.train.prepare") is None,
    reason="model.train.prepare is not here",
)
def test_the_real_stages_run_end_to_end_on_a_small_source(tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"".join(source_text(PEOPLES_DAILY).splitlines(keepends=True)[:300]))
    output = tmp_path / "corpus-scale.md"
    command = [sys.executable, "-m", "bench.corpus_scale", "--sizes", "1", "--source", str(source)]
    command += ["--workers", "1", "--train-tokens", "2000", "--preset", "plain"]
    command += ["--work-dir", str(tmp_path / "work dir")]
    done = subprocess.run(
        [*command, "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    cpu = describe_cpu().split(",")[0]  # the CPU's name; its torch threads vary by process
    assert done.stdout.split(",")[0] == cpu and "| 1× | evaluation |" in done.stdout
    rows = json.loads(output.with_suffix(".json").read_text(encoding="utf-8"))["rows"]
    assert {row["stage"]: row.get("error") for row in rows if row["returncode"] != 0} == {}
    assert [row["stage"] for row in rows] == list(corpus_scale.STAGES)
    assert all(row["peak_anon_kib"] > 0 for row in rows)
    assert rows[0]["said"]["lines"] == 300 and rows[0]["store_bytes"] > 0
    page_text = output.read_text(encoding="utf-8")
    assert f"on {cpu}, " in page_text and "test ppl" in page_text
    assert not MACHINE_PATH.search(page_text)  # word2vec prints its temporary output path
    assert "--work-dir WORK" in page_text and "work dir" not in page_text


def test_the_parallel_ceiling_times_processes_that_only_segment() -> None:
    sample = "中国经济发展很快。我们热爱和平。\n".encode() * 200
    ceiling = parallel_ceiling(sample, processes=2, rounds=1)
    assert 0.2 < ceiling < 4  # a rate ratio of two processes: near 1 to 2, never absurd
