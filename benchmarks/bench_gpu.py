"""Section 7: training and prediction on a CUDA device, data and augmentation on the GPU."""
from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import replace

import numpy as np
import torch

from gzcore import evaluate, models, train

from .common import DEFAULT, Context, Row, Skip, prepared_from, timed_steps

TITLE = "GPU"
ABOUT = """\
`train.fit`'s loop on `cuda` (mixed precision as `Setup` picks it): the whole crop set moves to GPU
memory once and the batch augmentation runs there. Three runs: batch 64 (the CPU's batch, the old GPU
default), the GPU default (batch 1024, peak lr x4) and the same with `--compile` (CUDA graphs). Data:
the real crops repeated to the full Kaggle training set's size. Epoch time: median of the epochs after
the first (which pays start-up and compiling), validation left out; utilisation: `nvidia-smi` samples
during those epochs. Prediction: `evaluate.predict` with 8-view TTA over the same crops, an untrained
default model (speed does not depend on the weights), fp32 (TF32 convolutions) and bf16 autocast.
Runs as-is on a CUDA machine: `python -m benchmarks.run --only gpu` (or `benchmarks/gpu_check.sh`)."""

GOAL_SECONDS = 2.0         # one epoch of 61,578 images on one H200
GOAL_PREDICT = 30_000      # images/s with 8-view TTA


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

    def mean(self, start: float, end: float) -> float | str:
        busy = [u for t, u in self.samples if start <= t <= end]
        return statistics.mean(busy) if busy else "no samples"


def epochs(prep: train.Prepared, cfg: train.TrainConfig, n: int, count: int,
           util: Utilisation | None) -> dict:
    """`count` epochs of `fit`'s loop: the batch and lr used, median epoch seconds after the first,
    the first epoch from the call, images/s and mean utilisation over the timed epochs."""
    used = train.with_batch(cfg, torch.device("cuda"))
    per_epoch = n // used.batch_size
    start = time.perf_counter()
    stamps = timed_steps(prep, cfg, count * per_epoch)
    ends = [stamps[e * per_epoch - 1] for e in range(1, count + 1)]
    seconds = float(statistics.median(np.diff(ends)))
    return {"batch": used.batch_size, "lr": used.lr, "seconds": seconds, "first": ends[0] - start,
            "rate": per_epoch * used.batch_size / seconds,
            "util": util.mean(ends[0], ends[-1]) if util else None}


def predict_rate(crops: np.ndarray, precision: str, repeats: int) -> float:
    """Images/s of 8-view TTA prediction with the default model on the GPU (median of `repeats`)."""
    model = models.build(DEFAULT.model).cuda()
    evaluate.predict(model, crops[:8192], DEFAULT.input_size, tta=True, device="cuda", precision=precision)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate.predict(model, crops, DEFAULT.input_size, tta=True, device="cuda", precision=precision)
        rates.append(len(crops) / (time.perf_counter() - start))
    return statistics.median(rates)


def run(ctx: Context) -> list[Row]:
    if not torch.cuda.is_available():
        raise Skip("no CUDA device here (torch.cuda.is_available() is False); CI never runs this part")
    n = ctx.pick(61_578, 4096)
    crops, labels = (np.load(p, mmap_mode="r") for p in ctx.replicated(n))
    prep = prepared_from(crops, labels)
    gpu = torch.cuda.get_device_name()
    count = max(2, ctx.repeats + 1)
    util = Utilisation() if shutil.which("nvidia-smi") else None
    if util:
        util.start()
    torch.cuda.reset_peak_memory_stats()
    try:
        configs = {"batch 64 (the old GPU default)": replace(DEFAULT, device="cuda", batch_size=64),
                   "GPU default": replace(DEFAULT, device="cuda"),
                   "GPU default, --compile": replace(DEFAULT, device="cuda", compile=True)}
        runs = {name: epochs(prep, cfg, n, count, util) for name, cfg in configs.items()}
    finally:
        if util:
            util.stop()
    rows = []
    for name, r in runs.items():
        what = f"{name}: batch {r['batch']}, peak lr {r['lr']:g}"
        rows += [Row(f"training images/s on {gpu}, {what}", r["rate"], "images/s"),
                 Row(f"one epoch of {n:,} images, {name} (median of {count - 1})", r["seconds"], "s",
                     goal=f"< {GOAL_SECONDS:g} s on one H200", met=r["seconds"] < GOAL_SECONDS),
                 Row(f"first epoch from the call, {name} (model, crops to the GPU, kernels, compiling)",
                     r["first"], "s")]
        if r["util"] is not None:
            rows.append(Row(f"GPU utilisation during the timed epochs, {name} (nvidia-smi, mean)",
                            r["util"], "%"))
    rows.append(Row("peak GPU memory allocated by torch (training)",
                    torch.cuda.max_memory_allocated() / 2 ** 30, "GiB"))
    for precision in ("fp32", "bf16"):
        rate = predict_rate(crops, precision, ctx.repeats)
        rows.append(Row(f"prediction with 8-view TTA on {n:,} images, {precision} (batches of 1024 x 8 views)",
                        rate, "images/s", goal=f"≥ {GOAL_PREDICT:,}", met=rate >= GOAL_PREDICT))
    return rows
