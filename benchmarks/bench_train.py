"""Section 2: training throughput of the default configuration against the blog loop."""
from __future__ import annotations

import time

import torch

from gzcore import train

from . import blog
from .common import DEFAULT, Context, Row, compare, images_per_s, interleave, timed_steps

TITLE = "Training throughput"
ABOUT = """\
Steady-state images/s on the training split of the same data. Ours: `train.fit`'s own loop with the
default `gz train` configuration, crops read from the memory-mapped cache, batch augmentation on
tensors, timed between its per-step callbacks after a warm-up, validation left out. Blog: the loop
of `benchmarks/blog.py` (PIL decode + torchvision transforms per item in 2 DataLoader workers, its
CNN, SGD, fp32), timed the same way; the workers' start-up at each epoch is left out, in its favour."""


def _blog_images_per_s(paths, labels, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    model = blog.BlogCNN()
    opt = blog.optimizer(model)
    stamps = []
    for x, y in blog.endless(blog.loader(paths, labels, train=True)):
        blog.train_step(model, opt, x, y)
        stamps.append(time.perf_counter())
        if len(stamps) > warmup + steps:
            return images_per_s(stamps, warmup, len(x))


def run(ctx: Context) -> list[Row]:
    prep = ctx.prepared
    paths = [prep.galaxies.paths[i] for i in prep.train_idx]
    labels = prep.galaxies.labels[prep.train_idx]
    warmup, ours_steps, blog_steps = ctx.pick((5, 60, 20), (2, 4, 3))

    def ours():
        return images_per_s(timed_steps(prep, DEFAULT, warmup + ours_steps + 1), warmup,
                            train.CPU_BATCH)
    runs = interleave({"ours": ours, "blog": lambda: _blog_images_per_s(paths, labels, warmup, blog_steps)},
                      ctx.repeats)
    precision = train.Setup.choose(DEFAULT.device, DEFAULT.precision).precision
    what = (f"training images/s: gz train default ({DEFAULT.model}, {DEFAULT.input_size} px, batch "
            f"{train.CPU_BATCH}, {precision}, {torch.get_num_threads()} threads) vs blog loop")
    return [compare(what, runs["ours"], runs["blog"], "images/s", goal=4)]
