"""Reading text with a trained model: encoding, per-token scores of whole lines and the state
after a prompt. `model.evaluate`, `model.generation` and the service's engine all build on
these, so a text gets the same figure everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from model.batching import IGNORE, make_batches
from model.rnn import RNNLanguageModel
from model.tokenizers import Tokenizer
from model.vocab import SPECIALS, UNK, Vocab


@dataclass
class EncodedText:
    """A text as the model sees it: its tokens, their ids and which were out of vocabulary."""

    tokens: list[str]
    ids: list[int]
    oov: list[bool]

    def entries(self) -> list[str]:
        """The vocabulary entry of each token: the token, or <unk> where it is out of
        vocabulary."""
        return [UNK if oov else token for token, oov in zip(self.tokens, self.oov, strict=True)]

    def after_start(self, eos_id: int) -> EncodedText:
        """The text without a leading <eos>: what a model reads after its start state (which
        is the state after <eos>)."""
        if self.ids[:1] != [eos_id]:
            return self
        return EncodedText(self.tokens[1:], self.ids[1:], self.oov[1:])


def encode_text(tokenizer: Tokenizer, vocab: Vocab, text: str) -> EncodedText:
    """Tokenize and map to ids, flagging tokens that became <unk>."""
    tokens = tokenizer.tokenize(text)
    ids = vocab.encode(tokens)
    return EncodedText(tokens, ids, [i == vocab.unk_id for i in ids])


_SPECIAL_TOKENS = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS) + ")")


def encode_text_with_specials(tokenizer: Tokenizer, vocab: Vocab, text: str) -> EncodedText:
    """encode_text, except that "<eos>" and "<unk>" written in the text are those tokens, one
    id each (a plain tokenizer would cut them into pieces): what clients that tokenize with
    special tokens, such as lm-evaluation-harness, expect."""
    parts = [
        EncodedText([part], [vocab.stoi[part]], [part == UNK])
        if part in SPECIALS
        else encode_text(tokenizer, vocab, part)
        for part in _SPECIAL_TOKENS.split(text)
        if part
    ]
    return _concatenate(parts)


def _concatenate(parts: Sequence[EncodedText]) -> EncodedText:
    """The encoded texts one after the other, as one."""
    return EncodedText(
        [t for p in parts for t in p.tokens],
        [i for p in parts for i in p.ids],
        [o for p in parts for o in p.oov],
    )


def encode_document(
    encode: Callable[[Tokenizer, Vocab, str], EncodedText],
    tokenizer: Tokenizer,
    vocab: Vocab,
    text: str,
) -> EncodedText:
    """A text of several lines read as one document, as document context reads a split: each
    non-blank line encoded with encode, the lines joined by <eos>. A text of one line is
    encode's answer exactly."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return encode(tokenizer, vocab, text)
    end_of_line = EncodedText([vocab.itos[vocab.eos_id]], [vocab.eos_id], [False])
    parts = [encode(tokenizer, vocab, line) for line in lines]
    return _concatenate([x for part in parts[:-1] for x in (part, end_of_line)] + parts[-1:])


@torch.inference_mode()
def read_each_line(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    bptt: int = 256,
    keep_features: bool = False,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """(line index, log-probability of each of its targets (T,), and with keep_features the
    output feature before each target (T, D) float32) for every line, each read from the start
    state in length-grouped batches; lines come in batch order, not the order given."""
    model.eval()
    device = model.device
    for batch in make_batches(lines, eos_id, batch_size):
        state = None
        scores, outputs = [], []
        for inputs, targets in batch.windows(bptt):
            features, state = model(inputs.to(device), state)
            window_scores = torch.full(targets.shape, float("nan"))
            window_scores[targets != IGNORE] = (
                model.target_log_probs(features, targets.to(device)).float().cpu()
            )
            scores.append(window_scores)
            if keep_features:
                outputs.append(features.float().cpu())
        row_scores = torch.cat(scores, dim=1)  # (B, T), NaN on padding
        row_features = torch.cat(outputs, dim=1) if keep_features else None
        for row, index in enumerate(batch.rows):
            length = len(lines[index]) + 1
            kept = row_features[row, :length] if row_features is not None else None
            yield index, row_scores[row, :length].clone(), kept


def score_lines(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    bptt: int = 256,
) -> list[torch.Tensor]:
    """Log-probability of every target of every line (its tokens, then <eos>), each line read
    from the start state, in the order given. Independent of batch_size by construction."""
    scores: list[torch.Tensor] = [torch.empty(0)] * len(lines)
    for index, line_scores, _ in read_each_line(model, lines, eos_id, batch_size, bptt):
        scores[index] = line_scores
    return scores


def perplexity_of(line_scores: Sequence[torch.Tensor]) -> tuple[float, int]:
    """(perplexity, number of targets) of per-line log-probabilities, pooled over all lines."""
    total = sum(float(s.double().sum()) for s in line_scores)
    count = sum(int(s.numel()) for s in line_scores)
    return float(torch.tensor(-total / max(count, 1)).exp()), count


@torch.inference_mode()
def read_prompt(
    model: RNNLanguageModel, ids: Sequence[int], eos_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities (V,) of the next token, state) after reading <eos> + ids from the
    start state."""
    device = model.device
    tokens = torch.tensor([[eos_id, *ids]], dtype=torch.long, device=device)  # (1, T)
    features, state = model(tokens)
    return model.log_probs(features[0, -1:])[0], state
