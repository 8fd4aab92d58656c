"""Predictions and scores: RMSE overall / per question / per answer, the reference baselines,
test-time augmentation, the predictions table and Kaggle submission files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import augment, tree


def model_inputs(crops, input_size: int, index=None, batch_size: int = 256,
                 device: torch.device | str = "cpu"):
    """(rows done, float batch) over the central `input_size` pixels of uint8 crops (N, H, W, C),
    or of the rows `index` of them, read chunk by chunk (a memory-mapped cache is never copied
    whole); channels-last, the faster layout for convolutions."""
    index = np.arange(len(crops)) if index is None else np.asarray(index)
    for i in range(0, len(index), batch_size):
        batch = torch.from_numpy(np.array(crops[index[i:i + batch_size]]))  # a writable copy
        x = augment.centre(augment.to_float(batch.to(device)), input_size)
        yield min(i + batch_size, len(index)), x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict(model, crops, input_size: int, tta: bool = False, batch_size: int = 256,
            device: torch.device | str = "cpu", progress=None, index=None) -> np.ndarray:
    """Model outputs (N, 37), in fp32, for uint8 crops (N, H, W, C) or for the rows `index` of
    them. `tta` averages the 8 flips/rotations, run as one batch of 8x the size."""
    model.eval()
    n = len(crops) if index is None else len(index)
    out = []
    for done, x in model_inputs(crops, input_size, index, max(1, batch_size // 8) if tta else batch_size,
                                device):
        if tta:
            x = torch.cat([augment.dihedral(x, k) for k in range(8)])
        y = model(x).float()
        if tta:
            y = y.view(8, -1, y.shape[-1]).mean(0)
        out.append(y.cpu().numpy())
        if progress:
            progress(done, n)
    return np.concatenate(out) if out else np.zeros((0, tree.N_ANSWERS), np.float32)


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """The competition metric: one RMSE over all galaxies x answers."""
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))


def scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    """{'rmse': overall, 'per_question': {1: ..}, 'per_answer': {'Class1.1': ..}}."""
    sq = (np.asarray(pred, np.float64) - truth) ** 2
    return {
        "rmse": float(np.sqrt(sq.mean())),
        "per_question": {q.number: float(np.sqrt(sq[:, tree.SLICES[q.number]].mean()))
                         for q in tree.QUESTIONS},
        "per_answer": {c: float(np.sqrt(sq[:, i].mean())) for i, c in enumerate(tree.COLUMNS)},
    }


def _linear_fit(features_train, y_train, features_test, ridge: float = 1e-6):
    a = np.column_stack([features_train, np.ones(len(features_train))])
    b = np.column_stack([features_test, np.ones(len(features_test))])
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y_train)
    return np.clip(b @ w, 0, 1)


def baselines(crops, labels: np.ndarray, train_idx, val_idx) -> dict[str, float]:
    """Validation RMSE of the competition's reference baselines, fitted on the training split:
    the mean answer vector, a linear fit on the central pixel's colour, and on the average colour."""
    y_tr, y_va = labels[train_idx], labels[val_idx]
    c = crops.shape[1] // 2

    def per_image(index, fn):  # chunked, so a memory-mapped cache is never read whole
        return np.concatenate([fn(np.asarray(crops[index[i:i + 1024]], np.float64))
                               for i in range(0, len(index), 1024)])

    def central(index):
        return per_image(index, lambda x: x[:, c, c, :])

    def average(index):
        return per_image(index, lambda x: x.mean(axis=(1, 2)))

    return {
        "mean answer vector": rmse(np.broadcast_to(y_tr.mean(0), y_va.shape), y_va),
        "central pixel (linear)": rmse(_linear_fit(central(train_idx), y_tr, central(val_idx)), y_va),
        "average colour (linear)": rmse(_linear_fit(average(train_idx), y_tr, average(val_idx)), y_va),
    }


def predictions_table(ids, pred: np.ndarray, truth: np.ndarray | None = None) -> pd.DataFrame:
    """GalaxyID x model answers (`Class1.1` …) and, when known, crowd answers (`crowd Class1.1` …)
    and the per-galaxy RMSE: the file the dashboard reads."""
    df = pd.DataFrame(np.asarray(pred, np.float32), columns=list(tree.COLUMNS))
    df.insert(0, "GalaxyID", np.asarray(ids, np.int64))
    if truth is not None:
        crowd = pd.DataFrame(np.asarray(truth, np.float32), columns=[f"crowd {c}" for c in tree.COLUMNS])
        df = pd.concat([df, crowd], axis=1)
        df["rmse"] = np.sqrt(((np.asarray(pred) - truth) ** 2).mean(axis=1)).astype(np.float32)
    return df


def write_submission(path, ids, pred: np.ndarray) -> Path:
    """A Kaggle submission CSV: GalaxyID + the 37 Class columns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions_table(ids, pred).to_csv(path, index=False, float_format="%.6f")
    return path
