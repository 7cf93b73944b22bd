"""Freed heap memory goes back to the operating system when asked, so scoring and training do not
creep up batch after batch (model/allocator.py)."""

import platform

import pytest

from model.allocator import release_free_memory


def _anonymous_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_pages_inside_the_heap_are_returned():
    # 2,000 buffers of 64 KiB come from the heap (below glibc's mmap threshold); the last one
    # stays alive, so freeing the others leaves ~125 MiB free below it, which free() keeps
    buffers = [bytearray(64 * 1024) for _ in range(2000)]
    pinned = buffers.pop()
    buffers.clear()
    before = _anonymous_kib()
    assert release_free_memory()
    after = _anonymous_kib()
    assert before - after > 64 * 1024, (before, after)
    assert len(pinned) == 64 * 1024
