"""Freed heap memory goes back to the operating system when asked, and the LSTM's kernels keep a
bounded number of shapes, so scoring and training do not creep up batch after batch
(model/allocator.py)."""

import os
import platform
import subprocess
import sys

import pytest

from model.allocator import KERNEL_CACHE_ENTRIES, KERNEL_CACHE_VARIABLE, release_free_memory


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


# an LSTM read in 300 differently shaped batches, the heap trimmed after each; prints how much
# anonymous memory the reading added
_SHAPES_SCRIPT = """
import torch
import model
from model.allocator import release_free_memory
def anonymous_kib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("RssAnon:"))
torch.set_num_threads(1)
lstm = torch.nn.LSTM(64, 128, batch_first=True).eval()
with torch.inference_mode():
    lstm(torch.randn(8, 1, 64))
    release_free_memory()
    before = anonymous_kib()
    for length in range(2, 302):
        lstm(torch.randn(8, length, 64))
        release_free_memory()
print(anonymous_kib() - before)
"""


def _kib_added_by_300_shapes(environment: dict[str, str]) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _SHAPES_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_kernel_cache_keeps_a_bounded_number_of_shapes():
    bare = {k: v for k, v in os.environ.items() if k != KERNEL_CACHE_VARIABLE}
    unbounded = _kib_added_by_300_shapes({**bare, KERNEL_CACHE_VARIABLE: "1024"})
    bounded = _kib_added_by_300_shapes(bare)  # what importing model sets
    if unbounded < 8 * 1024:
        pytest.skip(f"this torch's LSTM keeps no kernel per shape ({unbounded} KiB for 300)")
    assert bounded < unbounded / 2, (bounded, unbounded)


def test_a_kernel_cache_limit_the_user_set_is_kept():
    script = f"import os, model; print(os.environ[{KERNEL_CACHE_VARIABLE!r}])"
    environment = {**os.environ, KERNEL_CACHE_VARIABLE: "7"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "7"
    bare = {k: v for k, v in os.environ.items() if k != KERNEL_CACHE_VARIABLE}
    result = subprocess.run(
        [sys.executable, "-c", script], env=bare, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(KERNEL_CACHE_ENTRIES)
