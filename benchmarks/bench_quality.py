"""Section 3: validation RMSE after a few minutes of training, ours against the blog loop."""
from __future__ import annotations

import time

import torch

from gzcore import checkpoint, evaluate

from . import blog
from .common import Context, Row

TITLE = "Time to quality"
ABOUT = """\
Validation RMSE on the same split (`gzcore.data.split`, 10 %, seed 0) after M minutes of training.
Ours: a separate `gz train --minutes M` run per budget (the one-cycle schedule follows the budget;
the clock covers its per-epoch validation too), scored without and with 8-view TTA. Blog: one run
of its loop, scored at each budget with the evaluation kept off its clock. Baselines: the
competition's reference predictors fitted on the training split (`gzcore.evaluate.baselines`).
Ratio: blog RMSE / ours."""

GOAL = 0.090  # validation RMSE after 10 minutes


def _blog_rmse_at(prep, minutes: list[float]) -> dict[float, float]:
    """One run of the blog loop, scored when its training clock passes each budget."""
    paths, labels = prep.galaxies.paths, prep.galaxies.labels
    torch.manual_seed(0)
    model = blog.BlogCNN()
    opt = blog.optimizer(model)
    batches = blog.endless(blog.loader([paths[i] for i in prep.train_idx], labels[prep.train_idx], True))
    val = blog.loader([paths[i] for i in prep.val_idx], labels[prep.val_idx], train=False)
    clock, scores = 0.0, {}
    for budget in sorted(minutes):
        while clock < budget * 60:
            start = time.perf_counter()
            blog.train_step(model, opt, *next(batches))
            clock += time.perf_counter() - start
        scores[budget] = blog.rmse(model, val)
    return scores


def run(ctx: Context) -> list[Row]:
    prep = ctx.prepared  # builds the shared cache, so gz train below decodes nothing
    minutes = ctx.pick([2, 5, 10], [0.2])
    ours = {}
    for m in minutes:
        out = ctx.scratch / f"train{m:g}.pt"
        ctx.gz("train", "--data", str(ctx.data), "--minutes", f"{m:g}", "--out", str(out))
        ours[m] = checkpoint.read(out)["metrics"]
    reference = _blog_rmse_at(prep, minutes)
    rows = []
    for m in minutes:
        goal = f"≤ {GOAL}" if m == 10 else ""
        epochs = ours[m]["epochs"]
        rows.append(Row(f"val RMSE after {m:g} min ({epochs} epoch{'s' * (epochs != 1)} of gz train)",
                        ours[m]["val_rmse"], "", reference[m], reference[m] / ours[m]["val_rmse"], goal,
                        ours[m]["val_rmse"] <= GOAL if goal else None))
        rows.append(Row(f"val RMSE after {m:g} min, 8-view TTA", ours[m]["val_rmse_tta"], "",
                        goal=goal, met=ours[m]["val_rmse_tta"] <= GOAL if goal else None))
    base = evaluate.baselines(prep.crops, prep.galaxies.labels, prep.train_idx, prep.val_idx)
    rows += [Row(f"baseline: {name}", value) for name, value in base.items()]
    return rows
