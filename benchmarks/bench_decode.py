"""Section 1: decoding JPEGs into model-sized crops, ours against the blog's per-item pipeline."""
from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np

from gzcore import data

from . import blog
from .common import DEFAULT, Context, Row, compare, interleave

TITLE = "Decode + crop"
ABOUT = """\
Ours: `gzcore.data.load_crops` building the decoded-crop cache of `gz train`'s default
preprocessing (a box around the central galaxy, at least 160 of the 424 px -> 63 px; JPEGs decoded
by libjpeg-turbo through simplejpeg at the smallest DCT scale that keeps the box's pixels, here 1/2;
a process pool) into a fresh cache folder each repeat.
Blog: a DataLoader (batch 64) over a Dataset that opens each JPEG with PIL and applies
CenterCrop(207), Resize(69), ToTensor. Same images, file contents already in the page cache, workers
= processes doing the decoding. Ours is paid once per data set; the blog's every epoch (last row)."""


def run(ctx: Context) -> list[Row]:
    galaxies = data.open_folder(ctx.data, labels=True)
    n = min(len(galaxies), ctx.pick(2000, 128))
    subset = galaxies.subset(np.arange(n))
    for path in subset.paths:  # both sides read from the page cache, neither from disk
        path.read_bytes()
    rows = []
    for workers in (1, 2):
        def ours():
            folder = tempfile.mkdtemp(dir=ctx.scratch)
            start = time.perf_counter()
            data.load_crops(subset, DEFAULT.preprocess, cache_dir=folder, workers=workers)
            seconds = time.perf_counter() - start
            shutil.rmtree(folder)
            return n / seconds

        def reference():
            start = time.perf_counter()
            for _ in blog.loader(subset.paths, subset.labels, train=False, num_workers=workers):
                pass
            return n / (time.perf_counter() - start)
        runs = interleave({"ours": ours, "blog": reference}, ctx.repeats)
        rows.append(compare(f"{n:,} real images, {workers} worker{'s' * (workers > 1)}", runs["ours"],
                            runs["blog"], "images/s", goal=3))
    epochs, total = DEFAULT.epochs, len(galaxies)
    once, per_epoch = total / rows[-1].ours, total / rows[-1].reference
    rows.append(Row(f"decoding for a {epochs}-epoch gz train on {total:,} images (2 workers; derived: "
                    f"ours once, blog every epoch)", once, "s", epochs * per_epoch,
                    epochs * per_epoch / once))
    return rows
