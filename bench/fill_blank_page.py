"""The page bench.fill_blank writes (docs/fill-blank.md) from its record: the rankings'
tables, the service's speed and the issue's floors, each with whether it holds."""

from __future__ import annotations

import math

RANKINGS = {
    "a": "left only",
    "b": "whole line, forward words",
    "c": "whole line, forward and backward words",
}


def floors(record: dict) -> list[tuple[str, bool]]:
    """The figures the issue asks for at each count of candidates, each with whether it
    holds."""
    figures = record["all"]
    left_only = figures["a"]["top1"]
    checks = []
    for count in record["candidates"]:
        line, both = figures[f"b/{count}"], figures[f"c/{count}"]
        whole_line = max(line["top1"], both["top1"])
        ratio = whole_line / left_only if left_only else math.inf
        checks += [
            (
                f"`candidates` {count}: whole-line top-1 {whole_line:.3f} is {ratio:.2f}× "
                f"the left-only top-1 {left_only:.3f} (≥ 1.5×)",
                ratio >= 1.5,
            ),
            (
                f"`candidates` {count}: with the backward model's, top-5 is "
                f"{both['top5']:.3f} against {line['top5']:.3f} without (not lower)",
                both["top5"] >= line["top5"],
            ),
        ]
    speed = record["service"]
    if speed:
        ratio = speed["fill_blank_ms"]["both"] / speed["perplexity_ms"]
        checks.append(
            (
                f"a /fill-blank request (top_k {speed['top_k']}, both models) on a "
                f"{speed['line_tokens']}-token "
                f"line takes {ratio:.2f}× a /perplexity request for the line (≤ 3×)",
                ratio <= 3,
            )
        )
    return checks


def label(key: str) -> str:
    """The table's name of a ranking key ("a", "b/16", "c/16")."""
    ranking, _, count = key.partition("/")
    return f"({ranking}) {RANKINGS[ranking]}" + (f", `candidates` {count}" if count else "")


def _table(figures: dict) -> list[str]:
    rows = [
        "| ranking | top-1 | top-5 | right word among those ranked | ms per blank |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, f in figures.items():
        rows.append(
            f"| {label(key)} | {f['top1']:.3f} | {f['top5']:.3f} | {f['ranked']:.3f} | "
            f"{f['ms_per_blank']:.1f} |"
        )
    return rows


def page(record: dict) -> str:
    """docs/fill-blank.md from a record."""
    weights = "int8 (as the service serves them on the CPU)"
    if record["weights"] != "int8":
        weights = "float"
    *firsts, last = [str(count) for count in record["candidates"]]
    counts = f"{', '.join(firsts)} and {last}" if firsts else last
    before, after = record["load_average"]
    lines = [
        "# Fill in the blank: what both sides buy",
        "",
        f"`{record['command']}` on {record['machine']} (1-minute load average {before:.2f} "
        f"before, {after:.2f} after).",
        "",
        f"{record['blanks']} blanks drawn with seed {record['seed']} from the "
        f"{record['test_lines']} lines of the test split, one in-vocabulary token taken out of "
        f"a line per blank ({record['punctuation_blanks']} of them punctuation). Forward model "
        f"`{record['forward']}`, backward model `{record['backward']}`, {weights} weights; "
        f"{counts} words proposed by each model (`candidates`), and where the words proposed "
        f"are fewer than {record['top_k']} (`top_k`), more of the forward model's, as "
        "`POST /fill-blank` proposes them. Each blank runs alone, its candidate lines "
        "scored in one batch, as one `POST /fill-blank` request's are, but on the model's "
        "step directly (model/runner.py), without the server and its engine thread.",
        "",
        "- (a) left only: what `/predict-next` offers after the left side (`<eos>` left out).",
        "- (b) whole line: the forward model's words ranked by the log-probability of the "
        "whole filled line, so the right side votes (`/fill-blank` with `backward: false`).",
        "- (c) both sides: (b) with the backward model's words before the right side added "
        "(`/fill-blank` with its defaults but `candidates`).",
        '- "Right word among those ranked": the ceiling of top-k for any k, since a word no '
        "model proposed cannot be ranked.",
        "",
        "## All blanks",
        "",
        *_table(record["all"]),
    ]
    if record["words"]:
        lines += [
            "",
            f"## Words only ({record['blanks'] - record['punctuation_blanks']} blanks, "
            "punctuation left out)",
            "",
            *_table(record["words"]),
        ]
    if record["service"]:
        lines += ["", *_speed_section(record["service"])]
    lines += ["", "## Floors", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in floors(record)]
    return "\n".join(lines) + "\n"


def _speed_section(speed: dict) -> list[str]:
    perplexity, fill = speed["perplexity_ms"], speed["fill_blank_ms"]
    rows = {
        "both": "both models",
        "candidates_8": "both models, `candidates: 8`",
        "forward": "`backward: false`",
    }
    return [
        "## The service",
        "",
        "One live server (`uvicorn app.main:create_app --factory`, NEXTWORD_MODELS naming both "
        f"models) on the same machine; median ms of {speed['requests']} rounds of one request "
        "of each kind, sent one after another, for the test line of "
        f"{speed['line_tokens']} tokens `{speed['line']}` and for the same line with its middle "
        "token as the blank (the request's defaults unless named).",
        "",
        "| request | ms | × /perplexity |",
        "|---|---:|---:|",
        f"| /perplexity | {perplexity:.1f} | 1.00 |",
        *(
            f"| /fill-blank, top_k {speed['top_k']}, {rows[name]} | {ms:.1f} | "
            f"{ms / perplexity:.2f} |"
            for name, ms in fill.items()
        ),
    ]
