"""Perplexity of a checkpoint on a corpus split:
`python -m model.evaluate --checkpoint DIR [--corpus C --split valid|test] [--json]`.

Prints the split's token count, vocabulary size and <unk> rate beside the perplexity, so that
anyone can check the figure is measured on the benchmark docs/data.md defines. The corpus is
the one the checkpoint was trained on unless the corpus flags (model.train's) say otherwise.

Beyond the benchmark's own reading (`--context line`, every line from the start state) it can
read the split as one document (`--context document`), mix in a continuous cache (`--cache`)
and adapt the weights as it reads (`--dynamic`); docs/context-and-cache.md explains them. Every
reading is model/scoring.py's.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from model.checkpoint import (
    INFERENCE,
    Checkpoint,
    CheckpointError,
    load_cache_scope,
    load_checkpoint,
    load_direction,
    load_inference_config,
)
from model.evaluate.dynamic import DynamicConfig, read_document_dynamic
from model.pointer_cache import CacheConfig
from model.scoring import (
    CONTEXTS,
    line_starts,
    lines_log_likelihood,
    perplexity,
    read_split,
    score_with_cache,
)
from model.served import load_served_model
from model.train.config import CORPUS_FLAGS, add_config_flags
from model.train.corpora import split_files, trained_corpus
from model.train.data import open_store
from model.train.store import TokenLines


def split_ids(
    checkpoint: Checkpoint,
    corpus: str | None,
    split: str,
    files: dict[str, str] | None,
    text_field: str | None = None,
    cache_dir: str | None = None,
) -> tuple[str, TokenLines]:
    """(where the split was read: the corpus, or its explicit file; id lines of the split in the
    order the checkpoint's model reads them, memory-mapped from the corpus's prepared store).
    Without a corpus or files, the corpus the checkpoint was trained on."""
    if corpus is None and files is None:
        corpus, files, trained_field = trained_corpus(checkpoint.metadata)
        text_field = text_field or trained_field
    store = open_store(
        corpus or "", checkpoint.tokenizer_spec, files, text_field, None, True, cache_dir
    )
    source = files[split] if files else corpus or ""
    lines = store.lines(split, store.table(checkpoint.vocab), load_direction(checkpoint))
    return source, lines


def evaluate(
    checkpoint_or_dir: Checkpoint | str | Path,
    corpus: str | None = None,
    split: str = "test",
    split_files: dict[str, str] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    context: str = "line",
    cache: CacheConfig | None = None,
    dynamic: DynamicConfig | None = None,
    window: int = 256,
    cache_scope: str | None = None,
    text_field: str | None = None,
    cache_dir: str | None = None,
) -> dict:
    """{perplexity, num_tokens, vocab_size, unk_rate, ...} of a checkpoint on a split.

    The plain line context is the benchmark's figure. With a cache, "perplexity" is the figure
    under `cache` as given and the result also holds the model alone and both <unk> variants;
    with `dynamic`, the split is read as one document by a copy that adapts as it reads.
    cache_scope ("line" or "document", default: the context) says where the cache starts empty,
    whatever the state does; `window` (tokens a forward pass) changes no figure."""
    checkpoint = (
        checkpoint_or_dir
        if isinstance(checkpoint_or_dir, Checkpoint)
        else load_checkpoint(checkpoint_or_dir, device)
    )
    source, ids = split_ids(checkpoint, corpus, split, split_files, text_field, cache_dir)
    vocab, model = checkpoint.vocab, checkpoint.model
    unknown = ids.count_of(vocab.unk_id)
    started = time.perf_counter()
    extra: dict = {}
    if context == "line" and cache is None and dynamic is None:
        total, count = lines_log_likelihood(model, ids, vocab.eos_id, batch_size, window)
        ppl = perplexity(-total / max(count, 1))
        extra["read_tokens_per_second"] = count / (time.perf_counter() - started)
    else:
        if dynamic is not None:
            reading = read_document_dynamic(model, ids, vocab.eos_id, dynamic)
            extra["dynamic"] = dynamic.to_dict()
        else:
            reading = read_split(model, ids, vocab.eos_id, context, batch_size, window)
        ppl, count = reading.perplexity(), reading.targets.numel()
        extra["context"] = "document" if dynamic is not None else context
        extra["read_tokens_per_second"] = count / (time.perf_counter() - started)
        if cache is not None:
            if cache_scope is not None:
                reading.segment_starts = line_starts(ids) if cache_scope == "line" else [0]
                extra["cache_scope"] = cache_scope
            variants = {
                unk: reading.perplexity(
                    score_with_cache(reading, replace(cache, unk_takes_mass=unk), vocab.unk_id)
                )
                for unk in (False, True)
            }
            extra |= {
                "perplexity_model": ppl,
                "perplexity_cache": variants[False],
                "perplexity_cache_unk_takes_mass": variants[True],
                "cache": cache.to_dict(),
            }
            ppl = variants[cache.unk_takes_mass]
    extra["tokens_per_second"] = count / (time.perf_counter() - started)
    return {
        "perplexity": ppl,
        "num_tokens": count,
        "vocab_size": len(vocab),
        "unk_rate": unknown / max(count, 1),
        "corpus": source,
        "split": split,
        **extra,
    }


def _settings(tuned: dict | None, given: dict, what: str, fix: str) -> dict:
    """Tuned settings overridden by the flags given; all flags are needed when none were
    tuned."""
    chosen = {k: v for k, v in given.items() if v is not None}
    if tuned is None and len(chosen) < len(given):
        raise ValueError(f"this checkpoint has no tuned {what} in config.json; {fix}")
    return {**(tuned or {}), **chosen}


def resolve_cache(checkpoint: Checkpoint, args: argparse.Namespace) -> CacheConfig | None:
    """The cache --cache asks for: the tuned one, with any --cache-* flag overriding it."""
    if not args.cache:
        return None
    _, tuned = load_inference_config(checkpoint)
    given = {"window": args.cache_window, "theta": args.cache_theta, "lam": args.cache_lambda}
    fix = (
        f"run `python -m model.evaluate.tune_cache --checkpoint {args.checkpoint}` first, or give "
        f"--cache-window, --cache-theta and --cache-lambda"
    )
    settings = _settings(tuned.to_dict() if tuned else None, given, "cache", fix)
    if args.cache_half_fill is not None:
        settings["half_fill"] = args.cache_half_fill
    if args.cache_min_fill is not None:
        settings["min_fill"] = args.cache_min_fill
    if args.unk_takes_mass:
        settings["unk_takes_mass"] = True
    return CacheConfig.from_dict(settings)


def resolve_dynamic(checkpoint: Checkpoint, args: argparse.Namespace) -> DynamicConfig | None:
    """The dynamic evaluation --dynamic asks for: the tuned one, flags overriding it."""
    if not args.dynamic:
        return None
    tuned = (checkpoint.metadata.get(INFERENCE) or {}).get("dynamic")
    given = {"lr": args.dynamic_lr, "decay": args.dynamic_decay}
    fix = (
        f"run `python -m model.evaluate.tune_cache --checkpoint {args.checkpoint} --dynamic` "
        f"first, or give --dynamic-lr and --dynamic-decay"
    )
    settings = _settings(tuned, given, "dynamic evaluation", fix)
    if args.dynamic_segment is not None:
        settings["segment"] = args.dynamic_segment
    return DynamicConfig.from_dict(settings)


def add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, model.train's corpus flags and the machine's (shared with tune_cache)."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    corpus = parser.add_argument_group(
        "corpus (as in python -m model.train; default: the one the checkpoint was trained on)"
    )
    add_config_flags(corpus, CORPUS_FLAGS)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    add_config_flags(parser, ["threads"])


def split_files_of(args: argparse.Namespace) -> dict[str, str] | None:
    """The explicit per-split files the corpus flags name, if any."""
    return split_files(args.train_file, args.valid_file, args.test_file)


def tuned_scope(checkpoint: Checkpoint, context: str) -> str:
    """The tuned cache scope when reading in the tuned context, else the context itself."""
    tuned_context, _ = load_inference_config(checkpoint)
    return load_cache_scope(checkpoint) if context == tuned_context else context


def build_parser() -> argparse.ArgumentParser:
    """The command line's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate", description=__doc__.split("\n")[0]
    )
    add_checkpoint_flags(parser)
    parser.add_argument(
        "--split", default="test", choices=["train", "valid", "test"], help="split to score"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="lines per batch (does not change the figure)"
    )
    parser.add_argument(
        "--context",
        default="line",
        choices=CONTEXTS,
        help="line: every line from the start state (the benchmark); document: the split as "
        "one stream in file order, the state carried across lines",
    )
    parser.add_argument(
        "--read-window",
        type=int,
        default=256,
        help="tokens read a forward pass, in either context (memory and speed, not the figure)",
    )
    parser.add_argument(
        "--cache", action="store_true", help="mix in the continuous cache (tuned or by flags)"
    )
    parser.add_argument(
        "--cache-scope",
        choices=CONTEXTS,
        help="where the cache starts empty: every line, or once (default: the tuned scope when "
        "--context is the tuned context, else as --context); "
        "--context line --cache-scope document resets the state at each line but not the cache",
    )
    parser.add_argument("--cache-window", type=int, help="cache: pairs kept (W)")
    parser.add_argument("--cache-theta", type=float, help="cache: flatness theta")
    parser.add_argument(
        "--cache-lambda", type=float, help="cache: interpolation weight of a well-filled cache"
    )
    parser.add_argument(
        "--cache-half-fill",
        type=float,
        help="cache: pairs held at which the weight is half of lambda (0: constant lambda)",
    )
    parser.add_argument(
        "--cache-min-fill", type=int, help="cache: pairs held before it speaks (0: from the first)"
    )
    parser.add_argument(
        "--unk-takes-mass",
        action="store_true",
        help="headline figure lets <unk> targets take cache mass (both are printed anyway)",
    )
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="read as one document, taking an SGD step after each segment (Krause et al. 2018)",
    )
    parser.add_argument("--dynamic-lr", type=float, help="dynamic evaluation: step size")
    parser.add_argument(
        "--dynamic-decay", type=float, help="dynamic evaluation: pull toward the trained weights"
    )
    parser.add_argument(
        "--dynamic-segment", type=int, help="dynamic evaluation: tokens per update (default 50)"
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="int8: score with the int8 weights the service serves on a CPU by default, so the "
        "figure equals its /perplexity (none: the checkpoint's own float weights)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def report(result: dict) -> str:
    """The human-readable lines of a result."""
    where = f"{result['corpus']} {result['split']}"
    if "context" in result:
        where += f", {result['context']} context" + (", dynamic" if "dynamic" in result else "")
    if "cache_scope" in result:
        where += f", cache per {result['cache_scope']}"
    lines = [
        f"{where}: perplexity {result['perplexity']:.2f} over {result['num_tokens']:,} tokens "
        f"(with <eos>), vocabulary {result['vocab_size']:,}, <unk> rate "
        f"{100 * result['unk_rate']:.2f}%"
    ]
    if "cache" in result:
        c = result["cache"]
        headline = "takes" if c["unk_takes_mass"] else "takes no"
        lines += [
            f"  model alone:                   {result['perplexity_model']:.2f}",
            f"  cache, <unk> takes no mass:    {result['perplexity_cache']:.2f}",
            f"  cache, <unk> takes cache mass: {result['perplexity_cache_unk_takes_mass']:.2f}",
            f"  cache window {c['window']}, theta {c['theta']}, lambda {c['lam']}, half fill "
            f"{c['half_fill']}, min fill {c['min_fill']}; headline: <unk> {headline} cache mass",
        ]
    if "dynamic" in result:
        d = result["dynamic"]
        lines.append(f"  dynamic lr {d['lr']}, decay {d['decay']}, segment {d['segment']}")
    if "tokens_per_second" in result:
        lines.append(
            f"  {result['read_tokens_per_second']:,.0f} tokens/s reading, "
            f"{result['tokens_per_second']:,.0f} tokens/s in all"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    files = split_files_of(args)
    try:
        checkpoint = load_served_model(args.checkpoint, args.device, args.quantize)
        cache, dynamic = resolve_cache(checkpoint, args), resolve_dynamic(checkpoint, args)
        scope = args.cache_scope or tuned_scope(checkpoint, args.context)
        if dynamic is not None and args.context != "document":
            raise ValueError("--dynamic reads the split as one document: add --context document")
        if dynamic is not None and args.quantize == "int8":
            raise ValueError("--dynamic trains as it reads; int8 weights cannot: drop one")
        result = evaluate(
            checkpoint,
            args.corpus,
            args.split,
            files,
            args.batch_size,
            args.device,
            args.context,
            cache,
            dynamic,
            args.read_window,
            scope,
            args.text_field,
            args.cache_dir,
        )
    except (CheckpointError, ValueError, OSError) as error:  # a bad file or setting: one line
        raise SystemExit(f"error: {error}") from None
    if args.json:
        plain = ("perplexity", "num_tokens", "vocab_size", "unk_rate")
        print(json.dumps({k: v for k, v in result.items() if k in plain or "context" in result}))
        return
    print(report(result))


if __name__ == "__main__":
    main()
