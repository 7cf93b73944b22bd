"""Which way a model reads a text: left to right ("forward", the usual) or right to left
("backward", a model that predicts each word from the words after it, for fill-in-the-blank).
A checkpoint's config.json names its direction; training, evaluation and the service put a
text's ids in that order here (the service's TextEncoder for texts it encodes)."""

from __future__ import annotations

from collections.abc import Sequence

DIRECTIONS = ("forward", "backward")  # left to right, or right to left; config.json names one


def in_reading_order(lines: Sequence[Sequence[int]], direction: str) -> list[list[int]]:
    """Id lines in the order a model of that direction reads them: as given, or (backward)
    the whole text right to left, the last line first and each line reversed. A backward
    model then predicts each word from the words after it, with the same targets per line
    (its tokens and one closing <eos>), so both directions' perplexities compare."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose one of {DIRECTIONS}")
    if direction == "forward":
        return [list(line) for line in lines]
    return [list(reversed(line)) for line in reversed(lines)]
