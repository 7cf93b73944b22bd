"""The batched step over rows: every row gets the figures it would get alone, prompts are read
in chunks that never cross a line the checkpoint reads from the start state, and a generated
token is read once."""

from __future__ import annotations

import pytest
import torch

import model.runner
from model.checkpoint import load_checkpoint
from model.decoding import Decoding
from model.rows import BlankRow, GenerateRow, PredictRow, ScoreRow
from model.runner import Outbox, Runner
from model.sampling import SamplingOptions
from model.scoring import score_lines
from model.tokenizers import TextEncoder, build_tokenizer
from tests.oracles import read_prompt

TEXTS = ["", "我爱北京天安门。", "中国人民银行今天宣布，从明天起下调存款利率。" * 3, "人民日报"]


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    return checkpoint, TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)


def _run(runner: Runner) -> Outbox:
    """Step until every row is done, finished rows leaving as the scheduler takes them out;
    every result of each kind, in order."""
    results = Outbox()
    while runner.rows:
        step = runner.step()
        results.scored += step.scored
        results.predicted += step.predicted
        results.generated += step.generated
        results.blanks += step.blanks
        runner.keep([i for i, row in enumerate(runner.rows) if not row.finished])
    return results


def test_score_rows_read_in_ragged_chunks_equal_score_lines(loaded) -> None:
    checkpoint, encoder = loaded
    ids = [encoder.encode(text).ids for text in TEXTS]
    runner = Runner(checkpoint, prefill_chunk=3)
    eos = checkpoint.vocab.eos_id
    runner.add([ScoreRow(line, eos, i) for i, line in enumerate(ids)])
    results = {scored.index: scored.logprobs for _, scored in _run(runner).scored}
    for index, expected in enumerate(score_lines(checkpoint.model, ids, eos)):
        assert torch.allclose(results[index], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("left", "right"),
    [("中国人民银行今天宣布", "明天起下调存款利率。"), ("", "下调存款利率。"), ("今天宣布", "")],
)  # a blank inside the line, at its start, at its end
def test_a_blank_row_reads_the_left_side_once_and_each_line_scores_as_alone(
    loaded, monkeypatch, left, right
):
    """Fill-blank's lines differ only from the blank on: one row reads the left side, the
    words proposed at the blank are the model's top ones, and each line filled with a chosen
    word goes on from a copy of its state, amid an unrelated row, getting the scores of its
    own reading."""
    checkpoint, encoder = loaded
    vocab, eos = checkpoint.vocab, checkpoint.vocab.eos_id
    left_ids, right_ids = encoder.encode(left).ids, encoder.encode(right).ids
    read: list[int] = []
    real_forward = model.runner.forward_rows

    def recording_forward(network, chunks, state):
        read.append(sum(len(chunk) for chunk in chunks))
        return real_forward(network, chunks, state)

    monkeypatch.setattr(model.runner, "forward_rows", recording_forward)
    offered: list[list[str]] = []
    chosen = [vocab.stoi["。"], len(vocab) - 1, 7]  # a common word, the rarest, another

    class Chooser:  # sees the model's 6 first words, names `chosen`
        ask = most_words = 6

        def __call__(self, proposed):
            offered.append([c.token for c in proposed])
            return chosen

    runner = Runner(checkpoint, prefill_chunk=4)
    other = encoder.encode("人民日报").ids
    blank_row = BlankRow(left_ids, right_ids, eos, Chooser())
    runner.add([blank_row, ScoreRow(other, eos, 7)])
    results = _run(runner)
    ((answered, blank),) = results.blanks
    assert answered is blank_row and offered == [[c.token for c in blank.proposed]]
    assert offered[0] == top_words(checkpoint, left_ids, 6) and blank.words == chosen
    ((_, scored),) = results.scored  # the unrelated row; the lines answer as the blank
    assert scored.index == 7 and len(blank.logprobs) == len(chosen)
    lines = [[*left_ids, word, *right_ids] for word in chosen]
    expected = score_lines(checkpoint.model, [*lines, other], eos)
    for got, want in zip([*blank.logprobs, scored.logprobs.tolist()], expected, strict=True):
        assert torch.allclose(torch.tensor(got), want, atol=1e-5)
    # the left side once (with its <eos>), then each line's word and right side, and `other`
    assert sum(read) == 1 + len(left_ids) + len(chosen) * (1 + len(right_ids)) + 1 + len(other)


def top_words(checkpoint, context: list[int], k: int) -> list[str]:
    """The model's k most probable next words after context (<unk> never), best first."""
    log_probs, _ = read_prompt(checkpoint.model, context, checkpoint.vocab.eos_id)
    log_probs = log_probs.clone()
    log_probs[checkpoint.vocab.unk_id] = float("-inf")
    return checkpoint.vocab.decode(log_probs.topk(k).indices.tolist())


def test_each_generated_token_is_read_once(loaded, monkeypatch) -> None:
    """After the prompt every step reads one token: a token costs the same however long the
    text before it."""
    checkpoint, encoder = loaded
    widths: list[list[int]] = []
    real_forward = model.runner.forward_rows

    def recording_forward(network, chunks, state):
        widths.append([len(chunk) for chunk in chunks])
        return real_forward(network, chunks, state)

    monkeypatch.setattr(model.runner, "forward_rows", recording_forward)
    prompt = encoder.encode("中国人民银行今天宣布")
    options = SamplingOptions(0.0, max_new_tokens=50, seed=1, ignore_eos=True)
    eos = checkpoint.vocab.eos_id
    decoding = Decoding(prompt.ids, prompt.tokens, options, eos, encoder.tokenizer)
    runner = Runner(checkpoint, prefill_chunk=3)
    runner.add([GenerateRow(decoding, len(prompt.ids))])
    steps = [step for _, step in _run(runner).generated]
    prefill_steps = -(-(len(prompt.ids) + 1) // 3)
    assert sum(step.token is not None for step in steps) == 50
    assert [step.finish is not None for step in steps] == [False] * 49 + [True]
    assert widths[:prefill_steps] == [[3]] * (prefill_steps - 1) + [[widths[prefill_steps - 1][0]]]
    assert widths[prefill_steps:] == [[1]] * 49  # the 50th token is never read


def test_predict_row_offers_the_top_k_without_unk(loaded) -> None:
    checkpoint, encoder = loaded
    text = encoder.encode("我们去北京")
    runner = Runner(checkpoint)
    runner.add([PredictRow(text.ids, checkpoint.vocab.eos_id, 5)])
    ((_, prediction),) = _run(runner).predicted
    candidates = prediction.candidates
    with torch.inference_mode():
        features, _ = checkpoint.model(torch.tensor([[checkpoint.vocab.eos_id, *text.ids]]))
        log_probs = checkpoint.model.log_probs(features[0, -1:])[0].float()
        log_probs[checkpoint.vocab.unk_id] = float("-inf")
        values, ids = log_probs.topk(5)
    assert [c.token for c in candidates] == checkpoint.vocab.decode(ids.tolist())
    assert [c.logprob for c in candidates] == pytest.approx(values.tolist(), abs=1e-5)


def test_a_predict_row_asking_for_every_word_gets_the_whole_distribution(loaded) -> None:
    checkpoint, encoder = loaded
    text = encoder.encode("我们去北京")
    vocab = checkpoint.vocab
    runner = Runner(checkpoint)
    asking = PredictRow(text.ids, vocab.eos_id, 3, every_word=True)
    plain = PredictRow(encoder.encode("人民").ids, vocab.eos_id, 2)
    runner.add([plain, asking])
    results = dict(_run(runner).predicted)
    with torch.inference_mode():
        features, _ = checkpoint.model(torch.tensor([[vocab.eos_id, *text.ids]]))
        log_probs = checkpoint.model.log_probs(features[0, -1:])[0].float()
    answer, alone = results[asking], results[plain]
    assert len(answer.candidates) == 3 and len(alone.candidates) == 2 and alone.every_word is None
    assert answer.every_word == pytest.approx(log_probs.tolist(), abs=1e-5)


def test_keep_drops_rows_and_their_state(loaded) -> None:
    checkpoint, encoder = loaded
    eos = checkpoint.vocab.eos_id
    runner = Runner(checkpoint)
    rows = [PredictRow(encoder.encode(t).ids, eos, 1) for t in TEXTS]
    runner.add(rows)
    assert runner.state.size(2) == len(TEXTS)
    runner.keep([1, 3])
    assert runner.rows == [rows[1], rows[3]] and runner.state.size(2) == 2
