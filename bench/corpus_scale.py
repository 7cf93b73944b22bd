"""Corpus scale: the time and peak memory of every stage, from raw text to a test perplexity, on
synthetic corpora of 1×, 10× and 100× peoples-daily's text.

    python -m bench.corpus_scale [--sizes 1 10 100] [--workers N] [--output docs/corpus-scale.md]

An N× corpus is the source's raw text (peoples-daily's, tags stripped as model.train reads it,
unless --source names a text file) written N times over, once, to a folder the bench makes under
--work-dir and removes at the end unless --keep. Each stage runs as the documented command line,
a subprocess whose whole process tree is sampled (bench/process_tree.py): prepare (a fresh store
folder for every measured preparation, so none reads an earlier store), vocabulary, word2vec
(1 epoch), a fixed training run of --train-tokens tokens, and evaluation on the test split. At
--compare-workers-at (10× unless told), preparation is also timed with 1 and with 2 workers,
and, after every stage, a reference for what a second core gives on this machine: two
processes segmenting the same sample at once against one alone (two virtual CPUs may share a
core, and jieba's dictionary lookups share the caches; the figure varies from run to run).
Rows are printed as they are measured; the page (bench/corpus_scale_page.py) and its JSON
record go to --output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from bench.corpus_scale_page import TABLE_HEAD, format_row, page
from bench.process_tree import run_sampled
from bench.records import ROOT, portable, write_record
from model.hardware import describe_cpu
from model.tokenizers import Tokenizer, TokenizerSpec, build_tokenizer
from model.train.corpora import PEOPLES_DAILY, resolve_source, text_lines

# each stage's command after `python -m`; each {placeholder} is filled per corpus after the split
# into words, so a path with spaces stays one argument
STAGES: dict[str, str] = {
    "prepare": "model.train.prepare --corpus {corpus} --workers {workers} --cache-dir {store}",
    "vocabulary": "model.train.prepare --corpus {corpus} --cache-dir {store} --vocabulary",
    "word2vec": "model.train.word2vec --corpus {corpus} --output {vectors} --epochs 1 "
    "--cache-dir {store}",
    "training": "model.train --corpus {corpus} --preset {preset} --no-word2vec-init "
    "--max-tokens {train_tokens} --output {checkpoint} --no-progress --cache-dir {store}",
    "evaluation": "model.evaluate --checkpoint {checkpoint} --split test --cache-dir {store} "
    "--json",
}
COMPARED_WORKERS = (1, 2)
DISK_FACTOR = 3  # free space wanted per corpus byte: the corpus, its stores, checkpoints
CEILING_BYTES = 400_000  # text each process segments to measure the parallel ceiling (~2 s)
WORK_NAME = "WORK"  # how the page names --work-dir, wherever it was


def shown_command(stage: str, **values: object) -> str:
    """A stage's command as the page shows it: given values filled in, paths left as names
    (CORPUS, STORE, ...)."""
    words = [word.strip("{}") for word in STAGES[stage].split() if word.startswith("{")]
    names = {word: word.upper() for word in words}
    return "python -m " + STAGES[stage].format(**{**names, **values})


def stage_command(stage: str, values: dict[str, object]) -> list[str]:
    """A stage's command line to run: this interpreter, placeholders filled from values."""
    return [sys.executable, "-m", *(word.format(**values) for word in STAGES[stage].split())]


def source_text(source: str) -> bytes:
    """The text lines model.train reads from source (peoples-daily, a text file, any corpus it
    takes), in order, one per line, as UTF-8: blank lines dropped, peoples-daily's tags
    stripped, exactly as model/train/corpora.py decodes them."""
    lines = text_lines(resolve_source(source, None, None))
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def write_repeated(text: bytes, times: int, path: Path) -> int:
    """Write text times over into path, without holding more than one copy; the bytes written."""
    with path.open("wb") as file:
        for _ in range(times):
            file.write(text)
    return len(text) * times


def last_line(path: Path) -> str:
    """The last non-blank line of a text file ('' when there is none)."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under folder: a store's size on disk."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def output_of(path: Path) -> dict | str:
    """What a stage printed to stdout: the JSON object it printed last (the whole output, as
    training prints it, or its last line, as prepare does), else its lines joined by spaces."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for candidate in (text, last_line(path)):
        with contextlib.suppress(ValueError):
            parsed = json.loads(candidate)
            if isinstance(parsed, dict):
                return parsed
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def run_stage(stage: str, label: str, values: dict[str, object], folder: Path) -> dict:
    """Run one stage on one corpus and return its row: time, peak memory, and what it printed
    or, if it failed, its last error line."""
    logs = folder / label.replace(" ", "-").replace(",", "")
    measured = run_sampled(
        stage_command(stage, values), logs.with_suffix(".out"), logs.with_suffix(".err"), ROOT
    )
    row: dict = {
        "stage": label,
        "workers": values["workers"] if stage == "prepare" else None,
        "returncode": measured.returncode,
        "seconds": measured.seconds,
        "peak_rss_kib": measured.peak_kib["VmRSS"],
        "peak_anon_kib": measured.peak_kib["RssAnon"],
        "samples": measured.samples,
    }
    if measured.returncode != 0:
        row["error"] = last_line(logs.with_suffix(".err"))
        return row
    if stage == "prepare":
        row["store_bytes"] = folder_bytes(Path(str(values["store"])))
    row["said"] = output_of(logs.with_suffix(".out"))
    return row


def measure_size(size: int, text: bytes, work: Path, args: argparse.Namespace) -> Iterator[dict]:
    """Every stage's row on the size× corpus, each yielded when measured; after a failure, the
    stages that need its output are not run."""
    folder = work / f"{size}x"
    folder.mkdir()
    corpus = folder / "corpus.txt"
    corpus_bytes = write_repeated(text, size, corpus)
    values: dict[str, object] = {
        "corpus": corpus,
        "store": folder / "store",
        "vectors": folder / "vectors.bin",
        "checkpoint": folder / "checkpoint",
        "workers": args.workers,
        "train_tokens": args.train_tokens,
        "preset": args.preset,
    }
    for stage in STAGES:
        row = run_stage(stage, stage, values, folder)
        yield {"size": size, "corpus_bytes": corpus_bytes, **row}
        if row["returncode"] != 0:
            return
    if size == args.compare_workers_at:
        for workers in COMPARED_WORKERS:
            store = folder / f"store-{workers}-workers"
            label = f"prepare, {workers} worker" + ("s" if workers > 1 else "")
            compared = {**values, "workers": workers, "store": store}
            row = run_stage("prepare", label, compared, folder)
            shutil.rmtree(store, ignore_errors=True)  # only its time was wanted
            yield {"size": size, "corpus_bytes": corpus_bytes, **row}


_ceiling_tokenizer: Tokenizer | None = None
_ceiling_lines: list[str] = []


def _start_segmenting(lines: list[str]) -> None:
    """Give this process the tokenizer and the sample, and segment it once (jieba loads its
    dictionary on first use, which is not what is timed)."""
    global _ceiling_tokenizer, _ceiling_lines
    _ceiling_tokenizer, _ceiling_lines = build_tokenizer(TokenizerSpec()), lines
    _segment_sample()


def _segment_sample(_: object = None) -> float:
    """Seconds this process takes to segment the sample with the default tokenizer."""
    assert _ceiling_tokenizer is not None
    started = time.perf_counter()
    for line in _ceiling_lines:
        _ceiling_tokenizer.tokenize(line)
    return time.perf_counter() - started


def parallel_ceiling(text: bytes, processes: int = 2, rounds: int = 5) -> float:
    """How many times one process's rate `processes` processes reach together when each
    segments the same sample of `text` (its first CEILING_BYTES) with nothing else to do: the
    most `processes` preparing workers can gain on this machine, whatever the pipeline around
    them. The median of `rounds` rounds, each timing one alone and then all at once."""
    lines = text[:CEILING_BYTES].decode("utf-8", "ignore").splitlines()
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    ratios = []
    with context.Pool(processes, _start_segmenting, (lines,)) as pool:
        for _ in range(rounds):
            alone = pool.apply(_segment_sample)
            started = time.perf_counter()
            pool.map(_segment_sample, range(processes), chunksize=1)
            ratios.append(processes * alone / (time.perf_counter() - started))
    return statistics.median(ratios)


def check_disk(work: Path, text: bytes, sizes: list[int]) -> None:
    """Stop before writing when work's filesystem lacks room for the corpora and their stores."""
    needed = DISK_FACTOR * len(text) * sum(sizes)
    free = shutil.disk_usage(work).free
    if free < needed:
        sys.exit(
            f"{work} has {free / 1e9:.1f} GB free and the corpora and their stores need about "
            f"{needed / 1e9:.1f} GB: pass --work-dir on a larger disk, or fewer --sizes"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 10, 100], help="corpus sizes, × the source"
    )
    parser.add_argument(
        "--source", default=PEOPLES_DAILY, help="the text to repeat: peoples-daily or a text file"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="prepare's --workers"
    )
    parser.add_argument(
        "--compare-workers-at",
        type=int,
        default=10,
        help=f"the size at which prepare is also timed with {COMPARED_WORKERS} workers (none "
        "when it is not among --sizes)",
    )
    parser.add_argument(
        "--train-tokens", type=int, default=200_000, help="the training run's --max-tokens"
    )
    parser.add_argument(
        "--preset", default="default", help="the training run's --preset (model.train's)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the bench makes its folder of corpora, stores and checkpoints",
    )
    parser.add_argument("--keep", action="store_true", help="keep that folder at the end")
    parser.add_argument(
        "--output", type=Path, default=Path("docs/corpus-scale.md"), help="the page to write"
    )
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, text: bytes, emit: Callable[[str], None]) -> list[dict]:
    """Every row of every size of text, each emitted as a table row when measured."""
    args.work_dir.mkdir(parents=True, exist_ok=True)
    check_disk(args.work_dir, text, args.sizes)
    work = Path(tempfile.mkdtemp(prefix="corpus-scale-", dir=args.work_dir))
    rows = []
    try:
        for size in args.sizes:
            for row in measure_size(size, text, work, args):
                rows.append(row)
                emit(format_row(row))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Measure every size, printing rows as they come, then write the page and its record."""
    args = parse_args(argv)
    given = [WORK_NAME if word == str(args.work_dir) else word for word in argv or sys.argv[1:]]
    command = " ".join(["python -m bench.corpus_scale", *map(shlex.quote, given)])
    print(describe_cpu(), command, "", *TABLE_HEAD, sep="\n", flush=True)
    load_before = os.getloadavg()[0]
    text = source_text(args.source)
    rows = measure(args, text, lambda row: print(row, flush=True))
    ceiling = (
        parallel_ceiling(text, max(COMPARED_WORKERS))
        if args.compare_workers_at in args.sizes
        else None
    )
    record = {
        "command": command,
        "machine": describe_cpu(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "load_average": [load_before, os.getloadavg()[0]],
        "source": args.source,
        "source_bytes": len(text),
        "workers": args.workers,
        "compare_workers_at": args.compare_workers_at,
        "parallel_ceiling": ceiling,
        "train_tokens": args.train_tokens,
        "stages": {
            stage: shown_command(
                stage, train_tokens=args.train_tokens, workers=args.workers, preset=args.preset
            )
            for stage in STAGES
        },
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # the page, like the record, names no path of ours: --work-dir becomes WORK, the rest portable
    named = json.dumps(record).replace(json.dumps(str(args.work_dir))[1:-1], WORK_NAME)
    shareable = cast(dict, portable(json.loads(named)))
    args.output.write_text(page(shareable), encoding="utf-8")
    write_record(args.output.with_suffix(".json"), shareable)
    print(f"wrote {args.output} and {args.output.with_suffix('.json')}")


if __name__ == "__main__":
    main()
