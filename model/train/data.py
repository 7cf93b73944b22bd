"""A run's data: the corpus's prepared store (model/train/prepare.py, made when missing), the
vocabulary built from its train counts, and every split as lines of vocabulary ids read through
the store's memory maps. Training, word2vec, evaluate and the benchmarks all read a corpus
through this."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.tokenizers import TokenizerSpec
from model.train.config import TrainConfig
from model.train.corpora import PEOPLES_DAILY, SPLITS, resolve_source, split_files
from model.train.prepare import describe_skipped, prepare_store
from model.train.store import TokenLines, TokenStore
from model.vocab import Vocab

# The vocabulary of a corpus other than peoples-daily is capped at this many entries unless
# --max-vocab says otherwise: the adaptive softmax's tail then stays small enough to serve
# fast, while the words of a large corpus seen twice can run into the millions.
DEFAULT_VOCAB_CAP = 50_000
log = logging.getLogger("nextword.train")


@dataclass
class Data:
    """A run's store, vocabulary and the id lines of each split (memory-mapped views)."""

    spec: TokenizerSpec
    store: TokenStore
    vocab: Vocab
    ids: dict[str, TokenLines]


def tokenizer_spec(config: TrainConfig) -> TokenizerSpec:
    """The tokenizer a run's settings describe."""
    return TokenizerSpec(
        name=config.tokenizer,
        nfkc=config.nfkc,
        lowercase=config.lowercase,
        user_dict=config.user_dict,
    )


def vocabulary_cap(config_max_vocab: int | None, corpus_name: str) -> int | None:
    """The vocabulary's size limit: --max-vocab when given (0: none), else none for the
    peoples-daily benchmark (docs/data.md) and DEFAULT_VOCAB_CAP for any other corpus."""
    if config_max_vocab is not None:
        return config_max_vocab or None
    return None if corpus_name == PEOPLES_DAILY else DEFAULT_VOCAB_CAP


def open_store(
    corpus: str,
    spec: TokenizerSpec,
    files: dict[str, str] | None = None,
    text_field: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
) -> TokenStore:
    """The store of a corpus tokenized by `spec`, prepared first when missing; a warning
    names the lines it had to skip."""
    source = resolve_source(corpus, files, text_field)
    store = prepare_store(source, spec, Path(cache_dir) if cache_dir else None, workers, progress)
    skipped = describe_skipped(store)
    if skipped:
        log.warning("corpus %s: %s", store.name, skipped)
    return store


def describe_vocabulary(store: TokenStore, max_vocab: int | None, vocab: Vocab | None = None):
    """{size, cap, share of train tokens it covers}: what the plan line says of the vocabulary
    (built under the default rule when not given)."""
    cap = vocabulary_cap(max_vocab, store.name)
    vocab = vocab or store.build_vocab(2, cap)
    counts = store.train_counts()
    total = int(counts.sum()) - int(counts[0])  # <eos> excluded: these are the text's tokens
    covered = total - vocab.counts[vocab.unk_id]
    return {"size": len(vocab), "cap": cap, "coverage": round(covered / max(total, 1), 4)}


def prepare_data(config: TrainConfig) -> Data:
    """Open (or prepare) the store, build the vocabulary from train, view each split as ids."""
    files = split_files(config.train_file, config.valid_file, config.test_file)
    spec = tokenizer_spec(config)
    store = open_store(
        config.corpus,
        spec,
        files,
        config.text_field,
        config.workers,
        config.progress,
        config.cache_dir,
    )
    cap = vocabulary_cap(config.max_vocab, store.name)
    vocab = store.build_vocab(config.min_freq, cap, config.max_train_lines)
    table = store.table(vocab)
    ids = {split: store.lines(split, table, config.direction) for split in SPLITS}
    if config.max_train_lines is not None:
        train = store.lines("train", table)[: config.max_train_lines]
        ids["train"] = train if config.direction == "forward" else _reversed(train, store, table)
    return Data(spec, store, vocab, ids)


def _reversed(train: TokenLines, store: TokenStore, table: np.ndarray) -> TokenLines:
    """The first lines of train read backward (the last of them first)."""
    return store.lines("train", table, "backward")[len(store.split_rows("train")) - len(train) :]
