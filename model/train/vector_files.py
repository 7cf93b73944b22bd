"""Pretrained word vectors (word2vec binary or text, GloVe text) to initialise the embedding layer.

The formats, as `load_pretrained` tells them apart:

    word2vec binary   "count width\\n", then per word: UTF-8 bytes, b" ", width float32
                      (little-endian), optionally b"\\n"
    word2vec text     "count width\\n", then per word a line "word v1 v2 ... vwidth"
    GloVe text        the same lines without the header
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from model.train.extras import MissingTrainingPackage, missing_training_package
from model.vocab import Vocab

try:
    import numpy as np
except ModuleNotFoundError:  # as in the API image, which leaves the `train` extra out
    raise MissingTrainingPackage(
        missing_training_package("numpy", "pretrained embeddings")
    ) from None

# a binary record's word longer than this means the file is not what its header says
_MAX_WORD_BYTES = 4096


def load_pretrained(path: Path | str, vocab: Vocab, embedding: torch.Tensor) -> float:
    """Copy the vectors of vocabulary words found in a word2vec (binary or text) or GloVe file
    into `embedding` (V, E) in place; returns the coverage (share of the vocabulary found).

    The format is read from the content, not the file name: a first line of two integers is a
    word2vec header ("count width"); with a header, the file is text when the next line is valid
    UTF-8 made of a word and numbers (the float32 bytes of a binary record practically never
    are), else binary. A file without a header is text (GloVe). Vectors of another width than
    the model's embedding_size, and a binary file that ends early, are errors that say so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained embeddings file {path} does not exist")
    width = embedding.size(1)
    header, binary = _sniff(path)
    if header is not None and header[1] != width:
        raise ValueError(_width_message(path, f"its header gives {header[1]}", width))
    if binary:
        assert header is not None  # _sniff only calls a file with a header binary
        vectors = _binary_vectors(path, header[0], width, vocab)
    else:
        vectors = _text_vectors(path, header is not None, width, vocab)
    return copy_vectors(vectors, len(vocab), embedding)


def copy_vectors(
    vectors: Iterable[tuple[int, np.ndarray]], vocab_size: int, embedding: torch.Tensor
) -> float:
    """Write (vocabulary index, vector) pairs into the rows of `embedding` (V, E) in place;
    returns the coverage, the share of the vocabulary that got a vector."""
    rows = dict(vectors)  # vocabulary index -> (E,) float32; of a word listed twice, the last
    if rows:
        indices = torch.tensor(list(rows), dtype=torch.long)
        values = np.stack(list(rows.values())).astype(np.float32)  # (found, E), native order
        embedding[indices] = torch.from_numpy(values).to(embedding.device, embedding.dtype)
    return len(rows) / vocab_size


def _width_message(path: Path, what: str, width: int) -> str:
    return (
        f"{path} holds vectors of the wrong width ({what}); the model's embedding_size is "
        f"{width}: train with --embedding-size set to the vectors' width, or make {width}-wide "
        f"vectors (python -m model.train.word2vec --embedding-size {width})"
    )


def _parse_header(line: bytes) -> tuple[int, int] | None:
    """(count, width) of a word2vec header line, None when the line is not one."""
    fields = line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


def _is_text_record(line: bytes) -> bool:
    """Whether a line reads as "word v1 v2 ..." in UTF-8."""
    try:
        fields = line.decode("utf-8").split()
        [float(value) for value in fields[1:]]
    except (UnicodeDecodeError, ValueError):
        return False
    return len(fields) >= 2


def _sniff(path: Path) -> tuple[tuple[int, int] | None, bool]:
    """(header or None, whether the file is binary)."""
    with path.open("rb") as handle:
        header = _parse_header(handle.readline())
        if header is None:
            return None, False
        return header, not _is_text_record(handle.readline())


def _text_vectors(
    path: Path, has_header: bool, width: int, vocab: Vocab
) -> Iterator[tuple[int, np.ndarray]]:
    """(vocabulary index, vector) of the vocabulary words in a text file."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if (number == 1 and has_header) or not line.strip():
                continue
            fields = line.rstrip().split(" ")
            word, values = fields[0], fields[1:]
            if len(values) != width:
                raise ValueError(_width_message(path, f"line {number} has {len(values)}", width))
            index = vocab.stoi.get(word)
            if index is None:
                continue
            try:
                yield index, np.array([float(value) for value in values], dtype=np.float32)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}; not a word2vec/GloVe line") from None


def _binary_vectors(
    path: Path, count: int, width: int, vocab: Vocab
) -> Iterator[tuple[int, np.ndarray]]:
    """(vocabulary index, vector) of the vocabulary words in a word2vec binary file."""
    vector_bytes = 4 * width  # float32
    with path.open("rb") as handle:
        handle.readline()  # the header
        for number in range(1, count + 1):
            raw_word = _read_word(handle, path, number)
            data = handle.read(vector_bytes)
            if raw_word is None or len(data) < vector_bytes:
                raise ValueError(
                    f"{path} is truncated: it ends at word {number} of the {count} its header "
                    "announces; copy or write the file again"
                )
            index = vocab.stoi.get(raw_word.decode("utf-8", errors="replace"))
            if index is not None:
                yield index, np.frombuffer(data, dtype="<f4")


def _read_word(handle: io.BufferedReader, path: Path, number: int) -> bytes | None:
    """The bytes up to the next space (the space consumed), without the newline that may end
    the previous record; None at the end of the file."""
    chunks: list[bytes] = []
    size = 0
    while True:
        buffered = handle.peek(1)  # what is buffered, at least 1 byte before the end
        if not buffered:
            return None
        end = buffered.find(b" ")
        if end >= 0:
            chunks.append(handle.read(end + 1)[:-1])
            return b"".join(chunks).lstrip(b"\n")
        chunks.append(handle.read(len(buffered)))
        size += len(buffered)
        if size > _MAX_WORD_BYTES:
            raise ValueError(
                f"{path}: word {number} is over {_MAX_WORD_BYTES} bytes long, so the file is "
                "not the word2vec binary its header says (wrong width in the header?)"
            )
