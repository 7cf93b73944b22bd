"""How much generated text repeats itself with and without the cache pointer, beside the
corpus' own test lines: the share of a text's character pairs (bigrams of characters) that
already occurred earlier in it, averaged over texts.

    python -m bench.repetition --checkpoint checkpoints/default   # writes docs/repetition.md

Every prompt is continued with every seed by the service's engine (in process, no server), once
with `cache` true and once false, with the same sampling options; the corpus figure reads the
first --characters characters of each test line at least that long.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from app.engine import Engine
from app.settings import Settings
from model.checkpoint import load_checkpoint
from model.hardware import describe_cpu
from model.sampling import SamplingOptions
from model.train.corpora import trained_corpus
from model.train.data import open_store

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ("中国经济", "新年", "国务院总理", "记者从", "今天上午")
SAMPLING = SamplingOptions(
    temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=40, ignore_eos=True, seed=0
)


def repeated_share(text: str) -> float:
    """Share of the text's character pairs seen earlier in the same text (0 for under 2)."""
    pairs = [text[i : i + 2] for i in range(len(text) - 1)]
    return 1 - len(set(pairs)) / len(pairs) if pairs else 0.0


def generated_texts(engine: Engine, prompts: Sequence[str], seeds: int, cache: bool) -> list[str]:
    """Every prompt continued with seeds 1..seeds, the cache on or off."""

    async def one(prompt: str, seed: int) -> str:
        options = replace(SAMPLING, seed=seed, cache=cache)
        _, (stream,) = await engine.generate([engine.encoder.encode(prompt)], [(0, options)])
        steps = [step async for step in stream]
        return next(s.finish.generated_text for s in steps if s.finish is not None)

    async def every() -> list[str]:
        return list(
            await asyncio.gather(*(one(p, s) for p in prompts for s in range(1, seeds + 1)))
        )

    return asyncio.run(every())


def corpus_texts(checkpoint: str, characters: int) -> list[str]:
    """The first `characters` characters of every test line at least that long, spaces out."""
    loaded = load_checkpoint(checkpoint)
    source, files, text_field = trained_corpus(loaded.metadata)
    lines = open_store(source, loaded.tokenizer_spec, files, text_field).token_lines("test")
    texts = ["".join(line) for line in lines]
    return [text[:characters] for text in texts if len(text) >= characters]


def measure(checkpoint: str, seeds: int, characters: int, threads: int) -> list[str]:
    """The report's lines: one table row per source of text."""
    engine = Engine.load(Settings(model_dir=Path(checkpoint), threads=threads))
    engine.start()
    try:
        rows = {
            f"generated, cache {state}": generated_texts(engine, PROMPTS, seeds, cache)
            for state, cache in (("on", True), ("off", False))
        }
    finally:
        engine.stop()
    rows[f"test lines (first {characters} characters)"] = corpus_texts(checkpoint, characters)
    lines = [
        f"{describe_cpu()}; checkpoint {checkpoint}; {len(PROMPTS)} prompts × {seeds} seeds, "
        f"{SAMPLING.max_new_tokens} tokens, temperature {SAMPLING.temperature}, top-k "
        f"{SAMPLING.top_k}, top-p {SAMPLING.top_p}",
        "",
        "| text | texts | repeated character pairs |",
        "|---|---:|---:|",
    ]
    for name, texts in rows.items():
        share = statistics.mean(repeated_share(t) for t in texts)
        lines.append(f"| {name} | {len(texts)} | {share:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.repetition", description=__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/default")
    parser.add_argument("--seeds", type=int, default=6, help="generations per prompt")
    parser.add_argument("--characters", type=int, default=70, help="characters per test line")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs/repetition.md", help="the page to write"
    )
    args = parser.parse_args(argv)
    lines = measure(args.checkpoint, args.seeds, args.characters, args.threads)
    page = ["# Repetition in generated text", "", "`python -m bench.repetition` on " + lines[0]]
    args.output.write_text("\n".join([*page, *lines[1:]]) + "\n", encoding="utf-8")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
