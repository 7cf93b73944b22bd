"""docs/corpus-scale.md from bench.corpus_scale's record: the rows as a table, each corpus's
counts, and every figure the bench must show, stated as measured with whether it holds."""

from __future__ import annotations

import json

GB = 1e9
TABLE_HEAD = [
    "| corpus | stage | workers | wall time | peak resident (VmRSS) | peak anonymous (RssAnon) "
    "| what it printed |",
    "|---|---|---:|---:|---:|---:|---|",
]


def megabytes(kib: int) -> str:
    """KiB as the page writes memory: 1,234 MB (10^6 bytes)."""
    return f"{kib * 1024 / 1e6:,.0f} MB"


def duration(seconds: float) -> str:
    """Seconds as the page writes wall time: 18.3 s, or 2 min 14 s from a minute on."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def said(row: dict) -> str:
    """What a stage printed, in words for a table cell (the JSON of prepare, training and
    evaluation summed up, another stage's output as it came), or why it failed."""
    printed = row.get("said")
    if row["returncode"] != 0:
        text = f"failed (exit {row['returncode']}): {row.get('error', '')}"
    elif not isinstance(printed, dict):
        text = str(printed)
    elif "vocabulary" in printed:
        vocabulary = printed["vocabulary"]
        text = (
            f"{vocabulary['size']:,} words (cap {vocabulary['cap']}), covering "
            f"{vocabulary['coverage']:.2%} of train tokens"
        )
    elif "tokens" in printed:  # prepare's summary
        text = f"{printed['lines']:,} lines, {sum(printed['tokens'].values()):,} tokens"
    elif "test_ppl" in printed:  # training's record
        text = (
            f"{printed['tokens_seen']:,} tokens trained; valid ppl "
            f"{printed['best_valid_ppl']:.1f}, test ppl {printed['test_ppl']:.1f}"
        )
    elif "perplexity" in printed:  # evaluate --json
        text = f"test ppl {printed['perplexity']:.1f} over {printed['num_tokens']:,} tokens"
    else:
        text = json.dumps(printed, ensure_ascii=False)
    return text.replace("|", "\\|")


def format_row(row: dict) -> str:
    """One measured stage as a table row."""
    workers = "" if row["workers"] is None else str(row["workers"])
    return (
        f"| {row['size']}× | {row['stage']} | {workers} | {duration(row['seconds'])} | "
        f"{megabytes(row['peak_rss_kib'])} | {megabytes(row['peak_anon_kib'])} | {said(row)} |"
    )


def find(rows: list[dict], size: int, stage: str) -> dict | None:
    """The row of a stage that succeeded on the size× corpus, None if there is none."""
    return next(
        (
            row
            for row in rows
            if row["size"] == size and row["stage"] == stage and row["returncode"] == 0
        ),
        None,
    )


def _training_memory(record: dict) -> list[tuple[str, bool | None]]:
    small, large = (find(record["rows"], size, "training") for size in (1, 100))
    name = f"The {record['train_tokens']:,}-token training run's peak anonymous memory"
    if small is None or large is None:
        return [(f"{name} at 100× against 1× (≤ 1.25×)", None)]
    ratio = large["peak_anon_kib"] / small["peak_anon_kib"]
    return [
        (
            f"{name} at 100× is {megabytes(large['peak_anon_kib'])} against "
            f"{megabytes(small['peak_anon_kib'])} at 1×: {ratio:.2f}× (≤ 1.25×)",
            ratio <= 1.25,
        )
    ]


def _prepare_memory(record: dict) -> list[tuple[str, bool | None]]:
    row = find(record["rows"], 100, "prepare")
    if row is None:
        return [("Peak memory of preparing 100× (≤ 2 GB)", None)]
    return [
        (
            f"Peak {kind} memory of preparing 100× is {row[key] * 1024 / GB:.2f} GB (≤ 2 GB)",
            row[key] * 1024 <= 2 * GB,
        )
        for kind, key in (("anonymous", "peak_anon_kib"), ("resident", "peak_rss_kib"))
    ]


def _workers_rate(record: dict) -> list[tuple[str, bool | None]]:
    size = record["compare_workers_at"]
    one, two = (
        find(record["rows"], size, stage) for stage in ("prepare, 1 worker", "prepare, 2 workers")
    )
    if one is None or two is None:
        return [(f"Preparing {size}× with 2 workers against 1 (≥ 1.7×)", None)]
    ratio = one["seconds"] / two["seconds"]  # the same bytes, so the rate ratio
    ceiling = record.get("parallel_ceiling")
    machine = (
        f"; two processes that only segment the same sample, timed after every stage, reached "
        f"{ceiling:.2f}× one's rate, a reference for what the machine's second core gives"
        if ceiling
        else ""
    )
    return [
        (
            f"Preparing {size}× with 2 workers runs at {ratio:.2f}× the rate of 1 worker "
            f"({duration(two['seconds'])} against {duration(one['seconds'])}{machine}) (≥ 1.7×)",
            ratio >= 1.7,
        )
    ]


def _prepare_time(record: dict) -> list[tuple[str, bool | None]]:
    ten, hundred = (find(record["rows"], size, "prepare") for size in (10, 100))
    if ten is None or hundred is None:
        return [("Preparing 100× against 10× (≤ 12× the time)", None)]
    ratio = hundred["seconds"] / ten["seconds"]
    return [
        (
            f"Preparing 100× takes {ratio:.2f}× the time of 10× ({duration(hundred['seconds'])} "
            f"against {duration(ten['seconds'])}, {record['workers']} workers) (≤ 12×)",
            ratio <= 12,
        )
    ]


def checks(record: dict) -> list[tuple[str, bool | None]]:
    """Each figure the bench must show, in words, and whether it holds (None: this run did not
    measure the sizes it needs)."""
    return [
        *_training_memory(record),
        *_prepare_memory(record),
        *_workers_rate(record),
        *_prepare_time(record),
    ]


def _corpora(record: dict) -> list[str]:
    lines = [
        "| corpus | text | lines | train tokens | valid tokens | test tokens | store |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in dict.fromkeys(row["size"] for row in record["rows"]):
        row = find(record["rows"], size, "prepare") or {}
        said = row.get("said")
        summary: dict = said if isinstance(said, dict) else {}
        tokens = summary.get("tokens", {})
        counts = [f"{tokens[s]:,}" if s in tokens else "—" for s in ("train", "valid", "test")]
        store = f"{row['store_bytes'] / 1e6:,.1f} MB" if "store_bytes" in row else "—"
        lines.append(
            f"| {size}× | {size * record['source_bytes'] / 1e6:,.1f} MB | "
            f"{summary.get('lines', 0):,} | {' | '.join(counts)} | {store} |"
        )
    return lines


def _compared(record: dict) -> str:
    """The sentence on the 1- and 2-worker preparations, when the run made them."""
    size = record["compare_workers_at"]
    if not any(row["size"] == size for row in record["rows"]):
        return ""
    return f" At {size}× preparation is also timed with 1 and with 2 workers, in the same run."


def _verdict(holds: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "not measured in this run"}[holds]


def page(record: dict) -> str:
    """docs/corpus-scale.md from a record of bench.corpus_scale."""
    before, after = record["load_average"]
    stages = record["stages"]
    lines = [
        "# Corpus scale: the time and memory of each stage as the corpus grows",
        "",
        f"Measured {record['date']} on {record['machine']} (1-minute load average "
        f"{before:.2f} before, {after:.2f} after).",
        "",
        f"Command: `{record['command']}`.",
        "",
        f"Each N× corpus is {record['source']}'s raw text ({record['source_bytes'] / 1e6:.1f} MB, "
        "one line per line, as model.train reads it before its split) written N times over. "
        "Every stage runs as its own command line, in this order:",
        "",
        *(f"- {stage}: `{command}`" for stage, command in stages.items()),
        "",
        "Word2vec runs 1 epoch; training stops after a fixed "
        f"{record['train_tokens']:,} tokens, so its time and memory should not depend on the "
        "corpus. Each measured preparation writes a fresh store folder, so none reads an "
        f"earlier store.{_compared(record)}",
        "",
        "## How memory is measured",
        "",
        "Memory is summed over the stage's whole process tree (its worker processes included), "
        "read from each process's /proc/PID/status every 0.15 s; a peak shorter than that can "
        "be missed. Resident memory (VmRSS) counts the pages of the memory-mapped store a "
        "process has read, but those are file cache: the kernel drops them under pressure and "
        "reads them again from the file. Anonymous memory (RssAnon: heap, stacks, private "
        "copies) is what a process cannot give back, so it is the figure that must not grow "
        "with the corpus. A page shared by several processes (a store page two workers read, "
        "or the pages a forked worker still shares with its parent) counts once in each, so "
        "both sums can overstate what is in memory.",
        "",
        "## Corpora",
        "",
        *_corpora(record),
        "",
        "## Stages",
        "",
        *TABLE_HEAD,
        *(format_row(row) for row in record["rows"]),
        "",
        "## Must show",
        "",
        *(f"- {_verdict(holds)}: {text}" for text, holds in checks(record)),
    ]
    return "\n".join(lines) + "\n"
