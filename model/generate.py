"""Continue a prompt with a trained model:
`python -m model.generate --checkpoint DIR --prompt 我爱 --max-new-tokens 20 --temperature 0.8
--top-k 40 --top-p 0.95 --seed 1`. It runs the service's generation loop on a batch of one, so
the same options and seed give the text the service gives."""

from __future__ import annotations

import argparse
import random
import time

from model.checkpoint import load_checkpoint
from model.decoding import generate
from model.sampling import SamplingOptions
from model.tokenizers import build_tokenizer


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints the prompt followed by the generated text."""
    parser = argparse.ArgumentParser(
        prog="python -m model.generate", description="Continue a prompt."
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--prompt", default="", help="text to continue (empty: start of a text)")
    parser.add_argument("--max-new-tokens", type=int, default=30, help="most tokens to generate")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="0 = greedy; higher = more random"
    )
    parser.add_argument("--top-k", type=int, help="sample among the k most probable words")
    parser.add_argument(
        "--top-p", type=float, default=1.0, help="nucleus: smallest set with this mass"
    )
    parser.add_argument(
        "--repetition-penalty", type=float, default=1.0, help=">1 discourages repeats"
    )
    parser.add_argument(
        "--stop", action="append", default=[], help="stop after this string (repeatable)"
    )
    parser.add_argument(
        "--ignore-eos", action="store_true", help="never end at <eos>: always max-new-tokens"
    )
    parser.add_argument("--max-seconds", type=float, help="stop generating after this long")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**63)
    try:
        options = SamplingOptions(
            args.temperature,
            args.top_k,
            args.top_p,
            args.repetition_penalty,
            args.max_new_tokens,
            seed,
            tuple(args.stop),
            args.ignore_eos,
        )
    except ValueError as error:
        parser.error(str(error))
    checkpoint = load_checkpoint(args.checkpoint, args.device)
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    tokenizer = build_tokenizer(checkpoint.tokenizer_spec)
    result = generate(checkpoint.model, tokenizer, checkpoint.vocab, args.prompt, options, deadline)
    print(args.prompt + result.text)
    print(f"[finish_reason={result.finish_reason} seed={seed} tokens={len(result.tokens)}]")


if __name__ == "__main__":
    main()
