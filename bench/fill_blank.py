"""What the right side of a blank buys: blanks drawn from the test split, filled three ways.

    python -m bench.fill_blank   # docs/fill-blank.md and docs/fill-blank.json

Each blank is one in-vocabulary token (never <unk>) of one test line, drawn with a fixed seed:
a line uniformly, then a position in it uniformly, no (line, position) pair twice. The line's
tokens are the corpus's own, so each side is the tokens the model was evaluated on. Three
rankings of the words for the gap (model/fill_blank.py), each counted right at top 1 and top 5:

  (a) left only: the forward model's most probable words after the left side (what
      /predict-next offers, <eos> left out);
  (b) whole line: the forward model's --candidates words after the left side, ranked by the
      forward model's log-probability of the whole filled line;
  (c) both sides: (b) with the backward model's --candidates words before the right side
      added to the words ranked.

(b) and (c) are measured for each count given to --candidates (6, 8 and 16 unless told; the
service's default is 6).

Every blank runs alone, its rows one batch, as one request's rows run in the service
(model/runner.py's step on the weights the service serves on this CPU). A ranking's ms per
blank is the mean wall time of the steps it needs: (a) the forward proposal; (b) the forward
model's one read of the left side, its proposal at the blank and its filled lines; (c) the
backward proposal, then (b) with the backward model's words added.

Then the service itself (unless --speed-requests 0): one live server serving both models, a
test line of 40 tokens, the median ms of /perplexity for the line against /fill-blank (top_k
10) for it with its middle token as the blank.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import torch

from bench.records import write_record
from model.checkpoint import Checkpoint
from model.fill_blank import BLANK, BlankFiller, Gap, Proposer, merge_proposals
from model.hardware import describe_cpu
from model.quantize import served_weights
from model.served import load_served_model
from model.tokenizers import build_tokenizer
from model.train.corpora import load_corpus, trained_corpus
from model.vocab import SPECIALS, Vocab
from tests.live_server import uvicorn_server

ROOT = Path(__file__).resolve().parent.parent
RANKINGS = {
    "a": "left only",
    "b": "whole line, forward words",
    "c": "whole line, forward and backward words",
}
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

    def add(self, ranking: Sequence[int], word: int, seconds: float) -> None:
        """Count one blank: the ranked word ids, best first, and the right word."""
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


def timed(call: Callable[..., T], *args: object) -> tuple[T, float]:
    """call(*args)'s result and the seconds it took."""
    started = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - started


def rank_three_ways(
    filler: BlankFiller, gaps: dict[str, Gap], counts: Sequence[int]
) -> dict[str, tuple[list[int], float]]:
    """The word ids of each ranking of one blank, best first, and the seconds it took: "a",
    then "b/k" and "c/k" for each count k of words each model proposes. (a) is the forward
    proposal at the first count (its first five words are the same at any count of five or
    more)."""
    vocab = filler.runners["forward"].vocab
    rankings: dict[str, tuple[list[int], float]] = {}
    for count in counts:
        forward, forward_s = timed(filler.propose, gaps["forward"], count, "forward")
        backward, backward_s = timed(filler.propose, gaps["backward"], count, "backward")
        alone = merge_proposals({"forward": forward}, vocab, count)
        (_, by_line), line_s = timed(filler.fill, gaps["forward"], Proposer(vocab, count))
        both = Proposer(vocab, count, backward=tuple(backward))
        (_, by_both), both_s = timed(filler.fill, gaps["forward"], both)
        rankings.setdefault("a", ([p.word for p in alone], forward_s))
        rankings[f"b/{count}"] = ([f.word for f in by_line], line_s)
        rankings[f"c/{count}"] = ([f.word for f in by_both], backward_s + both_s)
    return rankings


def fill_each(
    filler: BlankFiller,
    lines: Sequence[Sequence[str]],
    spots: Sequence[BlankSpot],
    counts: Sequence[int],
    progress: Callable[[int, dict[str, dict[str, Tally]]], None] = lambda done, tallies: None,
) -> dict[str, dict[str, Tally]]:
    """Every blank ranked every way (rank_three_ways): a Tally per ranking for all blanks
    ("all") and for those whose word is not punctuation ("words")."""
    tallies: dict[str, dict[str, Tally]] = {"all": {}, "words": {}}
    vocab = filler.runners["forward"].vocab
    for done, spot in enumerate(spots, 1):
        tokens = lines[spot.line]
        left, right = tokens[: spot.position], tokens[spot.position + 1 :]
        gaps = {d: filler.gap(left, right, d) for d in filler.runners}
        word = vocab.stoi[tokens[spot.position]]
        groups = ["all"] if is_punctuation(tokens[spot.position]) else ["all", "words"]
        for key, (ranking, seconds) in rank_three_ways(filler, gaps, counts).items():
            for group in groups:
                tallies[group].setdefault(key, Tally()).add(ranking, word, seconds)
        progress(done, tallies)
    return tallies


def lines_of_test_split(forward: Checkpoint, backward: Checkpoint) -> list[list[str]]:
    """The tokens of each line of the test split of the corpus both checkpoints were trained
    on; ValueError when they were trained on different corpora."""
    source, files = trained_corpus(forward.metadata)
    if trained_corpus(backward.metadata) != (source, files):
        raise ValueError(
            f"{forward.directory} and {backward.directory} were trained on different corpora: "
            "give a backward model of the forward model's corpus"
        )
    return load_corpus(source, build_tokenizer(forward.tokenizer_spec), files).splits["test"]


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
    "candidates_8": {"candidates": 8},
    "forward": {"backward": False},
}


def service_speed(args: argparse.Namespace, line: str, blanked: str) -> dict:
    """ms of /perplexity for the line and of /fill-blank (top_k 10) for it with its blank, on
    one live server serving both models: with the request's defaults, with 8 words from each
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
    forward = load_served_model(args.forward, quantize=weights)
    backward = load_served_model(args.backward, quantize=weights)
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

    filler = BlankFiller(forward, backward)
    tallies = fill_each(filler, lines, spots, args.candidates, progress)
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
        "candidates": args.candidates,
        "test_lines": len(lines),
        "all": {key: t.summary(len(spots)) for key, t in tallies["all"].items()},
        "words": {key: t.summary(words) for key, t in tallies["words"].items()} if words else {},
        "service": speed,
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
                f"{count} candidates each: whole-line top-1 {whole_line:.3f} is {ratio:.2f}× "
                f"the left-only top-1 {left_only:.3f} (≥ 1.5×)",
                ratio >= 1.5,
            ),
            (
                f"{count} candidates each: with the backward model's, top-5 is "
                f"{both['top5']:.3f} against {line['top5']:.3f} without (not lower)",
                both["top5"] >= line["top5"],
            ),
        ]
    speed = record["service"]
    if speed:
        ratio = speed["fill_blank_ms"]["both"] / speed["perplexity_ms"]
        checks.append(
            (
                f"a /fill-blank request (top_k 10, both models) on a {speed['line_tokens']}-token "
                f"line takes {ratio:.2f}× a /perplexity request for the line (≤ 3×)",
                ratio <= 3,
            )
        )
    return checks


def label(key: str) -> str:
    """The table's name of a ranking key ("a", "b/16", "c/16")."""
    ranking, _, count = key.partition("/")
    return f"({ranking}) {RANKINGS[ranking]}" + (f", {count} each" if count else "")


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
        f"{counts} words proposed by each model. Each blank runs alone, its candidate lines "
        "scored in one batch, as one `POST /fill-blank` request's are, but on the model's "
        "step directly (model/runner.py), without the server and its engine thread.",
        "",
        "- (a) left only: what `/predict-next` offers after the left side (`<eos>` left out).",
        "- (b) whole line: the forward model's words ranked by the log-probability of the "
        "whole filled line, so the right side votes.",
        "- (c) both sides: (b) with the backward model's words before the right side added.",
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
        nargs="+",
        default=[6, 8, 16],
        help="words each model proposes per blank; several counts: a row of (b) and (c) each",
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
    if args.threads:
        torch.set_num_threads(args.threads)
    record = measure(args)
    record["command"] = " ".join(
        ["python -m bench.fill_blank", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]
    ).strip()
    args.output.write_text(page(record), encoding="utf-8")
    write_record(args.output.with_suffix(".json"), record)
    print(page(record), flush=True)


if __name__ == "__main__":
    main()
