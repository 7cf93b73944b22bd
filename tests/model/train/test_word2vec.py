"""python -m model.train.word2vec on the tiny corpus: the vectors load into a model's embedding
and a training run starts from them; --word2vec-init does the same inside a run."""

from __future__ import annotations

import pytest
import torch
from gensim.models import KeyedVectors

from model.train import word2vec
from model.train.build import build_model
from model.train.data import prepare_data
from model.train.trainer import Trainer, train
from model.train.vector_files import load_pretrained
from model.vocab import EOS

SIZE = 32  # tiny_config's embedding_size


def run_word2vec(corpus, output, *extra: str) -> None:
    args = ["--corpus", str(corpus), "--embedding-size", str(SIZE), "--epochs", "2"]
    args += ["--workers", "1"]
    word2vec.main([*args, "--output", str(output), *extra])


@pytest.fixture(scope="module")
def vectors_file(tiny_corpus_file, tmp_path_factory):
    """Binary vectors trained on the tiny corpus (well under a second)."""
    output = tmp_path_factory.mktemp("word2vec") / "vectors.bin"
    run_word2vec(tiny_corpus_file, output)
    return output


def test_vectors_cover_the_whole_training_vocabulary(vectors_file, tiny_config, tmp_path):
    vocab = prepare_data(tiny_config(tmp_path)).vocab
    embedding = torch.zeros(len(vocab), SIZE)
    # min-count 2 = min-freq 2, and <unk>, <eos> are in the sentences
    assert load_pretrained(vectors_file, vocab, embedding) == 1.0
    assert embedding.abs().sum(dim=1).min() > 0


def test_one_worker_and_one_seed_write_the_same_file(
    vectors_file, tiny_corpus_file, tmp_path, capsys
):
    run_word2vec(tiny_corpus_file, tmp_path / "again.bin")
    assert "training vocabulary: 100.00%" in capsys.readouterr().out
    assert (tmp_path / "again.bin").read_bytes() == vectors_file.read_bytes()


def test_the_corpus_file_is_the_training_split_as_the_model_reads_it(
    tiny_config, tmp_path, monkeypatch
):
    monkeypatch.setattr(word2vec, "TEXT_SLICE", 1000)  # several slices, joined seamlessly
    data = prepare_data(tiny_config(tmp_path))
    words = word2vec.write_training_text(data, tmp_path / "train.txt")
    sentences = [line.split() for line in (tmp_path / "train.txt").read_text("utf-8").splitlines()]
    train = data.store.token_lines("train")
    assert len(sentences) == len(train)  # not valid or test
    assert words == sum(len(s) for s in sentences)
    for sentence, line in zip(sentences, train, strict=True):
        assert sentence[0] == EOS and len(sentence) == len(line) + 1
        assert all(s == t or s == "<unk>" for s, t in zip(sentence[1:], line, strict=True))


def test_a_sample_of_the_corpus_file_is_its_first_words(tiny_config, tmp_path):
    data = prepare_data(tiny_config(tmp_path))
    whole = word2vec.write_training_text(data, tmp_path / "train.txt")
    assert word2vec.write_training_text(data, tmp_path / "sample.txt", 50) == 50 < whole
    sample = (tmp_path / "sample.txt").read_text("utf-8").split()
    assert sample == (tmp_path / "train.txt").read_text("utf-8").split()[:50]


def test_the_vectors_time_is_foreseen_from_one_pass_over_a_sample(
    tiny_config, tmp_path, monkeypatch
):
    data = prepare_data(tiny_config(tmp_path))
    fits, clock = [], iter([10.0, 12.0])  # the sample's pass takes 2 s
    monkeypatch.setattr(word2vec, "SAMPLE_TOKENS", 40)
    monkeypatch.setattr(word2vec.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(
        word2vec,
        "fit_vectors",
        lambda path, size, *, seed, epochs, workers: fits.append(
            (len(path.read_text().split()), epochs, workers)
        ),
    )
    config = tiny_config(tmp_path, word2vec_epochs=5, word2vec_workers=3)
    seconds = word2vec.estimate_vector_seconds(data, config)
    assert fits == [(40, 1, 3)]  # one pass over the sample, with the run's threads
    assert seconds == pytest.approx(2.0 * 5 * data.ids["train"].num_tokens() / 40)


def test_a_small_split_gets_one_thread_for_its_vectors_and_a_large_one_every_core(
    tiny_config, tmp_path, monkeypatch
):
    monkeypatch.setattr(word2vec.os, "cpu_count", lambda: 8)
    config = tiny_config(tmp_path)
    assert word2vec.vector_workers(config, word2vec.REPEATABLE_TOKENS) == 1
    assert word2vec.vector_workers(config, word2vec.REPEATABLE_TOKENS + 1) == 8
    config.word2vec_workers = 2  # the user's choice wins either way
    assert word2vec.vector_workers(config, 10) == word2vec.vector_workers(config, 10**9) == 2


def test_word2vec_init_shows_its_passes_as_a_bar(tiny_config, tmp_path, capsys):
    data = prepare_data(tiny_config(tmp_path))
    embedding = torch.zeros(len(data.vocab), SIZE)
    config = tiny_config(tmp_path, word2vec_epochs=3)
    word2vec.initialise_embeddings(data, embedding, config, progress=True)
    shown = capsys.readouterr().err
    assert "word2vec" in shown and "3/3" in shown and "pass" in shown
    word2vec.initialise_embeddings(data, embedding, config)
    assert "word2vec" not in capsys.readouterr().err


def test_training_starts_from_the_vectors(vectors_file, tiny_config, tmp_path):
    config = tiny_config(tmp_path, pretrained_embeddings=str(vectors_file))
    vocab = prepare_data(config).vocab
    model, coverage = build_model(config, vocab)
    assert coverage == 1.0
    keyed = KeyedVectors.load_word2vec_format(str(vectors_file), binary=True)  # gensim's reader
    for word in [*vocab.itos[:50], "<unk>", "<eos>"]:
        expected = torch.from_numpy(keyed[word].copy())
        assert torch.equal(model.embedding.weight[vocab.stoi[word]].detach(), expected), word


def test_text_output_holds_the_same_vectors(vectors_file, tiny_corpus_file, tmp_path):
    text_file = tmp_path / "vectors.txt"
    run_word2vec(tiny_corpus_file, text_file, "--text")
    assert text_file.read_text(encoding="utf-8").split("\n", 1)[0].split()[1] == str(SIZE)
    binary = KeyedVectors.load_word2vec_format(str(vectors_file), binary=True)
    text = KeyedVectors.load_word2vec_format(str(text_file), binary=False)
    assert text.index_to_key == binary.index_to_key
    assert torch.equal(torch.from_numpy(text.vectors), torch.from_numpy(binary.vectors))


def test_word2vec_init_starts_the_embeddings_from_vectors_of_the_training_split(
    tiny_config, tmp_path
):
    config = tiny_config(tmp_path / "run", word2vec_init=True)
    data = prepare_data(config)
    trainer = Trainer(config, data)
    assert trainer.coverage == 1.0
    word2vec.write_training_text(data, tmp_path / "train.txt")
    keyed = word2vec.fit_vectors(tmp_path / "train.txt", SIZE, seed=config.seed).wv
    for word in [*data.vocab.itos[:50], "<unk>", "<eos>"]:  # the same words, like vectors
        vector = trainer.model.embedding.weight[data.vocab.stoi[word]].detach()
        assert torch.cosine_similarity(vector, torch.from_numpy(keyed[word].copy()), 0) > 0.5
    assert trainer.progress.elapsed_seconds > 0  # the vectors' time is in the budget


def test_a_resumed_run_does_not_train_its_vectors_again(tiny_config, tmp_path, monkeypatch):
    config = tiny_config(tmp_path / "run", word2vec_init=True, max_steps=3)
    train(config)

    def refuse(*args, **kwargs):
        raise AssertionError("vectors trained again on --resume")

    monkeypatch.setattr("model.train.trainer.initialise_embeddings", refuse)
    config.resume, config.max_steps = True, 5
    assert train(config)["steps"] == 5
