"""Section 1: decoding JPEGs into model-sized crops, ours against the blog's per-item pipeline and
against our own previous box search."""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import simplejpeg
from PIL import Image

from gzcore import data

from . import blog
from .common import DEFAULT, Context, Row, compare, interleave

TITLE = "Decode + crop"
ABOUT = """\
Ours: `gzcore.data.load_crops` building the decoded-crop cache of `gz train`'s default
preprocessing (a box around the central galaxy, at least 160 of the 424 px -> 63 px; JPEGs decoded
by libjpeg-turbo through simplejpeg at the smallest DCT scale that keeps the box's pixels, here 1/2;
a process pool; part files synced to disk, then assembled) into a fresh cache folder each repeat.
Blog: a DataLoader (batch 64) over a Dataset that opens each JPEG with PIL and applies
CenterCrop(207), Resize(69), ToTensor. Same images, file contents already in the page cache, workers
= processes doing the decoding. Ours is paid once per data set; the blog's every epoch (last row).
Box search: `data.decode` against the previous one (issue 16; the same crops, bit for bit), both in
the same process pool, no cache: the galaxy's mask is now grown along whole runs of pixels rather
than a pixel a step, and the image stays one Pillow image from decode to crop."""


def run(ctx: Context) -> list[Row]:
    galaxies = data.open_folder(ctx.data, labels=True)
    n = min(len(galaxies), ctx.pick(2000, 128))
    subset = galaxies.subset(np.arange(n))
    for path in subset.paths:  # both sides read from the page cache, neither from disk
        path.read_bytes()
    rows, boxes = [], []
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

        def pooled(decode):
            return lambda: decoded_per_s(decode, subset.paths, workers)
        runs = interleave({"ours": ours, "blog": reference, "box": pooled(data.decode),
                           "previous box": pooled(previous_decode)}, ctx.repeats)
        rows.append(compare(f"{n:,} real images, {workers} worker{'s' * (workers > 1)}", runs["ours"],
                            runs["blog"], "images/s", goal=3))
        boxes.append(compare(f"box crop alone: `data.decode` vs the previous one, {workers} "
                             f"worker{'s' * (workers > 1)}", runs["box"], runs["previous box"], "images/s"))
    epochs, total = DEFAULT.epochs, len(galaxies)
    once, per_epoch = total / rows[-1].ours, total / rows[-1].reference
    rows.append(Row(f"decoding for a {epochs}-epoch gz train on {total:,} images (2 workers; derived: "
                    f"ours once, blog every epoch)", once, "s", epochs * per_epoch,
                    epochs * per_epoch / once))
    return rows + boxes


def decoded_per_s(decode, paths, workers: int) -> float:
    """Images/s of `decode` with `gz train`'s default preprocessing over `paths`, in jobs of 64 in a
    pool of `workers` processes (the crops come back to this process, as `load_crops`'s do)."""
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        jobs = [(decode, paths[i:i + 64]) for i in range(0, len(paths), 64)]
        for _ in pool.map(_decode_all, jobs):
            pass
    return len(paths) / (time.perf_counter() - start)


def _decode_all(job) -> list[np.ndarray]:
    decode, paths = job
    return [decode(p, DEFAULT.preprocess) for p in paths]


# ---------------------------------------------------------------- the box search before issue 16

def previous_decode(path, pp: data.Preprocess) -> np.ndarray:
    """`data.decode` as it was, for Kaggle's square JPEGs: arrays between the steps, the mask grown
    a pixel a step."""
    side = math.ceil(pp.size * 424 / pp.crop_px)
    pixels = simplejpeg.decode_jpeg(path.read_bytes(), "RGB", min_width=side, min_height=side)
    side = pixels.shape[0]
    lo, hi = _previous_box(pixels, pp.crop_px * side / 424, pp.roi_pad)
    first, last = max(0, math.floor(lo) - 2), min(side, math.ceil(hi) + 2)
    region = Image.fromarray(np.ascontiguousarray(pixels[first:last, first:last]))
    box = (lo - first, lo - first, hi - first, hi - first)
    return np.asarray(region.resize((pp.size, pp.size), Image.BILINEAR, box=box, reducing_gap=None))


def _previous_box(pixels: np.ndarray, min_side: float, pad: float) -> tuple[float, float]:
    side = pixels.shape[0]
    small = np.asarray(Image.fromarray(pixels).convert("L").resize((106, 106), Image.BILINEAR))
    counts, levels = np.bincount(small.ravel(), minlength=256), np.arange(256, dtype=np.float32)
    sky = data._median(levels, counts)
    deviation = np.abs(levels - sky)
    order = np.argsort(deviation, kind="stable")
    sigma = 1.4826 * data._median(deviation[order], counts[order]) + 1.0
    mask, c = small > sky + 4 * sigma, 53
    region = np.zeros_like(mask)
    region[c - 3:c + 4, c - 3:c + 4] = mask[c - 3:c + 4, c - 3:c + 4]
    size = np.count_nonzero(region)
    while True:  # grow by the 4 neighbours until nothing changes
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        grown_size = np.count_nonzero(grown)
        if grown_size == size:
            break
        region, size = grown, grown_size
    half = min_side / 2
    if region.any():
        ys, xs = np.nonzero(region)
        half = max(half, (max(np.abs(xs - c).max(), np.abs(ys - c).max()) + 1) * side / 106 * pad)
    half = min(half, side / 2)
    return side / 2 - half, side / 2 + half
