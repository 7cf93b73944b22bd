"""Continue a prompt with a trained model:
`python -m model.generate --checkpoint DIR --prompt 我爱 --max-new-tokens 20 --temperature 0.8
--top-k 40 --top-p 0.95 --seed 1`. It runs the service's own step (model/runner.py) on a batch of
one, with the service's encoding of the prompt and the checkpoint's recorded reading, so the same
options and seed give the text `POST /generate` gives, for every prompt."""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from model.checkpoint import load_direction
from model.decoding import Decoding
from model.quantize import QUANTIZE_CHOICES
from model.rows import FinishEvent, GenerateRow, TokenEvent
from model.runner import Runner
from model.sampling import SEED_SPACE, SamplingOptions
from model.served import load_served_model
from model.tokenizers import TextEncoder, build_tokenizer


@dataclass(frozen=True)
class Continuation:
    """What one generation produced: its tokens as they came, and how it ended."""

    tokens: list[TokenEvent]
    finish: FinishEvent


def generate(
    runner: Runner,
    encoder: TextEncoder,
    prompt: str,
    options: SamplingOptions,
    deadline: float | None = None,
) -> Continuation:
    """Continue prompt as the service does, as the only row of runner's batch: the prompt
    encoded as a request's text, read and continued by Runner.step. options.seed must be set;
    options.cache mixes in the checkpoint's cache pointer, as a request's `cache` does."""
    encoded = encoder.encode(prompt)
    eos = encoder.vocab.eos_id
    decoding = Decoding(encoded.ids, encoded.tokens, options, eos, encoder.tokenizer, deadline)
    row = GenerateRow(decoding, len(encoded.ids), runner.new_cache(options.cache))
    runner.add([row])
    tokens: list[TokenEvent] = []
    try:
        while True:
            for _, generated in runner.step().generated:
                if generated.token is not None:
                    tokens.append(generated.token)
                if generated.finish is not None:
                    return Continuation(tokens, generated.finish)
    finally:
        runner.keep([])


def build_parser() -> argparse.ArgumentParser:
    """The command line: the request's sampling options, with the same defaults."""
    defaults = SamplingOptions()
    parser = argparse.ArgumentParser(
        prog="python -m model.generate", description="Continue a prompt."
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument(
        "--prompt",
        default="",
        help="text to continue (empty: start of a text; several lines are read as the service "
        "reads them)",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=defaults.max_new_tokens, help="most tokens"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=defaults.temperature,
        help="0 = greedy; higher = more random",
    )
    parser.add_argument("--top-k", type=int, help="sample among the k most probable words")
    parser.add_argument(
        "--top-p", type=float, default=defaults.top_p, help="nucleus: smallest set with this mass"
    )
    parser.add_argument(
        "--repetition-penalty",
        type=float,
        default=defaults.repetition_penalty,
        help=">1 discourages repeats",
    )
    parser.add_argument(
        "--stop", action="append", default=[], help="stop after this string (repeatable)"
    )
    parser.add_argument(
        "--ignore-eos", action="store_true", help="never end at <eos>: always max-new-tokens"
    )
    parser.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=defaults.cache,
        help="mix in the checkpoint's cache pointer, where it has one (off by default, as in a "
        "/generate request: sampling from the mixture repeats itself)",
    )
    parser.add_argument("--max-seconds", type=float, help="stop generating after this long")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default="auto",
        help="the weights, as the service's quantize setting: auto (int8 on a CPU with VNNI or "
        "AMX, else float), none or int8",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints the prompt followed by the generated text."""
    parser = build_parser()
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(SEED_SPACE)
    try:
        options = SamplingOptions.of(vars(args) | {"seed": seed, "stop": tuple(args.stop)})
    except ValueError as error:
        parser.error(str(error))
    try:
        checkpoint = load_served_model(args.checkpoint, args.device, args.quantize)
    except ValueError as error:
        parser.error(f"--quantize {args.quantize}: {error}")
    if load_direction(checkpoint) != "forward":
        parser.error(
            f"{args.checkpoint} reads right to left (--direction backward): it predicts the word "
            "before a text, so it cannot continue one; give a forward model"
        )
    encoder = TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    result = generate(Runner(checkpoint), encoder, args.prompt, options, deadline)
    finish = result.finish
    print(args.prompt + finish.generated_text)
    print(f"[finish_reason={finish.finish_reason} seed={seed} tokens={len(result.tokens)}]")


if __name__ == "__main__":
    main()
