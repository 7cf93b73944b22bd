"""Handing freed memory back to the operating system between differently shaped batches.

Training and scoring read batches whose shapes all differ (lines grouped by length, the last
window of each shorter). glibc serves most of their buffers from its heaps and keeps what they
free for reuse; the pieces rarely fit the next shapes, so the heaps creep up batch after batch and
a long split costs more resident memory than a short one (docs/corpus-scale.md). Fixing glibc's
mmap threshold instead stops the creep, but every step then page-faults its buffers afresh: 24%
fewer training tokens per second on a 2-core AMD EPYC. `malloc_trim` after each batch returns
the free pages for the price of a heap walk. Where the C library is not glibc it does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


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
