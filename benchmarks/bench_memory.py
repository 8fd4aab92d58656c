"""Section 6: peak memory of building the cache and of training, and what larger data sets need."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import numpy as np

from . import ROOT
from .common import DEFAULT, Context, Row

TITLE = "Memory"
ABOUT = """\
Peak resident memory, each figure from a fresh process (`benchmarks/probe_memory.py`). Cache
building: `load_crops` with 2 workers, without torch loaded: the main process's VmHWM (which counts
the pages of the cache it writes) and the largest worker's `getrusage` peak. Training: `train.fit`'s
loop for a fixed number of steps plus its validation pass (10 % split): the peak of anonymous memory
(heap, torch, model, batches; sampled from /proc/self/status), apart from the resident pages of the
memory-mapped crop cache (file-backed, reclaimed by the kernel under pressure). Run on the real crops
and on a cache 10x larger (the real crops repeated): the crops are read with
`np.load(mmap_mode='r')` one batch at a time, and the validation pass reads the held-out rows the
same way (`evaluate.predict(..., index=val_idx)`, no copy), so anonymous memory should stay flat.
Disk needed: one uint8 crop per galaxy."""

MB = 1024 * 1024


def _probe(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.probe_memory", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"memory probe {args[0]} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def run(ctx: Context) -> list[Row]:
    prep = ctx.prepared
    n, big = len(prep.crops), ctx.pick(61_578, 10 * len(prep.crops))
    built = _probe("cache", str(ctx.data), str(ctx.scratch / "memcache"),
                   json.dumps(asdict(DEFAULT.preprocess)))
    labels = ctx.scratch / "labels-real.npy"
    np.save(labels, prep.galaxies.labels)
    steps = str(ctx.pick(100, 5))
    small = _probe("train", prep.crops.filename, str(labels), steps)
    large = _probe("train", *map(str, ctx.replicated(big)), steps)
    per_crop = int(np.prod(prep.crops.shape[1:]))
    growth = large["anon"] / small["anon"]
    rows = [
        Row(f"building the cache of {n:,} galaxies: main process peak RSS", built["main"] / MB, "MB"),
        Row("building the cache: largest worker's peak RSS (2 workers)", built["worker"] / MB, "MB"),
    ]
    for label, m in ((f"{n:,} real galaxies", small), (f"{big:,} galaxies (real crops repeated)", large)):
        rows += [
            Row(f"training {steps} steps + validation on {label}: peak anonymous memory",
                m["anon"] / MB, "MB"),
            Row(f"… crop-cache pages resident at the end (cache file {m['cache_bytes'] / MB:,.0f} MB)",
                m["mapped"] / MB, "MB"),
            Row("… peak RSS of the process (VmHWM: anonymous + libraries + crop pages)",
                m["hwm"] / MB, "MB"),
        ]
    rows += [
        Row(f"anonymous memory, {big:,} vs {n:,} galaxies", large["anon"] / MB, "MB", small["anon"] / MB,
            growth, "growth ≤ 1.25x", growth <= 1.25),
        Row(f"bytes per cached crop ({'x'.join(map(str, prep.crops.shape[1:]))} uint8)", per_crop, "B"),
        Row("crop cache on disk for 61,578 galaxies (the full Kaggle training set)",
            61_578 * per_crop / 1e9, "GB"),
        Row("crop cache on disk for 1,000,000 galaxies", 1e6 * per_crop / 1e9, "GB"),
    ]
    return rows

