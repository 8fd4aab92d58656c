"""Memory probes, each run in a fresh process by the memory section; each prints one JSON line.

    python -m benchmarks.probe_memory cache DATA_DIR CACHE_DIR PREPROCESS_JSON
    python -m benchmarks.probe_memory train CROPS.npy LABELS.npy STEPS

The cache probe imports only `gzcore.data` (no torch), so it measures the cache builder alone.
"""
from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

from gzcore import data


def _status() -> dict[str, int]:
    """RssAnon and VmHWM of this process, in bytes."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def _mapped_rss(path: Path) -> int:
    """Resident bytes of this process's mappings of `path` (the pages of the cache it has read)."""
    total, current = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                current = line.rstrip("\n").endswith(str(path))
            elif current and first == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


class PeakAnon(threading.Thread):
    """Samples this process's anonymous memory every few milliseconds and keeps the peak."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, _status()["RssAnon"])


def cache(data_dir: str, cache_dir: str, preprocess: str) -> dict:
    galaxies = data.open_folder(data_dir, labels=True)
    start = time.perf_counter()
    data.load_crops(galaxies, data.Preprocess(**json.loads(preprocess)), cache_dir=cache_dir, workers=2)
    return {"seconds": time.perf_counter() - start, "n": len(galaxies),
            "main": _status()["VmHWM"],  # not ru_maxrss: that keeps the parent's peak across exec
            "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def train(crops_path: str, labels_path: str, steps: str) -> dict:
    from .common import DEFAULT, prepared_from, timed_steps  # torch, only for this probe
    crops_path = Path(crops_path).resolve()
    crops = np.load(crops_path, mmap_mode="r")
    prep = prepared_from(crops, np.load(labels_path), DEFAULT.val_fraction)
    sampler = PeakAnon()
    sampler.start()
    timed_steps(prep, DEFAULT, int(steps), validate=True)
    sampler.done.set()
    sampler.join()
    return {"anon": sampler.peak, "hwm": _status()["VmHWM"], "mapped": _mapped_rss(crops_path),
            "n": len(crops), "cache_bytes": crops.nbytes}


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    print(json.dumps({"cache": cache, "train": train}[command](*arguments)))
