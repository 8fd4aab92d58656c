"""Section 9: how far to trust an answer: the spread `gz predict --uncertainty` reports, against the
actual errors on the checkpoint's held-out galaxies."""
from __future__ import annotations

import numpy as np

from gzcore import checkpoint, evaluate, models

from .common import Context, Row

TITLE = "Uncertainty"
ABOUT = """\
`evaluate.predict(..., spread=True)` on the held-out galaxies of the shipped model's split (never
trained on): the standard deviation of the predictions averaged into each answer, from three
sources: the ensemble's members without TTA (what the dashboard's catalogue uses), members x 8 TTA
views (`gz predict --uncertainty`), and the 8 TTA views of its best single member alone. Scored
over all galaxies x 37 answers against the crowd: Spearman's rank correlation of spread and
absolute error (does a larger spread mean a larger error?) over all cells, where the tree's
structure helps (rarely reached answers are small and sure), and within each answer (the median of
the 37); the ratio of the actual RMSE to the root-mean-square spread (how much to widen a spread to
read it as an error bar); and the cells in 10 equal-count bins by spread: the lowest and highest
bins' mean spread vs their actual RMSE."""


def run(ctx: Context) -> list[Row]:
    model, ckpt = checkpoint.load(ctx.checkpoint)
    held = checkpoint.data_for(ckpt, ctx.data, labels=True, cache_dir=ctx.cache)
    truth = held.galaxies.labels[held.val_idx]
    members = models.members(model)
    scores = (ckpt.get("metrics") or {}).get("member_val_rmse_tta") or [0.0] * len(members)
    best = members[min(range(len(members)), key=scores.__getitem__)]
    sources = {"ensemble members, no TTA": (model, False), "ensemble members x 8 views": (model, True),
               "best member's 8 views": (best, True)}
    if len(members) == 1:
        sources = {"8 TTA views": (model, True)}
    rows = []
    for name, (predictor, tta) in sources.items():
        pred, spread = evaluate.predict(predictor, held.crops, ckpt["input_size"], index=held.val_idx,
                                        tta=tta, spread=True)
        table, rho = evaluate.calibration(spread, pred, truth)
        within = [evaluate.calibration(spread[:, j], pred[:, j], truth[:, j])[1] for j in range(truth.shape[1])]
        low, high = table.iloc[0], table.iloc[-1]
        rows.append(Row(f"{name} ({ctx.model_note}, {len(held.val_idx)} held-out galaxies): "
                        f"Spearman(spread, |error|) over all answers · median within one answer",
                        f"{rho:.3f} · {np.median(within):.3f}"))
        rows.append(Row(f"{name}: RMSE ÷ root-mean-square spread (1 = spreads sized like errors)",
                        evaluate.rmse(pred, truth) / float(np.sqrt(np.mean(spread ** 2)))))
        rows.append(Row(f"{name}: least certain tenth, mean spread vs RMSE",
                        f"{high.spread:.3f} vs {high.rmse:.3f}"))
        rows.append(Row(f"{name}: most certain tenth, mean spread vs RMSE",
                        f"{low.spread:.4f} vs {low.rmse:.4f}"))
    return rows
