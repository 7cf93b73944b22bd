"""What the right side of a blank buys: blanks drawn from the test split, filled three ways.

    python -m bench.fill_blank   # docs/fill-blank.md and docs/fill-blank.json

Each blank is one in-vocabulary token (never <unk>) of one test line, drawn with a fixed seed:
a line uniformly, then a position in it uniformly, no (line, position) pair twice. The line's
tokens are the corpus's own, so each side is the tokens the model was evaluated on. Three
rankings of the words for the gap (model/fill_blank.py), each counted right at top 1 and top 5:

  (a) left only: the forward model's most probable words after the left side (what
      /predict-next offers with top_k 10, <eos> left out);
  (b) whole line, forward model alone: the words /fill-blank ranks with only the forward model
      asked ("backward": false), best first by the whole filled line's log-probability;
  (c) both sides: the words /fill-blank ranks with the backward model's words before the
      right side added.

(b) and (c) are measured at the request's default candidates ("default": FORWARD_ONLY_CANDIDATES
alone, WITH_BACKWARD_CANDIDATES each with a backward model, model/fill_blank.py) and at each
count given to --candidates, all with top_k 10 (the request's default).

Every blank runs alone through the service's own engines and its one entry point for a blank
(app/engine/fill_blank.py's fill_in_blank, what POST /fill-blank calls), so every ranking is
the service's answer, on the weights it serves on this CPU. A ranking's ms per blank is the
mean wall time of its call: (a) the forward engine's prediction; (b) and (c) fill_in_blank.

Then the service itself (unless --speed-requests 0): one live server serving both models, a
test line of 40 tokens, the median ms of /perplexity for the line against /fill-blank (top_k
10) for it with its middle token as the blank.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from app.engine import Engine
from app.engine.fill_blank import fill_in_blank
from app.settings import Settings
from bench.records import write_record
from model.checkpoint import Checkpoint
from model.fill_blank import (
    BLANK,
    FORWARD_ONLY_CANDIDATES,
    WITH_BACKWARD_CANDIDATES,
    Gap,
    merge_proposals,
    words_to_ask,
)
from model.hardware import describe_cpu
from model.quantize import served_weights
from model.train.corpora import trained_corpus
from model.train.data import open_store
from model.vocab import SPECIALS, Vocab
from tests.live_server import uvicorn_server

ROOT = Path(__file__).resolve().parent.parent
RANKINGS = {
    "a": "left only",
    "b": "whole line, forward model alone",
    "c": "whole line, forward and backward words",
}
TOP_K = 10  # words a ranking returns: the request's default top_k
SPEED_LINE_TOKENS = 40  # the length of the line the service's speed is measured on
T = TypeVar("T")


@dataclass(frozen=True)
class BlankSpot:
    """A blank: the line (index in the split) and the position of the token taken out."""

    line: int
    position: int


def draw_blanks(
    lines: Sequence[Sequence[str]], vocab: Vocab, count: int, seed: int
) -> list[BlankSpot]:
    """count distinct blanks, each a line drawn uniformly among those with an in-vocabulary
    token, then one of its in-vocabulary tokens drawn uniformly; the same seed gives the same
    blanks. ValueError when the split holds fewer than count such tokens."""
    eligible = {
        index: [p for p, token in enumerate(line) if token in vocab and token not in SPECIALS]
        for index, line in enumerate(lines)
    }
    eligible = {index: spots for index, spots in eligible.items() if spots}
    available = sum(len(spots) for spots in eligible.values())
    if count > available:
        raise ValueError(
            f"the split holds {available} in-vocabulary tokens, fewer than the {count} blanks "
            "asked for: ask for fewer with --blanks"
        )
    rng = random.Random(seed)
    indices = sorted(eligible)
    drawn: dict[BlankSpot, None] = {}
    while len(drawn) < count:
        line = rng.choice(indices)
        drawn[BlankSpot(line, rng.choice(eligible[line]))] = None
    return list(drawn)


def is_punctuation(token: str) -> bool:
    """Whether every character of token is punctuation (Unicode category P*)."""
    return all(unicodedata.category(char).startswith("P") for char in token)


@dataclass
class Tally:
    """How one ranking did: blanks whose word came first, among the first five, among the
    words ranked at all, and the seconds each blank took."""

    top1: int = 0
    top5: int = 0
    ranked: int = 0
    seconds: list[float] = field(default_factory=list)

    def add(self, ranking: Sequence[str], word: str, seconds: float) -> None:
        """Count one blank: the ranked words, best first, and the right word."""
        self.top1 += ranking[:1] == [word]
        self.top5 += word in ranking[:5]
        self.ranked += word in ranking
        self.seconds.append(seconds)

    def summary(self, blanks: int) -> dict:
        """The shares of blanks right at top 1 and top 5, with the words ranked at all, and
        the mean ms per blank."""
        return {
            "top1": self.top1 / blanks,
            "top5": self.top5 / blanks,
            "ranked": self.ranked / blanks,
            "ms_per_blank": 1000 * statistics.mean(self.seconds),
        }


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    """call's result and the seconds awaiting it took."""
    started = time.perf_counter()
    result = await call
    return result, time.perf_counter() - started


@dataclass(frozen=True)
class Engines:
    """The forward and the backward model, each in a running engine as the service runs it."""

    forward: Engine
    backward: Engine

    def gaps(self, left: Sequence[str], right: Sequence[str]) -> tuple[Gap, Gap]:
        """The blank between the tokens left and right in each model's vocabulary."""
        encode = (self.forward.vocab.encode, self.backward.vocab.encode)
        forward, backward = (Gap(tuple(e(left)), tuple(e(right))) for e in encode)
        return forward, backward


async def rank_three_ways(
    engines: Engines, gaps: tuple[Gap, Gap], counts: Sequence[int | None]
) -> dict[str, tuple[list[str], float]]:
    """The words of each ranking of one blank, best first, and the seconds it took: "a", then
    "b/k" and "c/k" for each count k of words each model proposes (None: the request's
    default, keyed "default"). Every ranking is what the service answers."""
    forward, backward = engines.forward, engines.backward
    gap, backward_gap = gaps
    left = forward.encoder.from_ids(list(gap.left))
    predicted = forward.predict_next(left, words_to_ask(TOP_K), cache=False)
    prediction, left_s = await timed(predicted)
    proposed = {"forward": [c.token for c in prediction.candidates]}
    alone = merge_proposals(proposed, forward.vocab, TOP_K)
    rankings = {"a": ([forward.vocab.itos[p.word] for p in alone], left_s)}
    right = backward.encoder.from_ids(backward_gap.before("backward"))
    for count in counts:
        key = "default" if count is None else str(count)
        line = await timed(fill_in_blank(forward, gap, TOP_K, count))
        both = await timed(fill_in_blank(forward, gap, TOP_K, count, (backward, right)))
        for ranking, (words, seconds) in (("b", line), ("c", both)):
            rankings[f"{ranking}/{key}"] = ([w.token for w in words], seconds)
    return rankings


async def fill_each(
    engines: Engines,
    lines: Sequence[Sequence[str]],
    spots: Sequence[BlankSpot],
    counts: Sequence[int | None],
    progress: Callable[[int, dict[str, dict[str, Tally]]], None] = lambda done, tallies: None,
) -> dict[str, dict[str, Tally]]:
    """Every blank ranked every way (rank_three_ways): a Tally per ranking for all blanks
    ("all") and for those whose word is not punctuation ("words")."""
    tallies: dict[str, dict[str, Tally]] = {"all": {}, "words": {}}
    for done, spot in enumerate(spots, 1):
        tokens = lines[spot.line]
        gaps = engines.gaps(tokens[: spot.position], tokens[spot.position + 1 :])
        word = tokens[spot.position]
        groups = ["all"] if is_punctuation(word) else ["all", "words"]
        for key, (ranking, seconds) in (await rank_three_ways(engines, gaps, counts)).items():
            for group in groups:
                tallies[group].setdefault(key, Tally()).add(ranking, word, seconds)
        progress(done, tallies)
    return tallies


def start_engines(args: argparse.Namespace, weights: str) -> Engines:
    """Both models loaded and started as the service runs them (their settings otherwise the
    service's defaults)."""
    settings = {"quantize": weights, "threads": args.threads}
    forward = Engine.load(Settings(model_dir=args.forward, served_model_name="forward", **settings))
    backward = Engine.load(
        Settings(model_dir=args.backward, served_model_name="backward", **settings)
    )
    for engine in (forward, backward):
        engine.start()
    return Engines(forward, backward)


def lines_of_test_split(forward: Checkpoint, backward: Checkpoint) -> list[list[str]]:
    """The tokens of each line of the test split of the corpus both checkpoints were trained
    on; ValueError when they were trained on different corpora."""
    source, files, text_field = trained_corpus(forward.metadata)
    if trained_corpus(backward.metadata) != (source, files, text_field):
        raise ValueError(
            f"{forward.directory} and {backward.directory} were trained on different corpora: "
            "give a backward model of the forward model's corpus"
        )
    return open_store(source, forward.tokenizer_spec, files, text_field).token_lines("test")


def speed_text(lines: Sequence[Sequence[str]], tokens: int = SPEED_LINE_TOKENS) -> tuple[str, str]:
    """(a test line of `tokens` tokens as text, the same with its middle token as the blank):
    the line the service's speed is measured on."""
    line = next((line for line in lines if len(line) == tokens), None)
    if line is None:
        raise ValueError(f"the test split holds no line of {tokens} tokens")
    middle = tokens // 2
    return "".join(line), "".join(line[:middle]) + BLANK + "".join(line[middle + 1 :])


def interleaved_medians(
    client: httpx.Client, requests: dict[str, tuple[str, dict]], rounds: int
) -> dict[str, float]:
    """The median ms of each named request (path, body), sent one after another in `rounds`
    rounds of one of each (after one unmeasured round): a slow moment of a shared machine
    falls on every kind alike."""
    durations: dict[str, list[float]] = {name: [] for name in requests}
    for round_ in range(1 + rounds):
        for name, (path, body) in requests.items():
            started = time.perf_counter()
            response = client.post(path, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
            if round_:
                durations[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(times) for name, times in durations.items()}


FILL_REQUESTS = {  # the /fill-blank requests timed: the defaults, more words, forward only
    "both": {},
    "candidates_16": {"candidates": 16},
    "forward": {"backward": False},
}


def service_speed(args: argparse.Namespace, line: str, blanked: str) -> dict:
    """ms of /perplexity for the line and of /fill-blank (top_k 10) for it with its blank, on
    one live server serving both models: with the request's defaults, with 16 words from each
    model, and without the backward model's words."""
    models = json.dumps({"forward": str(args.forward), "backward": str(args.backward)})
    with (
        tempfile.TemporaryDirectory() as logs,
        uvicorn_server(args.forward, Path(logs), models=models) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        tokens = client.post("/perplexity", json={"text": line}).json()["results"][0]
        fill = {"text": blanked, "top_k": 10}
        requests = {"perplexity": ("/perplexity", {"text": line})}
        requests |= {name: ("/fill-blank", fill | extra) for name, extra in FILL_REQUESTS.items()}
        medians = interleaved_medians(client, requests, args.speed_requests)
        return {
            "line": line,
            "line_tokens": tokens["num_tokens"] - 1,  # its closing <eos> is a target too
            "requests": args.speed_requests,
            "perplexity_ms": medians.pop("perplexity"),
            "fill_blank_ms": medians,
        }


def measure(args: argparse.Namespace) -> dict:
    """The record: the settings, the machine (with its load, since a shared machine slows
    every figure of ms) and each ranking's figures."""
    load_before = os.getloadavg()[0]
    weights = served_weights(args.weights, "cpu")
    engines = start_engines(args, weights)
    try:
        forward, backward = engines.forward.checkpoint, engines.backward.checkpoint
        lines = lines_of_test_split(forward, backward)
        spots = draw_blanks(lines, forward.vocab, args.blanks, args.seed)
        punctuation = sum(is_punctuation(lines[s.line][s.position]) for s in spots)

        def progress(done: int, tallies: dict[str, dict[str, Tally]]) -> None:
            if done % args.report_every == 0 or done == len(spots):
                shown = "  ".join(
                    f"({key}) {t.top1 / done:.3f} {t.top5 / done:.3f} "
                    f"{1000 * statistics.mean(t.seconds):.0f} ms"
                    for key, t in tallies["all"].items()
                )
                print(f"{done:5d} blanks, top-1 top-5 ms:  {shown}", flush=True)

        counts = [None, *args.candidates]
        tallies = asyncio.run(fill_each(engines, lines, spots, counts, progress))
    finally:
        engines.forward.stop()
        engines.backward.stop()
    words = len(spots) - punctuation
    speed = service_speed(args, *speed_text(lines)) if args.speed_requests else None
    return {
        "machine": describe_cpu(),
        "load_average": [load_before, os.getloadavg()[0]],
        "forward": str(args.forward),
        "backward": str(args.backward),
        "weights": weights,
        "blanks": len(spots),
        "punctuation_blanks": punctuation,
        "seed": args.seed,
        "candidates": ["default", *args.candidates],
        "default_candidates": {
            "forward_only": FORWARD_ONLY_CANDIDATES,
            "with_backward": WITH_BACKWARD_CANDIDATES,
        },
        "test_lines": len(lines),
        "all": {key: t.summary(len(spots)) for key, t in tallies["all"].items()},
        "words": {key: t.summary(words) for key, t in tallies["words"].items()} if words else {},
        "service": speed,
    }


def floors(record: dict) -> list[tuple[str, bool]]:
    """The figures issue 33 asks for, each with whether it holds: at the request's defaults,
    top-1 against the left-only top-1 with the forward model alone and with both; at each count
    given, top-5 with the backward model's words against without; a /fill-blank request with
    both models against a /perplexity request."""
    figures = record["all"]
    left_only = figures["a"]["top1"]
    checks = []
    for key, who, floor in (("b", "the forward model alone", 1.5), ("c", "both models", 1.6)):
        top1 = figures[f"{key}/default"]["top1"]
        ratio = top1 / left_only if left_only else math.inf
        checks.append(
            (
                f"default candidates, {who}: whole-line top-1 {top1:.3f} is {ratio:.2f}× the "
                f"left-only top-1 {left_only:.3f} (≥ {floor}×)",
                ratio >= floor,
            )
        )
    for count in record["candidates"][1:]:
        line, both = figures[f"b/{count}"], figures[f"c/{count}"]
        checks.append(
            (
                f"{count} candidates each: with the backward model's, top-5 is "
                f"{both['top5']:.3f} against {line['top5']:.3f} without (not lower)",
                both["top5"] >= line["top5"],
            )
        )
    speed = record["service"]
    if speed:
        ratio = speed["fill_blank_ms"]["both"] / speed["perplexity_ms"]
        checks.append(
            (
                f"a /fill-blank request (top_k 10, both models, default candidates) on a "
                f"{speed['line_tokens']}-token line takes {ratio:.2f}× a /perplexity request "
                "for the line (≤ 4×)",
                ratio <= 4,
            )
        )
    return checks


def label(key: str, defaults: dict) -> str:
    """The table's name of a ranking key ("a", "b/default", "c/16")."""
    ranking, _, count = key.partition("/")
    if count == "default":
        each = defaults["with_backward"] if ranking == "c" else defaults["forward_only"]
        count = f"default ({each})"
    return f"({ranking}) {RANKINGS[ranking]}" + (f", {count} each" if count else "")


def _table(figures: dict, defaults: dict) -> list[str]:
    rows = [
        "| ranking | top-1 | top-5 | right word among those ranked | ms per blank |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, f in figures.items():
        rows.append(
            f"| {label(key, defaults)} | {f['top1']:.3f} | {f['top5']:.3f} | {f['ranked']:.3f} | "
            f"{f['ms_per_blank']:.1f} |"
        )
    return rows


def page(record: dict) -> str:
    """docs/fill-blank.md from a record."""
    weights = "int8 (as the service serves them on the CPU)"
    if record["weights"] != "int8":
        weights = "float"
    defaults = record["default_candidates"]
    counts = (
        f"the request's default ({defaults['forward_only']} with the forward model alone, "
        f"{defaults['with_backward']} each with the backward model)"
    )
    if len(record["candidates"]) > 1:
        counts += " and " + ", ".join(str(count) for count in record["candidates"][1:])
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
        f"{counts} words proposed by each model, top_k {TOP_K}. Each blank runs alone "
        "through the service's engines and the entry point `POST /fill-blank` calls "
        "(app/engine/fill_blank.py), so every ranking is the service's answer; the server's "
        "HTTP layer is timed below.",
        "",
        "- (a) left only: what `/predict-next` offers after the left side (`<eos>` left out).",
        "- (b) whole line, forward model alone: `/fill-blank` with `backward: false`, the "
        "forward model's words ranked by the log-probability of the whole filled line, so the "
        "right side votes.",
        "- (c) both sides: `/fill-blank` with the backward model's words before the right side "
        "added.",
        '- "Right word among those ranked": the ceiling of top-k for any k, since a word no '
        "model proposed cannot be ranked.",
        "",
        "## All blanks",
        "",
        *_table(record["all"], record["default_candidates"]),
    ]
    if record["words"]:
        lines += [
            "",
            f"## Words only ({record['blanks'] - record['punctuation_blanks']} blanks, "
            "punctuation left out)",
            "",
            *_table(record["words"], record["default_candidates"]),
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
        "candidates_16": "both models, `candidates: 16`",
        "forward": "`backward: false` (the forward model alone)",
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
            f"| /fill-blank, top_k 10, {rows[name]} | {ms:.1f} | {ms / perplexity:.2f} |"
            for name, ms in fill.items()
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.fill_blank", description=__doc__)
    parser.add_argument("--forward", type=Path, default=Path("checkpoints/default"))
    parser.add_argument("--backward", type=Path, default=Path("checkpoints/backward"))
    parser.add_argument("--blanks", type=int, default=1000, help="blanks to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    parser.add_argument(
        "--candidates",
        type=int,
        nargs="*",
        default=[16],
        help="counts of words each model proposes, besides the request's default: a row of (b) "
        "and (c) each",
    )
    parser.add_argument(
        "--weights",
        choices=("auto", "none", "int8"),
        default="auto",
        help="auto: what the service serves on this CPU (int8 only with VNNI or AMX); none: float",
    )
    parser.add_argument(
        "--speed-requests",
        type=int,
        default=30,
        help="rounds of one request per kind timed on a live server (0: no server)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (torch's own)")
    parser.add_argument("--report-every", type=int, default=100, help="blanks between lines")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "fill-blank.md")
    args = parser.parse_args(argv)
    record = measure(args)
    record["command"] = " ".join(
        ["python -m bench.fill_blank", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    ).strip()
    args.output.write_text(page(record), encoding="utf-8")
    write_record(args.output.with_suffix(".json"), record)
    print(page(record), flush=True)


if __name__ == "__main__":
    main()
