"""Train word2vec vectors for `--pretrained-embeddings`: `python -m model.train.word2vec --help`.

The sentences are the training split tokenized exactly as `model.train` tokenizes it (its data
flags, its cache, its vocabulary), in the form the language model reads them: `<eos>` first (the
model's start input, see model/batching.py), words outside the vocabulary as `<unk>`. So with
the default --min-count every vocabulary entry, <unk> and <eos> included, gets a vector.
Valid and test lines are never seen. `initialise_embeddings` does the same inside a training
run (`--word2vec-init`, on in the default preset) without a file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.train.config import CORPUS_FLAGS, TrainConfig, add_config_flags
from model.train.data import Data, prepare_data
from model.train.extras import import_training_package
from model.train.vector_files import copy_vectors, load_pretrained
from model.vocab import EOS

TEXT_SLICE = 1 << 22  # tokens written to the corpus file at a time
SAMPLE_TOKENS = 100_000  # tokens of the training split timed to foresee word2vec's time
REPEATABLE_TOKENS = 2_000_000  # training splits up to this size get one thread: exact repeats
# skip-gram settings of both the command line's defaults and --word2vec-init
WINDOW, MIN_COUNT, EPOCHS = 5, 2, 5
# model.train's flags that decide the tokens and the vocabulary; their help and defaults are
# TrainConfig's, so both commands read a corpus the same way
DATA_FLAGS = (
    *CORPUS_FLAGS,
    "tokenizer",
    "lowercase",
    "nfkc",
    "user_dict",
    "min_freq",
    "max_vocab",
    "max_train_lines",
)
# model.train's flags that word2vec takes as they are: the vectors' width and the seed
SHARED_FLAGS = (*DATA_FLAGS, "embedding_size", "seed")


def build_parser() -> argparse.ArgumentParser:
    """model.train's data flags plus the word2vec ones."""
    parser = argparse.ArgumentParser(
        prog="python -m model.train.word2vec",
        description="Train word2vec vectors (gensim) on a corpus's training split, tokenized "
        "as model.train tokenizes it, for --pretrained-embeddings.",
    )
    add_config_flags(parser.add_argument_group("data (as in python -m model.train)"), DATA_FLAGS)
    add_config_flags(
        parser.add_argument_group("vectors (as in python -m model.train)"),
        ("embedding_size", "seed"),
    )
    parser.add_argument("--window", type=int, default=WINDOW, help="context words on each side")
    parser.add_argument(
        "--min-count", type=int, default=MIN_COUNT, help="drop words seen fewer times in train"
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="passes over the training split")
    algorithm = parser.add_mutually_exclusive_group()
    algorithm.add_argument(
        "--sg", dest="sg", action="store_true", default=True, help="skip-gram (the default)"
    )
    algorithm.add_argument("--cbow", dest="sg", action="store_false", help="CBOW")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="training threads (default: every core); only one gives the same vectors every run",
    )
    parser.add_argument("--output", required=True, help="vector file to write")
    parser.add_argument("--text", action="store_true", help="write word2vec text instead of binary")
    return parser


def write_training_text(data: Data, path: Path, max_tokens: int | None = None) -> int:
    """Write the training split as the language model reads it, for gensim's corpus_file: a
    line per line, `<eos>` first (the model's start input), then its tokens with words outside
    the vocabulary as `<unk>`, separated by spaces (with max_tokens, only the split's first
    tokens: a sample). Streamed from the store in slices, so its memory does not grow with the
    corpus; returns the words written."""
    forward = data.store.lines("train", data.store.table(data.vocab))[: len(data.ids["train"])]
    words = np.array(data.vocab.itos, dtype=object)
    words[data.vocab.eos_id] = "\n" + EOS  # an <eos> closes a line and opens the next
    total = forward.num_tokens()
    end = total if max_tokens is None else min(total, max_tokens)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(EOS)
        for start in range(0, end, TEXT_SLICE):
            ids = forward.stream(start, min(end, start + TEXT_SLICE))
            if start + TEXT_SLICE >= end:
                ids = ids[:-1]  # the last line's <eos> opens no line; a sample drops a word too
            stream.write(" " + " ".join(words[ids].tolist()))
        stream.write("\n")
    return end


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with hashfxn(word + seed); Python's hash() of a
    str changes between processes (PYTHONHASHSEED), so one worker with one seed would still not
    give the same vectors twice."""
    return zlib.crc32(text.encode("utf-8"))


def fit_vectors(
    corpus_file: Path,
    size: int,
    *,
    seed: int,
    window: int = WINDOW,
    min_count: int = MIN_COUNT,
    epochs: int = EPOCHS,
    skip_gram: bool = True,
    workers: int | None = None,
    callbacks: tuple = (),
):
    """A gensim Word2Vec model trained on a corpus_file (a sentence a line, words separated
    by spaces) with `workers` threads (default: every core), each reading its own part of the
    file, so nothing loads the corpus (gensim is imported here: it takes a second);
    `callbacks` are gensim's, called around each pass."""
    gensim_models = import_gensim_models()
    return gensim_models.Word2Vec(
        corpus_file=str(corpus_file),
        vector_size=size,
        window=window,
        min_count=min_count,
        sg=int(skip_gram),
        workers=workers or os.cpu_count() or 1,
        seed=seed,
        epochs=epochs,
        hashfxn=_stable_hash,
        callbacks=callbacks,
    )


def import_gensim_models():
    """gensim.models, or MissingTrainingPackage saying that word2vec needs gensim."""
    return import_training_package("gensim.models", "training word2vec vectors")


class PassBar:
    """A progress bar of word2vec's passes on stderr, given to gensim as a callback (gensim
    calls these four hooks, those of its CallbackAny2Vec), so the longest stage of a large
    corpus shows its pace and an ETA after its first pass."""

    def __init__(self, passes: int):
        self.passes = passes

    def on_train_begin(self, model) -> None:
        self.bar = tqdm(
            total=self.passes, desc="word2vec", unit="pass", dynamic_ncols=True, file=sys.stderr
        )

    def on_epoch_begin(self, model) -> None:
        pass  # a pass shows when it ends

    def on_epoch_end(self, model) -> None:
        self.bar.update()

    def on_train_end(self, model) -> None:
        self.bar.close()


def vector_workers(config: TrainConfig, train_tokens: int) -> int:
    """Threads for --word2vec-init: --word2vec-workers if given, else one for a training split
    of at most REPEATABLE_TOKENS tokens and every core above it. gensim's threads update the
    shared vectors in whatever order they run, so vectors from two threads, and the model
    trained from them, differ from run to run; on a small split one thread costs seconds and
    makes the run repeat exactly (the benchmark's default preset included), on a large one
    the vectors are the run's longest stage and get every core."""
    if config.word2vec_workers:
        return config.word2vec_workers
    return 1 if train_tokens <= REPEATABLE_TOKENS else os.cpu_count() or 1


def estimate_vector_seconds(data: Data, config: TrainConfig) -> float:
    """Seconds --word2vec-init should take here: one pass over the training split's first
    SAMPLE_TOKENS tokens with the run's threads, timed, scaled to the whole split and its
    passes (gensim's time grows with both), so the plan can say it before the stage starts."""
    total = data.ids["train"].num_tokens()
    import_gensim_models()  # its import is not the vectors' time
    logging.getLogger("gensim").setLevel(logging.WARNING)  # the run's log is about the LM
    with tempfile.TemporaryDirectory(prefix="nextword-word2vec-") as directory:
        sample = Path(directory) / "sample.txt"
        words = write_training_text(data, sample, SAMPLE_TOKENS)
        started = time.perf_counter()
        fit_vectors(
            sample,
            config.embedding_size,
            seed=config.seed,
            epochs=1,
            workers=vector_workers(config, total),
        )
        seconds = time.perf_counter() - started
    return seconds * config.word2vec_epochs * total / max(words, 1)


def initialise_embeddings(
    data: Data, embedding: torch.Tensor, config: TrainConfig, progress: bool = False
) -> float:
    """Train skip-gram vectors with the defaults above on the training split (the run's seed,
    --word2vec-epochs passes, vector_workers threads) and copy them into `embedding` (V, E) in
    place, for --word2vec-init (with progress, a bar of its passes); returns the vocabulary's
    coverage."""
    logging.getLogger("gensim").setLevel(logging.WARNING)  # the run's log is about the LM
    with tempfile.TemporaryDirectory(prefix="nextword-word2vec-") as directory:
        corpus_file = Path(directory) / "train.txt"
        total = write_training_text(data, corpus_file)
        epochs = config.word2vec_epochs
        vectors = fit_vectors(
            corpus_file,
            embedding.size(1),
            seed=config.seed,
            epochs=epochs,
            workers=vector_workers(config, total),
            callbacks=(PassBar(epochs),) if progress else (),
        ).wv
    stoi = data.vocab.stoi
    found = ((stoi[word], vectors[word]) for word in vectors.index_to_key if word in stoi)
    return copy_vectors(found, len(data.vocab), embedding)


def main(argv: list[str] | None = None) -> None:
    """Train vectors, write them to --output, print the training vocabulary's coverage."""
    args = build_parser().parse_args(argv)
    overrides = {name: getattr(args, name) for name in SHARED_FLAGS}
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    size = config.embedding_size
    started = time.perf_counter()
    data = prepare_data(config)
    with tempfile.TemporaryDirectory(prefix="nextword-word2vec-") as directory:
        corpus_file = Path(directory) / "train.txt"
        words = write_training_text(data, corpus_file)
        lines = len(data.ids["train"])
        print(f"{data.store.name}: {lines:,} training lines, {words:,} tokens with <eos>")
        model = fit_vectors(
            corpus_file,
            size,
            seed=config.seed,
            window=args.window,
            min_count=args.min_count,
            epochs=args.epochs,
            skip_gram=args.sg,
            workers=args.workers,
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp{os.getpid()}")
    try:
        model.wv.save_word2vec_format(str(temporary), binary=not args.text)
        os.replace(temporary, output)  # a reader never sees half a file
    finally:
        temporary.unlink(missing_ok=True)
    # read back through the loader model.train uses: checks the file and measures coverage
    embedding = torch.zeros(len(data.vocab), size)
    coverage = load_pretrained(output, data.vocab, embedding)
    print(
        f"wrote {len(model.wv)} {size}-wide vectors to {output} "
        f"({'text' if args.text else 'binary'}) in {time.perf_counter() - started:.1f} s; "
        f"coverage of the {len(data.vocab)}-entry training vocabulary: {coverage:.2%}"
    )


if __name__ == "__main__":
    main()
