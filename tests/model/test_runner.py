"""The batched step over rows: every row gets the figures it would get alone, prompts are read
in chunks that never cross a line the checkpoint reads from the start state, and a generated
token is read once."""

from __future__ import annotations

import pytest
import torch

import model.runner
from model.checkpoint import load_checkpoint
from model.decoding import Decoding
from model.rows import (
    FinishEvent,
    GenerateRow,
    PredictRow,
    ScoreRow,
    SharedPrefixRow,
    Ticket,
    TokenEvent,
    score_rows_for,
)
from model.runner import Runner
from model.sampling import SamplingOptions
from model.scoring import score_lines
from model.tokenizers import TextEncoder, build_tokenizer

TEXTS = ["", "我爱北京天安门。", "中国人民银行今天宣布，从明天起下调存款利率。" * 3, "人民日报"]


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    return checkpoint, TextEncoder(build_tokenizer(checkpoint.tokenizer_spec), checkpoint.vocab)


def _run(runner: Runner) -> list[tuple[object, object]]:
    """Step until every row is done, finished rows leaving as the scheduler takes them out;
    every result in order."""
    results = []
    while runner.rows:
        results += runner.step()
        runner.keep([i for i, row in enumerate(runner.rows) if not row.finished])
    return results


def test_score_rows_read_in_ragged_chunks_equal_score_lines(loaded) -> None:
    checkpoint, encoder = loaded
    ids = [encoder.encode(text).ids for text in TEXTS]
    runner = Runner(checkpoint, prefill_chunk=3)
    eos = checkpoint.vocab.eos_id
    runner.add([ScoreRow(line, eos, i, Ticket()) for i, line in enumerate(ids)])
    results = {index: scores for _, (index, scores, _) in _run(runner)}  # type: ignore[misc]
    for index, expected in enumerate(score_lines(checkpoint.model, ids, eos)):
        assert torch.allclose(results[index], expected, atol=1e-5)


@pytest.mark.parametrize("shared", [1, 3, None])  # None: the whole of one text
def test_texts_sharing_a_prefix_read_it_once_and_score_as_alone(loaded, monkeypatch, shared):
    """Lines that differ only after their first `shared` tokens (fill-blank's filled lines):
    one row reads the prefix, then each line goes on from a copy of its state, amid an
    unrelated row, and every line gets the scores of its own reading."""
    checkpoint, encoder = loaded
    prefix = encoder.encode("中国人民银行今天宣布，从明天起").ids[:shared]
    shared = len(prefix)
    rests = [encoder.encode(text).ids for text in ("下调存款利率。", "", "我爱北京天安门。")]
    texts = [[*prefix, *rest] for rest in rests]
    read: list[int] = []
    real_forward = model.runner.forward_rows

    def recording_forward(network, chunks, state):
        read.append(sum(len(chunk) for chunk in chunks))
        return real_forward(network, chunks, state)

    monkeypatch.setattr(model.runner, "forward_rows", recording_forward)
    eos = checkpoint.vocab.eos_id
    runner = Runner(checkpoint, prefill_chunk=4)
    rows = score_rows_for(texts, eos, Ticket(), shared)
    assert [type(row) for row in rows] == [SharedPrefixRow]
    other = encoder.encode("人民日报").ids
    runner.add([*rows, ScoreRow(other, eos, 7, Ticket())])
    results = {index: scores for _, (index, scores, _) in _run(runner)}  # type: ignore[misc]
    assert sorted(results) == [0, 1, 2, 7]
    expected = score_lines(checkpoint.model, [*texts, other], eos)
    for index, want in zip([0, 1, 2, 7], expected, strict=True):
        assert torch.allclose(results[index], want, atol=1e-5)
    # each text's own tokens plus the prefix once (its <eos> and all but its last token)
    own = sum(len(text) - shared + 2 for text in texts)  # the last shared one, its rest, <eos>
    assert sum(read) == own - len(texts) + shared + len(other) + 1


def test_only_one_line_texts_with_the_same_start_share_it():
    eos = 0
    a, b = [5, 6, 7], [5, 8, 7]
    with pytest.raises(ValueError, match="do not all begin with the same 2 tokens"):
        score_rows_for([a, b], eos, Ticket(), 2)
    assert [type(r) for r in score_rows_for([a, [*a, eos, *b]], eos, Ticket(), 1)] == [ScoreRow] * 2
    assert [type(r) for r in score_rows_for([a], eos, Ticket(), 1)] == [ScoreRow]
    assert [type(r) for r in score_rows_for([a, b], eos, Ticket(), 0)] == [ScoreRow] * 2


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
    runner.add([GenerateRow(decoding, len(prompt.ids), Ticket())])
    results = _run(runner)
    prefill_steps = -(-(len(prompt.ids) + 1) // 3)
    assert sum(isinstance(event, TokenEvent) for _, event in results) == 50
    assert isinstance(results[-1][1], FinishEvent)
    assert widths[:prefill_steps] == [[3]] * (prefill_steps - 1) + [[widths[prefill_steps - 1][0]]]
    assert widths[prefill_steps:] == [[1]] * 49  # the 50th token is never read


def test_predict_row_offers_the_top_k_without_unk(loaded) -> None:
    checkpoint, encoder = loaded
    text = encoder.encode("我们去北京")
    runner = Runner(checkpoint)
    runner.add([PredictRow(text.ids, checkpoint.vocab.eos_id, 5, Ticket())])
    ((_, candidates),) = _run(runner)
    with torch.inference_mode():
        features, _ = checkpoint.model(torch.tensor([[checkpoint.vocab.eos_id, *text.ids]]))
        log_probs = checkpoint.model.log_probs(features[0, -1:])[0].float()
        log_probs[checkpoint.vocab.unk_id] = float("-inf")
        values, ids = log_probs.topk(5)
    assert [c.token for c in candidates] == checkpoint.vocab.decode(ids.tolist())
    assert [c.logprob for c in candidates] == pytest.approx(values.tolist(), abs=1e-5)


def test_a_predict_row_gives_the_exact_logprob_of_each_word_it_asks_for(loaded) -> None:
    checkpoint, encoder = loaded
    text = encoder.encode("我们去北京")
    vocab = checkpoint.vocab
    words = [len(vocab) - 1, vocab.eos_id, 7, len(vocab) // 2]  # the rarest word, <eos>, ...
    runner = Runner(checkpoint)
    asking = PredictRow(text.ids, vocab.eos_id, 3, Ticket(), words=words)
    plain = PredictRow(encoder.encode("人民").ids, vocab.eos_id, 2, Ticket())
    runner.add([plain, asking])
    results = dict(_run(runner))
    with torch.inference_mode():
        features, _ = checkpoint.model(torch.tensor([[vocab.eos_id, *text.ids]]))
        log_probs = checkpoint.model.log_probs(features[0, -1:])[0].float()
    answer = results[asking]
    assert len(answer) == 3 + len(words) and len(results[plain]) == 2
    assert [c.token for c in answer[3:]] == vocab.decode(words)
    assert [c.logprob for c in answer[3:]] == pytest.approx(log_probs[words].tolist(), abs=1e-5)
    assert answer[4].end_of_text


def test_keep_drops_rows_and_their_state(loaded) -> None:
    checkpoint, encoder = loaded
    eos = checkpoint.vocab.eos_id
    runner = Runner(checkpoint)
    rows = [PredictRow(encoder.encode(t).ids, eos, 1, Ticket()) for t in TEXTS]
    runner.add(rows)
    assert runner.state.size(2) == len(TEXTS)
    runner.keep([1, 3])
    assert runner.rows == [rows[1], rows[3]] and runner.state.size(2) == 2
