"""Training configuration: one dataclass whose fields are the command-line flags (with their
help), and named presets (`default` is what `make serve` trains)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from model.direction import DIRECTIONS
from model.scoring import CONTEXTS


def _flag(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Everything a training run needs; `python -m model.train --help` lists it."""

    # data
    corpus: str = _flag(
        "peoples-daily", "'peoples-daily', a directory with train/valid/test.txt, or a text file"
    )
    train_file: str | None = _flag(
        None, "explicit training text (with --valid-file and --test-file)"
    )
    valid_file: str | None = _flag(None, "explicit validation text")
    test_file: str | None = _flag(None, "explicit test text")
    text_field: str | None = _flag(
        None, "JSON Lines corpora (.jsonl, .jsonl.gz): the field holding the text (default: text)"
    )
    workers: int | None = _flag(
        None,
        "processes that segment the corpus when its store is prepared (python -m "
        "model.train.prepare; default: every core)",
    )
    cache_dir: str | None = _flag(
        None,
        "where prepared corpora are kept (default: $NEXTWORD_CORPUS_CACHE_DIR, else "
        "~/.cache/nextword)",
    )
    tokenizer: str = _flag(
        "jieba", "jieba | rjieba (jieba-rs: about 12x faster, opt-in) | whitespace | english"
    )
    lowercase: bool = _flag(False, "lowercase text before tokenizing")
    nfkc: bool = _flag(True, "NFKC normalisation (full-width digits and letters to ASCII)")
    user_dict: str | None = _flag(None, "jieba user dictionary file (copied into the checkpoint)")
    min_freq: int = _flag(2, "keep tokens seen at least this often in train")
    max_vocab: int | None = _flag(
        None,
        "cap the vocabulary at this many entries (0: no cap; default: none for peoples-daily, "
        "50,000 for any other corpus)",
    )
    max_train_lines: int | None = _flag(None, "use only the first N training lines (quick runs)")
    # network
    cell: str = _flag("lstm", "rnn_tanh | rnn_relu | lstm | gru")
    embedding_size: int = _flag(256, "embedding width")
    hidden_size: int = _flag(256, "recurrent hidden width")
    num_layers: int = _flag(2, "stacked recurrent layers")
    dropout_embedding: float = _flag(0.1, "dropout on embeddings")
    dropout_hidden: float = _flag(0.2, "dropout between recurrent layers")
    dropout_output: float = _flag(0.2, "dropout on the last layer's output")
    tie_weights: bool = _flag(
        False,
        "share input and output word vectors (with the adaptive softmax: adaptive input over "
        "its head and tail matrices)",
    )
    output_layer: str = _flag("adaptive", "full | adaptive (softmax)")
    cutoffs: list[int] = _flag(None, "adaptive softmax cluster cutoffs", nargs="+", type=int)
    adaptive_div_value: float = _flag(
        4.0, "adaptive softmax: each tail cluster's width is the previous one's divided by this"
    )
    variational_dropout: bool = _flag(
        False, "embedding and output dropout keep one mask per line for every step"
    )
    dropout_words: float = _flag(0.0, "drop this share of word types from each window's input")
    pretrained_embeddings: str | None = _flag(
        None,
        "word2vec (binary or text) or GloVe file to initialise embeddings (python -m "
        "model.train.word2vec makes one)",
    )
    word2vec_init: bool = _flag(
        False,
        "first train word2vec vectors on the training split (gensim skip-gram; under a minute "
        "on peoples-daily, counted in --max-minutes) and start the embeddings from them",
    )
    word2vec_epochs: int = _flag(5, "passes of --word2vec-init over the training split")
    word2vec_workers: int | None = _flag(
        None,
        "threads of --word2vec-init (default: one while the training split has at most "
        "2,000,000 tokens, so such a run repeats exactly; every core above that)",
    )
    freeze_embeddings: bool = _flag(False, "keep pretrained embeddings fixed")
    init_from: str | None = _flag(
        None,
        "start from this finished checkpoint's weights (same corpus, vocabulary and network) "
        "instead of random ones, e.g. to continue a line-trained model with --context document",
    )
    # optimisation
    optimizer: str = _flag("adamw", "sgd (lr annealed on a valid plateau) | adamw")
    lr: float = _flag(2e-3, "learning rate")
    weight_decay: float = _flag(0.0, "weight decay (AdamW's decoupled one)")
    schedule: str = _flag(
        "plateau",
        "plateau: multiply lr by --anneal-factor when valid ppl stops improving; cosine: "
        "warm up, then decay to zero over the budget (--max-minutes, --max-steps or --epochs)",
    )
    warmup_steps: int = _flag(0, "linear learning-rate warm-up steps (cosine schedule)")
    anneal_factor: float = _flag(0.25, "multiply lr by this when valid ppl stops improving")
    clip: float = _flag(0.25, "gradient-norm clipping")
    epochs: int = _flag(40, "maximum epochs")
    patience: int = _flag(3, "stop after this many epochs without a better valid ppl")
    batch_size: int = _flag(512, "most lines per batch")
    step_tokens: int = _flag(4096, "target tokens per optimizer step (lines × window)")
    bptt: int = _flag(35, "truncated BPTT window (steps)")
    context: str = _flag(
        "line",
        "line: each line a sequence from the start state (length-grouped, shuffled); "
        "document: the split as one stream in file order cut into step-tokens/bptt columns, the "
        "state carried across windows and lines (the reference PyTorch example's reading); "
        "validation and the test figure then read the split as one document too, and the "
        "checkpoint records that context for evaluate and the service",
        choices=CONTEXTS,
    )
    direction: str = _flag(
        "forward",
        "forward: read every text left to right; backward: right to left (each line reversed, "
        "the last line first), a model that predicts each word from the words after it; the "
        "checkpoint records it, evaluate reads the splits the same way and the service "
        "scores text with it but refuses to generate",
        choices=DIRECTIONS,
    )
    variable_bptt: bool = _flag(False, "draw each window's length around --bptt (AWD-LSTM)")
    average_from: float | None = _flag(
        None,
        "average the weights after every step once this share of the budget is spent (e.g. "
        "0.5); the average is validated too and kept when it is the better model",
    )
    max_tokens: int | None = _flag(
        None,
        "training budget in tokens (targets read; 0: none): the same on every machine, so the "
        "same command gives the same model; the cosine schedule spans it",
    )
    max_steps: int | None = _flag(None, "stop after this many optimizer steps")
    max_minutes: float | None = _flag(
        None,
        "optional cap on training time in minutes, word2vec included (0: none); a run it cuts "
        "short says so and depends on the machine's speed",
    )
    valid_tokens: int = _flag(
        500_000,
        "validation during training reads at most this many tokens of the valid split (its "
        "first lines, the same every time); the final figures read whole splits",
    )
    eval_every_minutes: float | None = _flag(None, "also validate (and keep the best) this often")
    snapshot_minutes: float = _flag(2.0, "write a resumable snapshot this often")
    seed: int = _flag(1234, "random seed")
    device: str = _flag("auto", "auto | cpu | cuda | cuda:N")
    precision: str = _flag("auto", "auto | bf16 | fp32 (auto: bf16 where the hardware has it)")
    threads: int | None = _flag(None, "torch CPU threads (default: torch's choice)")
    output: str = _flag(
        "checkpoints/run",
        "checkpoint directory to write (checkpoints/default is the default preset's, which "
        "`make serve` trains and serves)",
    )
    resume: bool = _flag(False, "continue the interrupted run in --output")
    progress: bool = _flag(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.cutoffs is None:
            self.cutoffs = [2000, 10000]

    def to_dict(self) -> dict:
        """Plain-JSON form, recorded in the checkpoint."""
        return asdict(self)


# what `make serve` trains when there is no checkpoint: a budget in tokens, not minutes, in
# fp32 on every CPU, so the same command gives the same model on an AVX2-only EPYC and on an
# AMX Xeon (docs/training.md). Sized so that it trains in about 11 minutes on a 2-core
# AVX2-only CPU.
_DEFAULT: dict[str, Any] = dict(
    output="checkpoints/default",  # that directory holds the default preset's model only
    max_tokens=2_400_000,  # 2.5 passes over peoples-daily's 952,711 training tokens
    precision="fp32",  # bf16 exists only on some CPUs and learns a little less per token
    word2vec_init=True,  # the embeddings start from vectors of the training text
    word2vec_epochs=5,
    # one 512-wide layer: at equal tokens it learns far faster than two 256-wide ones (valid
    # 270 against 495 after one pass, both fp32) at about 0.7x their tokens/s
    hidden_size=512,
    num_layers=1,
    dropout_embedding=0.1,
    dropout_output=0.2,
    schedule="cosine",
    lr=3e-3,
    step_tokens=2048,
    # wider tail clusters for the rarer words: 256 and 128 dims from a 512 state, not 128 and 32
    adaptive_div_value=2.0,
)

PRESETS: dict[str, dict[str, Any]] = {
    "default": _DEFAULT,
    # the best recipe measured within an hour on a 2-core AMX Xeon (docs/experiments.md): two
    # 640-wide layers, dropout 0.5 with one mask per line, and weight decay. Its measured run
    # had a 50-minute cosine budget at about 5,300 tokens/s, which 16M tokens reproduce on any
    # machine; patience stopped it after 9.5M.
    "large": dict(
        max_tokens=16_000_000,
        precision="auto",  # measured in bf16 on AMX
        word2vec_init=True,
        hidden_size=640,
        num_layers=2,
        dropout_embedding=0.2,
        dropout_hidden=0.5,
        dropout_output=0.5,
        variational_dropout=True,
        weight_decay=0.05,
        schedule="cosine",
        lr=3e-3,
        step_tokens=2048,
        adaptive_div_value=2.0,
    ),
    # the reference PyTorch word_language_model recipe, for comparisons
    "plain": dict(
        embedding_size=200,
        hidden_size=200,
        output_layer="full",
        optimizer="sgd",
        lr=20.0,
        batch_size=20,
        bptt=35,
        dropout_embedding=0.2,
        dropout_hidden=0.2,
        dropout_output=0.2,
        precision="fp32",  # the reference trains in fp32
    ),
}


# the flags that select a corpus's text: a name or path, or one file per split
CORPUS_FLAGS = ("corpus", "train_file", "valid_file", "test_file", "text_field", "cache_dir")
# settings that do not change the model a run trains (where it writes, how it reports)
NOT_RECIPE = frozenset(
    {
        "output",
        "resume",
        "progress",
        "threads",
        "device",
        "snapshot_minutes",
        "workers",
        "cache_dir",
    }
)


def preset_differences(preset: str, settings: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (the preset's value, the run's)} for every recipe setting in which a run's
    recorded config (config.json's training.config) differs from a preset; empty when the run
    is that preset."""
    wanted = TrainConfig(**PRESETS[preset]).to_dict()
    return {
        name: (value, settings.get(name))
        for name, value in wanted.items()
        if name not in NOT_RECIPE and settings.get(name, value) != value
    }


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser whose flags are TrainConfig's fields (plus --preset)."""
    parser = argparse.ArgumentParser(
        prog="python -m model.train", description="Train a recurrent word-level language model."
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named preset")
    add_config_flags(parser, [f.name for f in fields(TrainConfig)])
    return parser


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, names: Iterable[str]
) -> None:
    """Add the flags of TrainConfig's fields `names` (--corpus for corpus: their help, type and
    choices) to a parser or argument group, each defaulting to None so that a flag not given
    can be told apart. The one declaration of these flags: model.train, model.train.word2vec,
    model.evaluate, model.evaluate.tune_cache and deploy/train_if_missing all add theirs here."""
    known = {f.name: f for f in fields(TrainConfig)}
    for name in names:
        f = known[name]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        kind = f.metadata.get("type") or _scalar_type(f.default, str(f.type))
        kwargs: dict[str, Any] = {"type": kind, "default": None, "help": help_text}
        for extra in ("nargs", "choices"):
            if extra in f.metadata:
                kwargs[extra] = f.metadata[extra]
        parser.add_argument(flag, **kwargs)


def _scalar_type(default: Any, annotation: str) -> type:
    for name, kind in (("int", int), ("float", float)):
        if annotation.startswith(name):
            return kind
    return type(default) if default not in (None, MISSING) else str


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig from command-line flags: preset values first, explicit flags override."""
    args = vars(build_parser().parse_args(argv))
    values = dict(PRESETS.get(args.pop("preset") or "", {}))
    values.update({k: v for k, v in args.items() if v is not None})
    return TrainConfig(**values)
