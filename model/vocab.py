"""Vocabulary: token <-> id, frequency-sorted (most frequent first, as adaptive softmax needs),
with the specials <unk> and <eos> placed by their own counts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

UNK = "<unk>"
EOS = "<eos>"
SPECIALS = (UNK, EOS)


class Vocab:
    """Maps tokens to ids and back; unknown tokens map to <unk>."""

    def __init__(self, itos: Sequence[str], counts: Sequence[int] | None = None):
        if len(set(itos)) != len(itos):
            raise ValueError("vocabulary has duplicate tokens")
        missing = [s for s in SPECIALS if s not in itos]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        self.itos = list(itos)
        self.counts = list(counts) if counts is not None else [0] * len(self.itos)
        self.stoi = {token: index for index, token in enumerate(self.itos)}
        self.unk_id = self.stoi[UNK]
        self.eos_id = self.stoi[EOS]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of tokens, <unk> for any token outside the vocabulary."""
        stoi, unk = self.stoi, self.unk_id
        return [stoi.get(token, unk) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ids."""
        return [self.itos[i] for i in ids]

    @classmethod
    def build(
        cls, lines: Iterable[Sequence[str]], min_freq: int = 2, max_size: int | None = None
    ) -> Vocab:
        """Vocabulary of the tokens of `lines` under the rule of `from_counts`."""
        counter: Counter[str] = Counter()
        num_lines = 0
        for line in lines:
            counter.update(line)
            num_lines += 1
        return cls.from_counts(counter.items(), num_lines, min_freq, max_size)

    @classmethod
    def from_counts(
        cls,
        counts: Iterable[tuple[str, int]],
        num_lines: int,
        min_freq: int = 2,
        max_size: int | None = None,
    ) -> Vocab:
        """Vocabulary of the tokens counted at least min_freq times (the max_size most frequent
        if given), plus <unk> (counting the tokens it replaces) and <eos> (one per line): the
        one vocabulary rule, whether counts come from lines or from a prepared corpus."""
        counted = [(t, c) for t, c in counts if t not in SPECIALS and c > 0]
        kept = sorted(((t, c) for t, c in counted if c >= min_freq), key=lambda tc: (-tc[1], tc[0]))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        kept_total = sum(c for _, c in kept)
        entries = kept + [(UNK, sum(c for _, c in counted) - kept_total), (EOS, num_lines)]
        entries.sort(key=lambda tc: -tc[1])  # stable: ties keep the order above
        return cls([t for t, _ in entries], [c for _, c in entries])

    def to_json(self) -> dict:
        """JSON form: tokens in id order with their training counts."""
        return {"itos": self.itos, "counts": self.counts}

    @classmethod
    def from_json(cls, data: dict) -> Vocab:
        """Vocabulary from its JSON form."""
        return cls(data["itos"], data.get("counts"))

    def save(self, path: Path) -> None:
        """Write the vocabulary as JSON."""
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocab:
        """Read a vocabulary written by save()."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
