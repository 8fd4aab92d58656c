"""Section 5: latency of each Captum explanation method for one galaxy, and whether its maps can be
trusted (gzcore.explain_checks) over held-out galaxies."""
from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from gzcore import checkpoint

from .common import Context, Row, Skip, median_ms

TITLE = "Explanations"
ABOUT = """\
`gzcore.explain.explain(model, image, question=1, method=M)` on one galaxy at the model's input
size, each method with its default options (`explain.METHODS`), median wall time of repeated calls.
The methods that push many images through the model (smoothgrad, integrated gradients, occlusion)
cost that many forward/backward passes.

Trust (`gzcore.explain_checks.survey`, the checks `gz explain-check` runs): the shipped model's first
100 held-out galaxies of the labelled folder by GalaxyID (its own validation split; never trained
on), each method explaining the model's top answer to Q1 (conditional). Removal: the share of
galaxies on which the map's order beats the mean of 3 random orders (shared by every method: a galaxy's first method, saliency, also draws them, in its seconds), for deletion and insertion
(blurred copy, sigma 5/224 of the side; 0-100 % in 20 steps) and ROAD (noisy linear imputation,
0-90 %; most- and least-relevant first), at pixel and at 4x4-patch level. Randomisation: the mean
over the galaxies of the Spearman correlation of the map with the original's once every layer is
re-initialised (as drawn: signed for signed methods; and of |map|), and SSIM of |map|. Passes: the
share of galaxies on which the map beats random in all eight removal tests and its correlation as
drawn is below 0.2 in size. Positive control: the shipped model on galaxies of synthetic universe
2026 with a strong bar or arms (face-on within 50 degrees) that it finds (answer >= 0.5); the
share of the map's positive attribution inside the feature's mask (the fewest pixels holding 80 %
of the feature's rendered light) against a random map's share (the mask's area), and the share of
galaxies on which it is the larger (passing: >= 80 %). "IG, black baseline" is integrated gradients
as Explain showed it before issue 25, for comparison. Two processes, one per core, each checks half of the galaxies. Slow: about 20 minutes on 2 idle CPU cores."""

TRUST_GALAXIES = (100, 2)  # held-out galaxies in the trust survey (full run, quick run)
CONTROL_GALAXIES = (20, 2)  # synthetic galaxies per feature in the positive control
VARIANTS = {"IG, black baseline": ("integrated_gradients", {"baseline": "black"})}  # levers, measured beside


def run(ctx: Context) -> list[Row]:
    try:
        from gzcore import explain
    except ImportError as e:
        raise Skip(f"gzcore.explain cannot be imported ({e})") from e
    model, ckpt = checkpoint.load(ctx.checkpoint)
    size = ckpt["input_size"]
    crops = checkpoint.data_for(ckpt, ctx.unlabelled, labels=False, cache_dir=ctx.cache).crops
    image = explain.model_input(crops[0], size)
    rows = []
    for method in explain.METHODS:
        ms = median_ms(lambda: explain.explain(model, image, 1, method=method), ctx.pick(5, 1), warmup=1)
        goal = 500 if method == explain.DEFAULT_METHOD else 50 if method in ("saliency", "gradcam") else None
        rows.append(Row(f"{method} ({ctx.model_note}, {size} px, question 1)", ms, "ms",  # computed unasked
                        goal=f"≤ {goal} ms" if goal else "", met=ms <= goal if goal else None))
    return rows + trust(ctx)


def _survey(checkpoint_path, images):
    """explain_checks.survey of every method and variant, in a worker process of one thread."""
    import torch

    from gzcore import explain_checks
    torch.set_num_threads(1)
    model, _ = checkpoint.load(checkpoint_path)
    return explain_checks.survey(model, images, variants=VARIANTS, progress=lambda done, total: print(
        f"{done}/{total} galaxies", file=sys.stderr, flush=True))


def trust(ctx: Context) -> list[Row]:
    """The checks' summary per method over the model's first held-out galaxies by GalaxyID, and the
    positive control."""
    from gzcore import data, explain, explain_checks
    model, ckpt = checkpoint.load(ctx.checkpoint)
    held = checkpoint.data_for(ckpt, ctx.data, cache_dir=ctx.cache)
    order = held.val_idx[np.argsort(held.galaxies.ids[held.val_idx], kind="stable")][:ctx.pick(*TRUST_GALAXIES)]
    images = [explain.model_input(held.crops[i], ckpt["input_size"]) for i in order]
    runs = {m: (m, {}) for m in explain.METHODS} | VARIANTS
    halves = [images[:len(images) // 2], images[len(images) // 2:]]  # a process per core
    with ProcessPoolExecutor(len(halves)) as pool:
        found = list(pool.map(_survey, [ctx.checkpoint] * len(halves), halves))
    summary = explain_checks.summary(pd.concat(found))
    pp, n_control = data.Preprocess(**ckpt["preprocess"]), ctx.pick(*CONTROL_GALAXIES)
    rows = []
    for name, s in summary.iterrows():
        what = f"{name}, {len(images)} held-out galaxies, top Q1 answer"
        default = name == explain.DEFAULT_METHOD
        for level in explain_checks.LEVELS:
            rows.append(Row(f"{what}: beats random, {level} level: deletion / insertion / ROAD MoRF / ROAD LeRF",
                            " / ".join(f"{s[f'{t}_{level}_beats']:.0%}" for t in explain_checks.TESTS)))
        rows += [Row(f"{what}: Spearman once fully randomised, as drawn (|map|), and SSIM of |map|",
                     f"{s['spearman_as_drawn_full mean']:.2f} ({s['spearman_full mean']:.2f}), "
                     f"SSIM {s['ssim_full mean']:.2f}"),
                 Row(f"{what}: passes every check", f"{s.passes:.0%}", goal="≥ 80 %" if default else "",
                     met=s.passes >= 0.8 if default else None),
                 Row(f"{what}: seconds per galaxy (every check)", f"{s['seconds mean']:.1f}")]
        method, options = runs[name]
        for feature in explain_checks.CONTROLS:
            c = explain_checks.positive_control(model, pp, ckpt["input_size"], feature, n_control, method, **options)
            if not len(c):
                rows.append(Row(f"{name}: positive control, {feature}: the model finds none", "—"))
                continue
            rows.append(Row(f"{name}: positive control, {len(c)} synthetic galaxies with a {feature}: share of the "
                            f"map on it (reference: a random map's), galaxies where it is larger",
                            f"{c.share.mean():.2f}, {c.beats.mean():.0%}", reference=f"{c.random_share.mean():.2f}",
                            goal="≥ 80 %" if default else "", met=c.beats.mean() >= 0.8 if default else None))
    return rows
