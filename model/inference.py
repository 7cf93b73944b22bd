"""Reading text with a trained model: encoding, per-token scores of whole lines, the next-word
distribution and unbatched generation. `model.evaluate`, `model.generate` and the service's
engine all build on these, so a text gets the same figure everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.batching import IGNORE, make_batches
from model.rnn import RNNLanguageModel
from model.sampling import SamplingParams, StoppingCriteria, choose_next, make_generator
from model.tokenizers import Tokenizer
from model.vocab import SPECIALS, UNK, Vocab


@dataclass
class EncodedText:
    """A text as the model sees it: its tokens, their ids and which were out of vocabulary."""

    tokens: list[str]
    ids: list[int]
    oov: list[bool]


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
    return EncodedText(
        [t for p in parts for t in p.tokens],
        [i for p in parts for i in p.ids],
        [o for p in parts for o in p.oov],
    )


@torch.inference_mode()
def score_lines(
    model: RNNLanguageModel,
    lines: Sequence[Sequence[int]],
    eos_id: int,
    batch_size: int = 64,
    bptt: int = 256,
) -> list[torch.Tensor]:
    """Log-probability of every target of every line (its tokens, then <eos>), each line read
    from the start state, in the order given. Independent of batch_size by construction."""
    model.eval()
    device = model.device
    scores: list[torch.Tensor] = [torch.empty(0)] * len(lines)
    for batch in make_batches(lines, eos_id, batch_size):
        state = None
        pieces = []
        for inputs, targets in batch.windows(bptt):
            features, state = model(inputs.to(device), state)
            window_scores = torch.full(targets.shape, float("nan"))
            window_scores[targets != IGNORE] = (
                model.target_log_probs(features, targets.to(device)).float().cpu()
            )
            pieces.append(window_scores)
        row_scores = torch.cat(pieces, dim=1)  # (B, T), NaN on padding
        for row, line_index in enumerate(batch.rows):
            scores[line_index] = row_scores[row, : len(lines[line_index]) + 1].clone()
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


@dataclass
class Generation:
    """What one generation produced and why it stopped."""

    token_ids: list[int]
    tokens: list[str]
    logprobs: list[float]
    text: str
    finish_reason: str


@torch.inference_mode()
def generate(
    model: RNNLanguageModel,
    tokenizer: Tokenizer,
    vocab: Vocab,
    prompt: str,
    params: SamplingParams,
    max_new_tokens: int,
    seed: int,
    stop: Sequence[str] = (),
) -> Generation:
    """Continue a prompt one token at a time, carrying the state: a token's cost does not grow
    with the length before it. <unk> is never generated; <eos> ends the text."""
    prompt_ids = encode_text(tokenizer, vocab, prompt).ids
    log_probs, state = read_prompt(model, prompt_ids, vocab.eos_id)
    generator = make_generator(seed)
    criteria = StoppingCriteria(max_new_tokens, vocab.eos_id, stop)
    ids: list[int] = []
    logprobs: list[float] = []
    device = model.device
    while True:
        chosen, logprob = choose_next(
            log_probs[None].cpu(), [params], [generator], [prompt_ids + ids], [vocab.unk_id]
        )
        token_id = int(chosen[0])
        text = (
            tokenizer.detokenize(vocab.decode(ids + [token_id])) if token_id != vocab.eos_id else ""
        )
        reason = criteria.check(token_id, text)
        if token_id != vocab.eos_id:
            ids.append(token_id)
            logprobs.append(float(logprob[0]))
        if reason is not None:
            tokens = vocab.decode(ids)
            return Generation(ids, tokens, logprobs, tokenizer.detokenize(tokens), reason)
        features, state = model(torch.tensor([[token_id]], device=device), state)
        log_probs = model.log_probs(features[0, -1:])[0]
