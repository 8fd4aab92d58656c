"""Section 7: the default training on a CUDA device, data and augmentation on the GPU."""
from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import replace

import numpy as np
import torch

from .common import DEFAULT, Context, Row, Skip, prepared_from, timed_steps

TITLE = "GPU"
ABOUT = """\
`train.fit`'s loop with the default configuration on `cuda` (mixed precision as `Setup` picks it):
the whole crop set moves to GPU memory once and the batch augmentation runs there. Data: the real
crops repeated to the full Kaggle training set's size. Epoch time: median of the epochs after the
first (which pays start-up), validation left out; utilisation: `nvidia-smi` samples during those
epochs. Runs as-is on a CUDA machine: `python -m benchmarks.run --only gpu`."""

GOAL_SECONDS = 10.0  # one epoch of 61,578 images on one H100


class Utilisation(threading.Thread):
    """`nvidia-smi` sampled every 100 ms: (time, GPU utilisation %) pairs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits", "-lms", "100"],
                                     stdout=subprocess.PIPE, text=True)

    def run(self):
        for line in self.proc.stdout:
            first = line.split(",")[0].strip()
            if first.isdigit():
                self.samples.append((time.perf_counter(), float(first)))

    def stop(self):
        self.proc.terminate()
        self.join()


def run(ctx: Context) -> list[Row]:
    if not torch.cuda.is_available():
        raise Skip("no CUDA device here (torch.cuda.is_available() is False); CI never runs this part")
    n = ctx.pick(61_578, 4096)
    prep = prepared_from(*(np.load(p, mmap_mode="r") for p in ctx.replicated(n)))
    cfg = replace(DEFAULT, device="cuda")
    per_epoch, epochs = n // cfg.batch_size, ctx.pick(4, 2)
    util = Utilisation() if shutil.which("nvidia-smi") else None
    if util:
        util.start()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    stamps = timed_steps(prep, cfg, epochs * per_epoch)
    if util:
        util.stop()
    ends = [stamps[e * per_epoch - 1] for e in range(1, epochs + 1)]
    seconds = float(statistics.median(np.diff(ends)))
    rows = [
        Row(f"training images/s on {torch.cuda.get_device_name()} (default config, batch {cfg.batch_size})",
            per_epoch * cfg.batch_size / seconds, "images/s"),
        Row(f"one epoch of {n:,} images (median of {epochs - 1})", seconds, "s",
            goal=f"< {GOAL_SECONDS:g} s on one H100", met=seconds < GOAL_SECONDS),
        Row("first epoch, from the call (model, crops to the GPU, kernel selection)", ends[0] - start, "s"),
        Row("peak GPU memory allocated by torch", torch.cuda.max_memory_allocated() / 2 ** 30, "GiB"),
    ]
    if util:
        busy = [u for t, u in util.samples if ends[0] <= t <= ends[-1]]
        rows.append(Row("GPU utilisation during the timed epochs (nvidia-smi, mean)",
                        statistics.mean(busy) if busy else "no samples", "%"))
    return rows
