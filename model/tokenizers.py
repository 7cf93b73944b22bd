"""Tokenizers (jieba for Chinese, whitespace for pre-tokenized text, a regex English one), the
spec that a checkpoint stores so the service tokenizes exactly as training did, and the encoding
of a text into vocabulary ids (one line, several lines as one document, or with the special
tokens written in it) that every reader of text shares."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from model.vocab import SPECIALS, UNK, Vocab

TOKENIZER_NAMES = ("jieba", "rjieba", "whitespace", "english")


@dataclass(frozen=True)
class TokenizerSpec:
    """Everything needed to rebuild a tokenizer: saved in config.json of every checkpoint."""

    name: str = "jieba"
    nfkc: bool = True
    lowercase: bool = False
    hmm: bool = True
    user_dict: str | None = None  # path of a jieba user dictionary, or None

    def to_dict(self) -> dict:
        """Plain-JSON form of the spec."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerSpec:
        """Rebuild a spec from its JSON form; unknown keys are an error, not silently dropped."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown tokenizer settings {sorted(unknown)}")
        spec = cls(**data)
        if spec.name not in TOKENIZER_NAMES:
            raise ValueError(f"unknown tokenizer {spec.name!r}; choose one of {TOKENIZER_NAMES}")
        return spec


class Tokenizer(Protocol):
    """Turns text into word tokens and word tokens back into readable text."""

    spec: TokenizerSpec

    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: list[str]) -> str: ...


def _is_cjk(char: str) -> bool:
    """True for Han characters, kana, hangul and CJK/full-width punctuation (no spaces around)."""
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFE30 <= code <= 0xFE4F
        or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FA1F
        or char in "—…‘’“”"
    )


_NO_SPACE_BEFORE = set(".,;:!?%)]}'\"") | {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"}
_NO_SPACE_AFTER = set("([{$#")


def join_tokens(tokens: list[str]) -> str:
    """Readable text from tokens: Chinese joined without spaces, English with single spaces and
    none before closing punctuation or after opening brackets."""
    pieces: list[str] = []
    previous = ""
    for token in tokens:
        if not token:
            continue
        needs_space = (
            bool(previous)
            and not _is_cjk(previous[-1])
            and not _is_cjk(token[0])
            and token not in _NO_SPACE_BEFORE
            and previous not in _NO_SPACE_AFTER
        )
        pieces.append(" " + token if needs_space else token)
        previous = token
    return "".join(pieces)


class _BaseTokenizer:
    def __init__(self, spec: TokenizerSpec):
        self.spec = spec

    def normalize(self, text: str) -> str:
        """NFKC (full-width digits and letters to ASCII) and optional lowercasing."""
        if self.spec.nfkc:
            text = unicodedata.normalize("NFKC", text)
        return text.lower() if self.spec.lowercase else text

    def detokenize(self, tokens: list[str]) -> str:
        """Readable text from tokens (see join_tokens)."""
        return join_tokens(tokens)


class WhitespaceTokenizer(_BaseTokenizer):
    """For pre-tokenized corpora such as WikiText: tokens are the whitespace-separated fields."""

    def tokenize(self, text: str) -> list[str]:
        """Split normalized text on whitespace."""
        return self.normalize(text).split()


_ENGLISH_WORD = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m)\b|\w+(?:[-.]\w+)*(?=n't)|\w+(?:[-.]\w+)*|[^\w\s]",
    re.IGNORECASE,
)


class EnglishTokenizer(_BaseTokenizer):
    """A regex word tokenizer: splits punctuation and clitics ("n't", "'s") off words."""

    def tokenize(self, text: str) -> list[str]:
        """Words, numbers, clitics and single punctuation marks of normalized text."""
        return _ENGLISH_WORD.findall(self.normalize(text))


class JiebaTokenizer(_BaseTokenizer):
    """Chinese word segmentation with jieba (default mode); its own instance so that a user
    dictionary of one checkpoint never leaks into another."""

    def __init__(self, spec: TokenizerSpec):
        super().__init__(spec)
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        if spec.user_dict:
            path = Path(spec.user_dict)
            if not path.is_file():
                raise FileNotFoundError(f"jieba user dictionary {path} does not exist")
            self._jieba.load_userdict(str(path))

    def tokenize(self, text: str) -> list[str]:
        """jieba tokens of normalized text, whitespace-only tokens dropped."""
        return [w for w in self._jieba.lcut(self.normalize(text), HMM=self.spec.hmm) if w.strip()]


class RustJiebaTokenizer(_BaseTokenizer):
    """jieba's segmentation by rjieba (jieba-rs, a Rust port): about 12x jieba's speed on one
    core, the same tokens on 99.3% of peoples-daily's lines (it keeps mixed digits and letters
    such as `1.3nm` together). Opt-in (--tokenizer rjieba): the benchmark stays jieba's."""

    def __init__(self, spec: TokenizerSpec):
        super().__init__(spec)
        if spec.user_dict:
            raise ValueError("rjieba takes no user dictionary: use --tokenizer jieba with one")
        import rjieba

        self._cut = rjieba.cut

    def tokenize(self, text: str) -> list[str]:
        """rjieba tokens of normalized text, whitespace-only tokens dropped."""
        return [w for w in self._cut(self.normalize(text), hmm=self.spec.hmm) if w.strip()]


def build_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """The tokenizer a spec describes."""
    classes: dict[str, type] = {
        "jieba": JiebaTokenizer,
        "rjieba": RustJiebaTokenizer,
        "whitespace": WhitespaceTokenizer,
        "english": EnglishTokenizer,
    }
    if spec.name not in classes:
        raise ValueError(f"unknown tokenizer {spec.name!r}; choose one of {TOKENIZER_NAMES}")
    tokenizer: Tokenizer = classes[spec.name](spec)
    return tokenizer


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


class TextEncoder:
    """A checkpoint's way between text and ids, the one every caller of the service and of
    `python -m model.generate` goes through, so that the same text is the same ids everywhere.
    For a backward model (direction "backward") a text's tokens come right to left, as it
    reads them."""

    def __init__(self, tokenizer: Tokenizer, vocab: Vocab, direction: str = "forward"):
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.direction = direction

    def encode(self, text: str) -> EncodedText:
        """A text as the model reads it: several lines become one document (encode_document)."""
        return self._oriented(encode_document(encode_text, self.tokenizer, self.vocab, text))

    def encode_with_specials(self, text: str) -> EncodedText:
        """encode(), with "<eos>" and "<unk>" written in the text read as those tokens."""
        return self._oriented(
            encode_document(encode_text_with_specials, self.tokenizer, self.vocab, text)
        )

    def _oriented(self, text: EncodedText) -> EncodedText:
        """The text in its model's reading order: a document reversed whole is its lines in
        reverse order, each reversed (the <eos> between them stays between them)."""
        if self.direction == "forward":
            return text
        return EncodedText(text.tokens[::-1], text.ids[::-1], text.oov[::-1])

    def from_ids(self, ids: Sequence[int]) -> EncodedText:
        """A text given as token ids; ValueError naming the first id outside the vocabulary."""
        size = len(self.vocab)
        wrong = [i for i in ids if not 0 <= i < size]
        if wrong:
            raise ValueError(f"token id {wrong[0]} is not in the vocabulary (ids 0 to {size - 1})")
        return EncodedText(self.vocab.decode(ids), list(ids), [i == self.vocab.unk_id for i in ids])

    def detokenize(self, ids: Sequence[int]) -> str:
        """Readable text of token ids, special tokens written as "<eos>" and "<unk>"
        (ValueError for an id outside the vocabulary)."""
        return self.tokenizer.detokenize(self.from_ids(ids).tokens)
