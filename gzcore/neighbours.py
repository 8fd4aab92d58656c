"""Galaxies like this one: nearest neighbours by cosine similarity of the model's feature vectors.

`embed` turns crops into unit-length rows once; `nearest` is then one matrix-vector product, a few
milliseconds for 60,000 x 256.
"""
from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from . import evaluate, models


@torch.inference_mode()
def embed(model, crops, input_size: int, batch_size: int = 256, device: torch.device | str = "cpu",
          progress=None) -> np.ndarray:
    """L2-normalised `model.embed` of the central `input_size` pixels of uint8 crops (N, H, W, C)
    -> float32 (N, D). The model is put in eval mode."""
    model.eval()
    out = []
    for done, x in evaluate.model_inputs(crops, input_size, batch_size=batch_size, device=device):
        out.append(torch.nn.functional.normalize(model.embed(x).float(), dim=1).cpu().numpy())
        if progress:
            progress(done, len(crops))
    if out:
        return np.concatenate(out)
    return np.zeros((0, sum(m.backbone.out_features for m in models.members(model))), np.float32)


def nearest(embeddings: np.ndarray, query, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows most like `query` -> (indices, cosine similarities), most similar first.

    `query` is a row index of `embeddings` (that row is left out of the answer) or a vector of
    the same width (normalised here). `embeddings` are unit rows, as `embed` returns them. One
    BLAS thread: the product takes a millisecond, after which a second OpenBLAS thread would spin
    ~0.1 CPU-s waiting for more (most of a Galaxy page view's CPU).
    """
    if isinstance(query, (int, np.integer)):
        vector, exclude = embeddings[query], int(query)
    else:
        vector = np.asarray(query, np.float32)
        vector, exclude = vector / max(float(np.linalg.norm(vector)), 1e-12), None
    with threadpool_limits(1, user_api="blas"):
        sims = embeddings @ vector
    if exclude is not None:
        sims[exclude] = -np.inf
    k = min(k, len(sims) - (exclude is not None))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-sims, k - 1)[:k]  # the k best in any order, then sorted
    top = top[np.argsort(-sims[top], kind="stable")]
    return top, sims[top]
