"""Perplexity of a checkpoint on a corpus split:
`python -m model.evaluate --checkpoint DIR [--corpus C --split valid|test] [--json]`.

Prints the split's token count, vocabulary size and <unk> rate beside the perplexity, so that
anyone can check the figure is measured on the benchmark docs/data.md defines.
"""

from __future__ import annotations

import argparse
import json

import torch

from model.checkpoint import load_checkpoint
from model.corpora import load_corpus
from model.inference import perplexity_of, score_lines
from model.tokenizers import build_tokenizer


def evaluate(
    checkpoint_dir: str,
    corpus: str | None = None,
    split: str = "test",
    split_files: dict[str, str] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict:
    """{perplexity, num_tokens, vocab_size, unk_rate} of a checkpoint on a split; the corpus
    defaults to the one it was trained on."""
    checkpoint = load_checkpoint(checkpoint_dir, device)
    source = corpus or checkpoint.metadata.get("corpus", {}).get("source") or "peoples-daily"
    lines = load_corpus(source, build_tokenizer(checkpoint.tokenizer_spec), split_files).splits[
        split
    ]
    vocab = checkpoint.vocab
    ids = [vocab.encode(line) for line in lines]
    ppl, count = perplexity_of(score_lines(checkpoint.model, ids, vocab.eos_id, batch_size))
    unknown = sum(1 for line in ids for i in line if i == vocab.unk_id)
    return {
        "perplexity": ppl,
        "num_tokens": count,
        "vocab_size": len(vocab),
        "unk_rate": unknown / max(count, 1),
        "corpus": source,
        "split": split,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--corpus", help="corpus (default: the one the checkpoint was trained on)")
    parser.add_argument(
        "--split", default="test", choices=["train", "valid", "test"], help="split to score"
    )
    parser.add_argument(
        "--train-file", help="explicit training text (with --valid-file, --test-file)"
    )
    parser.add_argument("--valid-file", help="explicit validation text")
    parser.add_argument("--test-file", help="explicit test text")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="lines per batch (does not change the figure)"
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    files = None
    if args.train_file or args.valid_file or args.test_file:
        files = {"train": args.train_file, "valid": args.valid_file, "test": args.test_file}
    result = evaluate(args.checkpoint, args.corpus, args.split, files, args.batch_size, args.device)
    if args.json:
        print(
            json.dumps(
                {k: result[k] for k in ("perplexity", "num_tokens", "vocab_size", "unk_rate")}
            )
        )
        return
    print(
        f"{result['corpus']} {result['split']}: perplexity {result['perplexity']:.2f} over "
        f"{result['num_tokens']:,} tokens (with <eos>), vocabulary {result['vocab_size']:,}, "
        f"<unk> rate {100 * result['unk_rate']:.2f}%"
    )


if __name__ == "__main__":
    main()
