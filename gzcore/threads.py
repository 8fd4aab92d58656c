"""How many CPU threads to compute with when the machine is shared: the cores other processes leave
free, measured as the work goes.

Torch's thread pool assumes every core is free. When another process keeps one core of two busy,
two threads wait on each other at every operation (one of them is always descheduled), and a
training run went 3.2x slower instead of the 1.5x a fair share costs (`docs/BENCHMARKS.md`,
section 9; one thread: 1.4x). `FreeCores` reads the machine's and this process's CPU time
(`/proc/stat`, `os.times`) between two calls and sets torch's thread count to the cores
the others did not use. Pinned thread counts (`--threads`) are left alone; on systems without
`/proc` it does nothing.
"""
from __future__ import annotations

import os

import torch

CLOCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, or None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / CLOCK, sum(fields) / CLOCK


def _own_busy() -> float:
    """CPU seconds this process has used (all its threads)."""
    times = os.times()
    return times.user + times.system


class FreeCores:
    """Call `update()` now and then (each epoch, each shard): from the second call on, torch's thread
    count follows the cores other processes left free since the previous call (at least 1)."""

    def __init__(self, cores: int | None = None):
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.cores = cores or usable
        self.last = None

    def update(self) -> int:
        """Set and return torch's thread count for the work until the next call."""
        machine, own = _machine_busy(), _own_busy()
        if machine is not None and self.last is not None:
            (busy, total), (busy0, total0), own0 = machine, self.last[0], self.last[1]
            span = (total - total0) / max(1, os.cpu_count() or 1)  # wall seconds, from the machine's clock
            if span > 0.05:
                others = max(0.0, (busy - busy0) - (own - own0)) / span  # cores busy with other work
                torch.set_num_threads(max(1, min(self.cores, round(self.cores - others))))
        self.last = (machine, own)
        return torch.get_num_threads()
