"""A run's data: the corpus tokenized as its config says, the vocabulary built from train, and
every split as id lines. Training, word2vec and the benchmarks all read a corpus through this."""

from __future__ import annotations

from dataclasses import dataclass

from model.direction import in_reading_order
from model.tokenizers import TokenizerSpec, build_tokenizer
from model.train.config import TrainConfig
from model.train.corpora import Corpus, load_corpus, split_files
from model.vocab import Vocab


@dataclass
class Data:
    """A run's corpus, vocabulary and the id lines of each split."""

    spec: TokenizerSpec
    corpus: Corpus
    vocab: Vocab
    ids: dict[str, list[list[int]]]


def prepare_data(config: TrainConfig) -> Data:
    """Tokenize (or read from the cache), build the vocabulary from train, map splits to ids."""
    spec = TokenizerSpec(
        name=config.tokenizer,
        nfkc=config.nfkc,
        lowercase=config.lowercase,
        user_dict=config.user_dict,
    )
    files = split_files(config.train_file, config.valid_file, config.test_file)
    corpus = load_corpus(config.corpus, build_tokenizer(spec), files)
    if config.max_train_lines is not None:
        corpus.splits["train"] = corpus.splits["train"][: config.max_train_lines]
    vocab = Vocab.build(corpus.splits["train"], config.min_freq, config.max_vocab)
    ids = {
        split: in_reading_order([vocab.encode(line) for line in lines], config.direction)
        for split, lines in corpus.splits.items()
    }
    return Data(spec, corpus, vocab, ids)
