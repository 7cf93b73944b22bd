"""Tokenizers (jieba for Chinese, whitespace for pre-tokenized text, a regex English one) and the
spec that a checkpoint stores so the service tokenizes exactly as training did."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

TOKENIZER_NAMES = ("jieba", "whitespace", "english")


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


def build_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """The tokenizer a spec describes."""
    classes: dict[str, type] = {
        "jieba": JiebaTokenizer,
        "whitespace": WhitespaceTokenizer,
        "english": EnglishTokenizer,
    }
    if spec.name not in classes:
        raise ValueError(f"unknown tokenizer {spec.name!r}; choose one of {TOKENIZER_NAMES}")
    tokenizer: Tokenizer = classes[spec.name](spec)
    return tokenizer
