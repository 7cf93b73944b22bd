"""Does the cache pointer help or hurt a text read alone, as the service reads a request?

    python -m bench.cache_alone --checkpoint checkpoints/default

Asks the service itself (the app in this process, the checkpoint's tuned reading and served
weights), never a copy of its scoring:
- /perplexity of `--lines` random valid lines, each its own request, with the default settings
  (the cache on) and with `"cache": false`; then of `--short` random valid lines of at most
  `--short-tokens` tokens. Perplexity over the pooled targets; the same lines for both.
- /predict-next of `--prompts` one- and two-word prompts (consecutive words of random valid
  lines, alternately one and two): how often the top candidate is the prompt's own last word,
  with the default settings and with `"cache": false`.

Prints rows as it goes; writes docs/cache-alone.md and its JSON record, naming the CPU.
"""

from __future__ import annotations

import argparse
import random
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from bench.records import ROOT, portable, write_record
from model.checkpoint import load_checkpoint
from model.hardware import describe_cpu
from model.scoring import perplexity
from model.tokenizers import Tokenizer, build_tokenizer
from model.train.corpora import trained_corpus
from model.train.data import open_store

SETTINGS = {"default": {}, "no cache": {"cache": False}}  # what each request adds


def valid_split(checkpoint_dir: Path) -> tuple[list[list[str]], Tokenizer]:
    """(the non-empty lines of the valid split of the corpus the checkpoint was trained on, as
    its tokenizer splits them; that tokenizer, which makes tokens a request's text again)."""
    checkpoint = load_checkpoint(checkpoint_dir)
    tokenizer = build_tokenizer(checkpoint.tokenizer_spec)
    corpus, files, text_field = trained_corpus(checkpoint.metadata)
    store = open_store(corpus, checkpoint.tokenizer_spec, files, text_field)
    lines = [line for line in store.token_lines("valid") if line]
    return lines, tokenizer


@dataclass
class Choice:
    """The seeded random choice of what to ask, the same for every setting."""

    lines: list[int]  # indices of valid lines scored
    short: list[int]  # indices of short valid lines scored
    prompts: list[list[str]]  # one or two consecutive words of valid lines


def draw(lines: Sequence[Sequence[str]], args: argparse.Namespace) -> Choice:
    """`args.lines` line indices, `args.short` indices of lines of at most args.short_tokens
    tokens, and `args.prompts` prompts of one or two consecutive words (alternately), seeded."""
    chooser = random.Random(args.seed)
    brief = [i for i, line in enumerate(lines) if len(line) <= args.short_tokens]
    prompts = []
    for n in range(args.prompts):
        line = lines[chooser.randrange(len(lines))]
        width = min(1 + n % 2, len(line))
        start = chooser.randrange(len(line) - width + 1)
        prompts.append(list(line[start : start + width]))
    return Choice(
        chooser.sample(range(len(lines)), min(args.lines, len(lines))),
        chooser.sample(brief, min(args.short, len(brief))),
        prompts,
    )


def pooled_perplexity(client: TestClient, texts: Sequence[str], extra: dict) -> dict:
    """/perplexity of each text alone, its own request: the perplexity over all their targets
    pooled, the number of targets and texts, and each text's mean NLL."""
    results = []
    for text in texts:
        response = client.post("/perplexity", json={"text": text, **extra})
        response.raise_for_status()
        results.append(response.json()["results"][0])
    nll = sum(r["mean_nll"] * r["num_tokens"] for r in results)
    targets = sum(r["num_tokens"] for r in results)
    return {
        "perplexity": perplexity(nll / targets),
        "targets": targets,
        "texts": len(texts),
        "mean_nll_each": [r["mean_nll"] for r in results],
    }


def own_word_first(client: TestClient, prompts: Sequence[str], extra: dict) -> dict:
    """/predict-next of each prompt: how often its top candidate is the prompt's last token (as
    the service read it), and which prompts."""
    hits = []
    for prompt in prompts:
        response = client.post("/predict-next", json={"text": prompt, "top_k": 1, **extra})
        response.raise_for_status()
        body = response.json()
        if body["candidates"][0]["token"] == body["tokens"][-1]["token"]:
            hits.append(prompt)
    return {"own_word_first": len(hits), "prompts": len(prompts), "examples": hits[:10]}


def compare_scoring(client: TestClient, texts: Sequence[str]) -> dict:
    """pooled_perplexity of the texts with each setting, and on how many texts the default
    (the cache) is worse than none."""
    figures = {name: pooled_perplexity(client, texts, extra) for name, extra in SETTINGS.items()}
    each = [figures[name].pop("mean_nll_each") for name in ("default", "no cache")]
    worse = sum(on > off for on, off in zip(*each, strict=True))
    return figures | {"worse_with_cache": worse}


def command(args: argparse.Namespace) -> str:
    """The command that measures the same figures: every setting that changes one (the page's
    own path does not)."""
    settings = ("checkpoint", "lines", "short", "short_tokens", "prompts", "seed", "threads")
    flags = [(f"--{name.replace('_', '-')}", str(getattr(args, name))) for name in settings]
    return shlex.join(["python", "-m", "bench.cache_alone", *(p for flag in flags for p in flag)])


def measure(args: argparse.Namespace) -> dict:
    """The record: the command, the machine, the served reading and every figure."""
    lines, tokenizer = valid_split(args.checkpoint)
    choice = draw(lines, args)
    record: dict = {
        "command": command(args),
        "cpu": describe_cpu(),
        "seed": args.seed,
        "scoring": {},
        "predict_next": {},
    }
    settings = Settings(model_dir=args.checkpoint, threads=args.threads)
    with TestClient(create_app(settings)) as client:
        record["serving"] = client.get("/info").json()["serving"]
        print(f"serving: {record['serving']}", flush=True)
        for group, indices in (("lines", choice.lines), ("short", choice.short)):
            texts = [tokenizer.detokenize(lines[i]) for i in indices]
            figures = record["scoring"][group] = compare_scoring(client, texts)
            on, off = figures["default"], figures["no cache"]
            print(f"{group}: {on['perplexity']:.2f} with the cache, {off['perplexity']:.2f} "
                  f"without, over {on['targets']} targets of {on['texts']} texts; worse with it "
                  f"on {figures['worse_with_cache']}", flush=True)  # fmt: skip
        prompts = [tokenizer.detokenize(words) for words in choice.prompts]
        for name, extra in SETTINGS.items():
            own = record["predict_next"][name] = own_word_first(client, prompts, extra)
            print(f"/predict-next, {name}: own last word first on {own['own_word_first']} of "
                  f"{len(prompts)}", flush=True)  # fmt: skip
    return record


def page(record: dict) -> str:
    """The markdown page of a record."""
    serving = record["serving"]
    rows = []
    for group, title in (("lines", "random valid lines"), ("short", "short valid lines")):
        figures = record["scoring"][group]
        on, off = figures["default"], figures["no cache"]
        rows.append(f"| {on['texts']} {title} | {on['targets']:,} | {on['perplexity']:.2f} | "
                    f"{off['perplexity']:.2f} | {figures['worse_with_cache']} |")  # fmt: skip
    own = record["predict_next"]
    return "\n".join([
        "# The cache pointer on a text read alone",
        "",
        "Written by `bench/cache_alone.py`; every figure is the service's own answer (the app in "
        "process, the checkpoint's tuned reading and served weights), each text its own request.",
        "",
        f"Command: `{record['command']}` (seed {record['seed']})  ",
        f"CPU: {record['cpu']}  ",
        f"Served reading: context {serving.get('context')}, cache {serving.get('cache')}, scope "
        f"{serving.get('cache_scope')}, window {serving.get('cache_window')}, theta "
        f"{serving.get('cache_theta')}, lambda {serving.get('cache_lambda')}, half fill "
        f"{serving.get('cache_half_fill')}, min fill {serving.get('cache_min_fill')}",
        "",
        "## /perplexity, each valid line alone (perplexity over the pooled targets)",
        "",
        "| texts | targets | default (cache) | `\"cache\": false` | lines worse with the cache |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "## /predict-next: the prompt's own last word ranked first",
        "",
        "| prompts (one and two words of valid lines) | default (cache) | `\"cache\": false` |",
        "|---|---:|---:|",
        f"| {own['default']['prompts']} | {own['default']['own_word_first']} | "
        f"{own['no cache']['own_word_first']} |",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints rows as it goes, writes the page and its record."""
    parser = argparse.ArgumentParser(prog="python -m bench.cache_alone", description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default",
                        help="checkpoint directory (its recorded cache is served)")  # fmt: skip
    parser.add_argument("--lines", type=int, default=300, help="random valid lines scored")
    parser.add_argument("--short", type=int, default=60, help="random short valid lines scored")
    parser.add_argument("--short-tokens", type=int, default=8, help="most tokens of a short line")
    parser.add_argument("--prompts", type=int, default=200, help="/predict-next prompts")
    parser.add_argument("--seed", type=int, default=33, help="seed of the random choices")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads of the service")  # fmt: skip
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "cache-alone.md",
                        help="the page (its JSON record beside it)")  # fmt: skip
    args = parser.parse_args(argv)
    record = measure(args)
    args.output.write_text(page(portable(record)), encoding="utf-8")  # type: ignore[arg-type]
    write_record(args.output.with_suffix(".json"), record)
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
