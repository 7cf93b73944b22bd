"""A command's wall time and the peak memory of its whole process tree, sampled from /proc.

A stage such as `python -m model.train.prepare --workers 2` is a parent and its worker
processes, so its memory is the sum over the tree, read every ~0.15 s from each process's
/proc/PID/status:

- VmRSS, resident memory: anonymous pages plus the file pages mapped in. A memory-mapped store
  shows up here as it is read, though those pages are file cache the kernel can drop and read
  again; and a page shared by several processes counts once per process.
- RssAnon, anonymous memory: heap, stacks and private copies, which only exit or swap give
  back. This is the memory a corpus must not make grow.

A page shared by several processes (a forked worker's copy-on-write pages of its parent, a
store page two workers read) counts once in each, so a sum can overstate the memory in use; a
peak shorter than the sampling interval can be missed.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.15
FIELDS = ("VmRSS", "RssAnon")  # as /proc/PID/status names them, in KiB


@dataclass
class Measured:
    """One command's run: exit status, wall seconds, peak summed memory in KiB (each field's own
    peak, which need not fall at the same sample), and the samples taken."""

    returncode: int
    seconds: float
    peak_kib: dict[str, int]
    samples: int


class ProcessTree:
    """The processes descended from one root, found by scanning /proc. A process once seen
    outside the tree is not read again (it cannot move into it; pids are not reused within a
    stage's minutes), so after the first scan each costs little more than listing /proc, and
    the sampler takes little CPU from the stage it measures."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.outside: set[int] = set()

    def parents(self) -> dict[int, int]:
        """pid → parent pid of every process in /proc not yet known to be outside the tree."""
        found = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) in self.outside:
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        return found

    def pids(self) -> list[int]:
        """The root and every process descended from it, as /proc shows them now."""
        parents = self.parents()
        children: dict[int, list[int]] = {}
        for pid, parent in parents.items():
            children.setdefault(parent, []).append(pid)
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        self.outside.update(parents.keys() - set(tree))
        return tree


def memory_kib(pid: int) -> dict[str, int]:
    """FIELDS of one process in KiB (zeros for a process that ended or a zombie)."""
    values = dict.fromkeys(FIELDS, 0)
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        if name in values:
            values[name] = int(rest.split()[0])
    return values


def tree_memory_kib(tree: ProcessTree) -> dict[str, int]:
    """FIELDS summed over the tree's processes, in KiB."""
    total = dict.fromkeys(FIELDS, 0)
    for pid in tree.pids():
        for name, value in memory_kib(pid).items():
            total[name] += value
    return total


def run_sampled(
    command: Sequence[str],
    stdout: Path,
    stderr: Path,
    cwd: Path | None = None,
    interval: float = SAMPLE_SECONDS,
) -> Measured:
    """Run command to its end with its output in the files stdout and stderr, sampling its
    process tree's memory every interval seconds; what it used and how long it took."""
    peak = dict.fromkeys(FIELDS, 0)
    samples = 0
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=out, stderr=err, cwd=cwd)
        tree = ProcessTree(process.pid)
        while True:
            for name, value in tree_memory_kib(tree).items():
                peak[name] = max(peak[name], value)
            samples += 1
            try:  # returns as soon as the command ends, so its time is not rounded up
                process.wait(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                continue
        seconds = time.perf_counter() - started
    return Measured(process.returncode, seconds, peak, samples)
