"""Handing freed memory back to the operating system between differently shaped batches, and
bounding what the kernels keep per shape.

Training and scoring read batches whose shapes all differ (lines grouped by length, the last
window of each shorter). glibc serves most of their buffers from its heaps and keeps what they
free for reuse; the pieces rarely fit the next shapes, so the heaps creep up batch after batch and
a long split costs more resident memory than a short one (docs/corpus-scale.md). Fixing glibc's
mmap threshold instead stops the creep, but every step then page-faults its buffers afresh: 24%
fewer training tokens per second on a 2-core AMD EPYC. `malloc_trim` after each batch returns
the free pages for the price of a heap walk. Where the C library is not glibc it does nothing.

The LSTM's CPU kernels are oneDNN's, which keeps one compiled kernel per shape of call, up to
1,024 by default, about 0.2 MB each: a long split read in batches of every length from 1 to 256
kept every shape, so reading 100 times the text cost more memory than reading it once.
`bound_kernel_cache` keeps the most recent KERNEL_CACHE_ENTRIES instead; scoring reads its
batches in order of length, so each shape's kernel is still compiled once."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

KERNEL_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"  # oneDNN's own setting
KERNEL_CACHE_ENTRIES = 128


@cache
def _malloc_trim():  # type: ignore[no-untyped-def]
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return getattr(library, "malloc_trim", None)


def release_free_memory() -> bool:
    """Return the C heap's free pages to the operating system; whether any were returned (always
    False where the C library cannot)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def bound_kernel_cache(entries: int = KERNEL_CACHE_ENTRIES) -> None:
    """Keep at most `entries` compiled oneDNN kernels, unless the environment already sets
    oneDNN's own limit (the user's choice wins). oneDNN reads the limit when it compiles its
    first kernel, so this runs as the model package is imported (model/__init__.py)."""
    os.environ.setdefault(KERNEL_CACHE_VARIABLE, str(entries))
