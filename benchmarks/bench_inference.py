"""Section 4: inference latency and throughput, and `gz predict` end to end."""
from __future__ import annotations

import statistics
import tempfile
import time

from gzcore import checkpoint, evaluate

from .common import Context, Row, median_ms

TITLE = "Inference"
ABOUT = """\
`gzcore.evaluate.predict` on crops from the cache, model in eval mode, without and with 8-view
test-time augmentation (the 8 flips/rotations run as one batch). Single-galaxy latency: one crop,
median of repeated calls. `gz predict` end to end: a fresh process on the unlabelled images writing
the submission CSV (TTA on, its default); cold = an empty cache folder (JPEGs decoded), warm = the
cache it left behind; its rate is measured on the 6,000 images of the real sample, start-up included. No published reference exists for these, so there are no ratios."""


def run(ctx: Context) -> list[Row]:
    model, ckpt = checkpoint.load(ctx.checkpoint)
    size = ckpt["input_size"]
    crops = checkpoint.data_for(ckpt, ctx.unlabelled, labels=False, cache_dir=ctx.cache).crops
    n = len(crops)
    rows = []
    for tta in (False, True):
        label = "8-view TTA" if tta else "no TTA"
        ms = median_ms(lambda: evaluate.predict(model, crops[:1], size, tta=tta), ctx.pick(50, 5))
        rows.append(Row(f"one galaxy, {label} ({ctx.model_note}, {size} px)", ms, "ms",
                        goal="≤ 30 ms" if tta else "", met=ms <= 30 if tta else None))
        rates = []
        for _ in range(ctx.repeats):
            start = time.perf_counter()
            evaluate.predict(model, crops, size, tta=tta)
            rates.append(n / (time.perf_counter() - start))
        rows.append(Row(f"batch throughput on {n:,} galaxies, {label}", statistics.median(rates),
                        "images/s"))
    cold, warm = [], []
    for _ in range(ctx.repeats):
        cache = tempfile.mkdtemp(dir=ctx.scratch)
        args = ("predict", "--data", str(ctx.unlabelled), "--checkpoint", str(ctx.checkpoint),
                "--out", str(ctx.scratch / "submission.csv"))
        cold.append(ctx.gz(*args, cache=cache))
        warm.append(ctx.gz(*args, cache=cache))
    rows.append(Row(f"gz predict on {n:,} unlabelled images, cold cache (process start, decode, TTA)",
                    statistics.median(cold), "s"))
    rows.append(Row(f"gz predict on {n:,} unlabelled images, warm cache", statistics.median(warm), "s"))
    many = len(checkpoint.data_for(ckpt, ctx.data, labels=False, cache_dir=ctx.cache).crops)
    seconds = statistics.median(
        ctx.gz("predict", "--data", str(ctx.data), "--checkpoint", str(ctx.checkpoint),
               "--out", str(ctx.scratch / "all.csv"), cache=tempfile.mkdtemp(dir=ctx.scratch))
        for _ in range(ctx.repeats))
    rows.append(Row(f"gz predict on the {many:,} images of the real sample, cold cache: images/s "
                    f"(process start, decode, TTA, CSV)", many / seconds, "images/s", goal="≥ 150",
                    met=many / seconds >= 150))
    return rows
