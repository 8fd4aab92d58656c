"""Section 5: latency of each Captum explanation method for one galaxy, and whether its maps can be
trusted (gzcore.explain_checks) over held-out galaxies."""
from __future__ import annotations

import sys

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

Trust (`gzcore.explain_checks.survey`): the shipped model's held-out galaxies of the labelled folder
(its own split), sorted by GalaxyID, the first N per method (`TRUST_GALAXIES`: fewer for occlusion,
the slowest); each explains the model's top answer to Q1 (conditional). Spearman: rank correlation of
|map| with the original's after cascading randomisation of half the layers (head first) and of all;
deletion: area under the explained answer as the most-attributed pixels are replaced by the image's
mean (0-100 % in 20 steps), beside the mean of 3 random orders; "beats random": the share of
galaxies whose map's area is the smaller; seconds: both checks of one map (a galaxy's first method
also draws its random baseline). Mean ± sd over the galaxies. Slow: about 15 minutes on 2 idle CPU cores."""

# galaxies per method in the trust survey (full run, quick run): what 2 shared CPU cores allow
TRUST_GALAXIES = {"saliency": (100, 2), "gradcam": (100, 2), "smoothgrad": (100, 1),
                  "integrated_gradients": (100, 1), "occlusion": (20, 1)}


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
        fast = method in ("saliency", "gradcam")  # the Explain page's default views
        rows.append(Row(f"{method} ({ctx.model_note}, {size} px, question 1)", ms, "ms",
                        goal="≤ 50 ms" if fast else "", met=ms <= 50 if fast else None))
    return rows + trust(ctx)


def trust(ctx: Context) -> list[Row]:
    """The sanity checks' summary per method over the model's first held-out galaxies by GalaxyID."""
    from gzcore import explain, explain_checks
    model, ckpt = checkpoint.load(ctx.checkpoint)
    held = checkpoint.data_for(ckpt, ctx.data, cache_dir=ctx.cache)
    order = held.val_idx[np.argsort(held.galaxies.ids[held.val_idx], kind="stable")]
    counts = {method: ctx.pick(*n) for method, n in TRUST_GALAXIES.items()}
    found = []
    for i, row in enumerate(order[:max(counts.values())]):  # galaxy by galaxy: one random baseline each
        image = explain.model_input(held.crops[row], ckpt["input_size"])
        one = explain_checks.survey(model, [image], [m for m, n in counts.items() if i < n])
        found.append(one.assign(image=i, galaxy=int(held.galaxies.ids[row])))
        print(one.assign(galaxy=int(held.galaxies.ids[row])).to_string(header=i == 0, index=False),
              file=sys.stderr, flush=True)
    rows = []
    for method, s in explain_checks.summary(pd.concat(found)).iterrows():
        what = f"{method}, {counts[method]} held-out galaxies, top Q1 answer"
        rows += [Row(f"{what}: Spearman, half the layers randomised",
                     f"{s['spearman_middle mean']:.2f} ± {s['spearman_middle sd']:.2f}"),
                 Row(f"{what}: Spearman, every layer randomised",
                     f"{s['spearman_full mean']:.2f} ± {s['spearman_full sd']:.2f}"),
                 Row(f"{what}: deletion area, map (reference: random)", f"{s['auc mean']:.3f} ± {s['auc sd']:.3f}",
                     reference=f"{s['random_auc mean']:.3f} ± {s['random_auc sd']:.3f}"),
                 Row(f"{what}: galaxies where the map beats random", f"{s.beats_random:.0%}"),
                 Row(f"{what}: seconds per galaxy (both checks)", f"{s['seconds mean']:.1f}")]
    return rows
