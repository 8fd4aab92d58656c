"""Predictions and scores: RMSE overall / per question / per answer, the reference baselines,
test-time augmentation, the predictions table and Kaggle submission files."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import atomic, augment, models, targets, tree


def model_inputs(crops, input_size: int, index=None, batch_size: int = 256,
                 device: torch.device | str = "cpu"):
    """(rows done, float batch) over the central `input_size` pixels of uint8 crops (N, H, W, C),
    or of the rows `index` of them, read chunk by chunk (a memory-mapped cache is never copied
    whole); channels-last, the faster layout for convolutions."""
    index = np.arange(len(crops)) if index is None else np.asarray(index)
    for i in range(0, len(index), batch_size):
        batch = torch.from_numpy(np.array(crops[index[i:i + batch_size]]))  # a writable copy
        # non-blocking: a GPU's queue is not drained before each copy (a no-op on a CPU)
        x = augment.centre(augment.to_float(batch.to(device, non_blocking=True)), input_size)
        yield min(i + batch_size, len(index)), x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict(model, crops, input_size: int, tta: bool = False, batch_size: int | None = None,
            device: torch.device | str = "cpu", progress=None, index=None, spread: bool = False,
            precision: str = "fp32"):
    """Raw model outputs (N, K; the 37 answers for the tree), in fp32, for uint8 crops
    (N, H, W, C) or for the rows `index` of them. `tta` averages the 8 flips/rotations, run as one
    batch of 8x the size. `batch_size` counts views: by default 256 on a CPU, 8192 (1024 images x
    8 views) on a GPU, where the outputs stay until the last batch (one copy back, no waits).
    Many images run through `models.folded` (batch norms folded into the convolutions, the same
    outputs to float rounding). `precision="bf16"` runs the model under bf16 autocast (a GPU's
    fast path; scores are computed in fp32, the default, so that they compare across machines).

    With `spread`, returns (outputs, spread): the standard deviation, per output, of the
    predictions averaged into it, those of an ensemble's members and, with `tta`, of the 8 views.
    A single model's spread needs `tta` (its views are all it has)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision {precision!r}: use fp32 or bf16")
    device = torch.device(device)
    batch_size = batch_size or (8192 if device.type == "cuda" else 256)
    model.eval()
    singles = models.members(model) if spread else [model]
    if spread and len(singles) == 1 and not tta:
        raise ValueError("a single model's spread comes from its 8 test-time views: use TTA")
    n = len(crops) if index is None else len(index)
    if n * (8 if tta else 1) >= 512:  # folding costs a few ms a model: it pays for many images
        singles = [models.folded(m) for m in singles]
    out, spreads = [], []
    for done, x in model_inputs(crops, input_size, index, max(1, batch_size // 8) if tta else batch_size,
                                device):
        if tta:
            x = torch.cat([augment.dihedral(x, k) for k in range(8)])
        views = 8 if tta else 1
        with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            y = torch.stack([m(x).float() for m in singles])  # (members, views x batch, K)
        y = y.view(len(singles) * views, -1, y.shape[-1])
        out.append(y.mean(0))
        if spread:
            spreads.append(y.std(0, unbiased=False))
        if progress:
            progress(done, n)
    empty = np.zeros((0, out[0].shape[1] if out else tree.N_ANSWERS), np.float32)
    mean = torch.cat(out).cpu().numpy() if out else empty
    return (mean, torch.cat(spreads).cpu().numpy() if spreads else empty) if spread else mean


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """The competition metric: one RMSE over all galaxies x answers whose truth is known (NaN
    truth = unknown, as in partial labels); nan when none is."""
    sq = (np.asarray(pred, np.float64) - truth) ** 2
    known = ~np.isnan(sq)
    return float(np.sqrt(sq[known].mean())) if known.any() else math.nan


def scores(pred: np.ndarray, truth: np.ndarray, columns=tree.COLUMNS) -> dict:
    """{'rmse': overall, 'per_answer': {column: ..}, 'labelled': {column: galaxies with it known}}
    and, for the tree's 37 columns, 'per_question': {1: ..} and 'question_labelled': {1: ..}.
    Unknown truth (NaN) counts nowhere; a score with nothing known is nan."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    out = {"rmse": rmse(pred, truth),
           "per_answer": {c: rmse(pred[:, i], truth[:, i]) for i, c in enumerate(columns)},
           "labelled": {c: int((~np.isnan(truth[:, i])).sum()) for i, c in enumerate(columns)}}
    if tuple(columns) == tree.COLUMNS:
        out["per_question"] = {q.number: rmse(pred[:, tree.SLICES[q.number]], truth[:, tree.SLICES[q.number]])
                               for q in tree.QUESTIONS}
        out["question_labelled"] = {q.number: int((~np.isnan(truth[:, tree.SLICES[q.number]])).all(axis=1).sum())
                                    for q in tree.QUESTIONS}
    return out


def accuracy(probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Share of the rows with a known class (an index; NaN = unknown) whose most probable class it is."""
    known = ~np.isnan(classes)
    return float((np.argmax(probabilities[known], axis=1) == classes[known]).mean()) if known.any() else math.nan


def majority_class(train_classes: np.ndarray, val_classes: np.ndarray) -> tuple[int, float]:
    """The classifier's baseline: the most frequent known class index of the training rows, and
    the share of the known held-out rows it gets right."""
    known_train = train_classes[~np.isnan(train_classes)].astype(int)
    known_val = val_classes[~np.isnan(val_classes)]
    majority = int(np.argmax(np.bincount(known_train))) if len(known_train) else 0
    return majority, float(np.mean(known_val == majority)) if len(known_val) else math.nan


def calibration(spread: np.ndarray, pred: np.ndarray, truth: np.ndarray,
                bins: int = 10) -> tuple[pd.DataFrame, float]:
    """How well predicted spreads size and rank the actual errors, over the known cells: the
    cells in `bins` bins of equal count by spread, each with its mean spread, its RMSE and its
    count; and Spearman's rank correlation of spread and absolute error (1: the spread orders the
    errors perfectly, 0: it says nothing)."""
    error = np.abs(np.asarray(pred, np.float64) - truth)
    known = ~np.isnan(error)
    s, e = np.asarray(spread, np.float64)[known], error[known]
    order = np.argsort(s, kind="stable")
    rows = [(s[part].mean(), float(np.sqrt((e[part] ** 2).mean())), len(part))
            for part in np.array_split(order, bins) if len(part)]
    table = pd.DataFrame(rows, columns=["spread", "rmse", "cells"])
    return table, float(pd.Series(s).corr(pd.Series(e), method="spearman"))


def _linear_fit(features_train, y_train, features_test, clip: bool, ridge: float = 1e-6):
    """Least squares of each label column on the features, over the rows where it is known."""
    a = np.column_stack([features_train, np.ones(len(features_train))])
    b = np.column_stack([features_test, np.ones(len(features_test))])
    out = np.full((len(b), y_train.shape[1]), np.nan)
    known = ~np.isnan(y_train)
    for cols in {tuple(np.flatnonzero((known == pattern[:, None]).all(axis=0))) for pattern in known.T}:
        rows = known[:, cols[0]]
        if rows.sum() > a.shape[1]:
            aa = a[rows]
            w = np.linalg.solve(aa.T @ aa + ridge * np.eye(a.shape[1]), aa.T @ y_train[rows][:, list(cols)])
            out[:, list(cols)] = b @ w
    return np.clip(out, 0, 1) if clip else out


def baselines(crops, labels: np.ndarray, train_idx, val_idx,
              task: targets.Task = targets.TREE) -> dict[str, float]:
    """Validation RMSE of reference baselines fitted on the training split, for labels as
    `task.comparable` gives them (NaN unknown): the mean label vector (the competition's mean
    answer vector; class frequencies for a classifier), and linear fits on the central pixel's
    colour, on the average colour, and on the mean colours of the central disc and of the ring
    around it (clipped to [0, 1] except for regression targets)."""
    clip = task.kind != "regression"
    y_tr, y_va = labels[train_idx], labels[val_idx]
    c = crops.shape[1] // 2
    radius = np.hypot(*np.mgrid[:crops.shape[1], :crops.shape[2]] - (crops.shape[1] - 1) / 2)
    disc, ring = radius < crops.shape[1] / 8, (radius >= crops.shape[1] / 8) & (radius < crops.shape[1] / 4)

    def per_image(index, fn):  # chunked, so a memory-mapped cache is never read whole
        return np.concatenate([fn(np.asarray(crops[index[i:i + 1024]], np.float64))
                               for i in range(0, len(index), 1024)])

    features = {"central pixel (linear)": lambda x: x[:, c, c, :],
                "average colour (linear)": lambda x: x.mean(axis=(1, 2)),
                "central and outer colours (linear)":
                    lambda x: np.concatenate([x[:, disc].mean(axis=1), x[:, ring].mean(axis=1)], axis=1)}
    with warnings.catch_warnings():  # an all-unknown column has a nan mean, scored nowhere
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.broadcast_to(np.nanmean(y_tr, axis=0), y_va.shape)
    name = {"tree": "mean answer vector", "regression": "mean of each target",
            "classification": "class frequencies"}[task.kind]
    found = {name: rmse(mean, y_va)}
    for name, fn in features.items():
        found[name] = rmse(_linear_fit(per_image(train_idx, fn), y_tr, per_image(val_idx, fn), clip), y_va)
    return found


def predictions_table(ids, pred: np.ndarray, truth: np.ndarray | None = None, columns=tree.COLUMNS,
                      id_column: str = "GalaxyID") -> pd.DataFrame:
    """id x model outputs (the 37 answers `Class1.1` …, or a task's columns) and, when known, the
    labels (`crowd Class1.1` …) and the per-galaxy RMSE over its known labels: the file the
    dashboard reads."""
    df = pd.DataFrame(np.asarray(pred, np.float32), columns=list(columns))
    df.insert(0, id_column, np.asarray(ids, np.int64))
    if truth is not None:
        crowd = pd.DataFrame(np.asarray(truth, np.float32), columns=[f"crowd {c}" for c in columns])
        df = pd.concat([df, crowd], axis=1)
        with warnings.catch_warnings():  # a galaxy with no known label has no error: nan
            warnings.simplefilter("ignore", RuntimeWarning)
            df["rmse"] = np.sqrt(np.nanmean((np.asarray(pred) - truth) ** 2, axis=1)).astype(np.float32)
    return df


def write_predictions(path, ids, pred: np.ndarray, task: targets.Task = targets.TREE,
                      spread: np.ndarray | None = None) -> Path:
    """A CSV of decoded predictions (`Task.decode`): for the tree a Kaggle submission (GalaxyID +
    the 37 Class columns); for targets `id` + their columns; for classes `id`, a probability per
    class and the most probable class. A `spread` (decoded) adds a `<column> spread` column each.
    Written atomically: a failed write leaves an earlier file at `path` as it was."""
    path = Path(path)
    if task.kind == "tree":
        table = predictions_table(ids, pred)
    else:
        table = predictions_table(ids, pred, columns=task.columns, id_column="id")
        if task.kind == "classification":
            table[task.target] = np.asarray(task.columns)[np.argmax(pred, axis=1)]
    if spread is not None:
        table = pd.concat([table, pd.DataFrame(np.asarray(spread, np.float32),
                                               columns=[f"{c} spread" for c in task.columns])], axis=1)
    with atomic.write(path) as f:
        table.to_csv(f, index=False, float_format="%.6f")
    return path
