"""The atlas: every galaxy placed on a 2-D map of the model's embedding (neighbours.embed), so that
galaxies the model sees alike lie close together.

Two projections: PCA (the embedding's two main axes, a numpy SVD: instant, used first) and UMAP
(umap-learn with a fixed seed: reproducible, and far better at keeping neighbourhoods, but its first
call in a process spends a minute compiling with numba). `coordinates` computes either once per
model and data and keeps it on disk, keyed like the catalogue's caches. `mosaic` picks one real
galaxy per cell of a grid laid over the map, for a picture of the map made of galaxies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import computed, data

METHODS = ("pca", "umap")
UMAP_SEED = 0          # UMAP's random_state: the same map for the same embedding
UMAP_NEIGHBOURS = 15   # umap-learn's default n_neighbors: local versus global structure
UMAP_MIN = 4           # fewer galaxies than this have no neighbourhoods to keep


def pca(embeddings: np.ndarray) -> np.ndarray:
    """(N, 2) float32: the rows of `embeddings` (N, D) on their two principal axes. The axes come
    from the SVD of the D x D covariance; each axis's sign is fixed (its largest loading positive),
    so the same embedding always gives the same map. One BLAS thread: on a shared machine a second
    one waits on a busy core (6,000 x 256 on 2 loaded cores: 580 ms with two threads, 130 with one)."""
    x = np.asarray(embeddings, np.float64)
    out = np.zeros((len(x), 2), np.float32)
    if len(x) < 2:
        return out
    centred = x - x.mean(axis=0)
    with threadpool_limits(1, user_api="blas"):
        _, _, axes = np.linalg.svd(centred.T @ centred)  # rows: principal axes, largest variance first
    axes = axes[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    out[:, :len(axes)] = centred @ axes.T
    return out


def umap(embeddings: np.ndarray, seed: int = UMAP_SEED) -> np.ndarray:
    """(N, 2) float32: umap-learn's 2-D layout of the unit rows of `embeddings`, reproducible for a
    given `seed` (a fixed random_state makes UMAP run single-threaded). DataError for fewer than
    UMAP_MIN rows."""
    if len(embeddings) < UMAP_MIN:
        raise data.DataError(f"UMAP needs at least {UMAP_MIN} galaxies and there are {len(embeddings)}: "
                             f"use PCA")
    import umap as umap_learn  # slow to import (numba); its first layout in a process compiles for a minute

    reducer = umap_learn.UMAP(n_components=2, n_neighbors=min(UMAP_NEIGHBOURS, len(embeddings) - 1),
                              random_state=seed, n_jobs=1)
    return reducer.fit_transform(np.asarray(embeddings, np.float32)).astype(np.float32)


def project(embeddings: np.ndarray, method: str) -> np.ndarray:
    """(N, 2) map positions of `embeddings` by `method`, one of METHODS."""
    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}: choose one of {', '.join(METHODS)}")
    return pca(embeddings) if method == "pca" else umap(embeddings)


def cache_file(subject: computed.Subject, method: str) -> Path:
    """Where `coordinates` keeps the `method` map of the subject's galaxies."""
    return subject.file("atlas", f"-{method}{f'-seed{UMAP_SEED}' if method == 'umap' else ''}.npy")


def coordinates(embeddings: np.ndarray, method: str, subject: computed.Subject, progress=None) -> np.ndarray:
    """`project` of the model's embeddings of the subject's galaxies, computed once (`computed.once`)."""
    return computed.once(cache_file(subject, method), lambda report: project(embeddings, method),
                         computed.npy, computed.save_npy, progress)


def nearest_on_map(xy: np.ndarray, row: int, k: int = 8) -> np.ndarray:
    """The `k` rows closest to `row` on the map (2-D distance), closest first, `row` left out."""
    distance = np.square(xy - xy[row]).sum(axis=1)
    distance[row] = np.inf
    k = min(k, len(xy) - 1)
    if k <= 0:
        return np.zeros(0, np.int64)
    near = np.argpartition(distance, k - 1)[:k]
    return near[np.argsort(distance[near], kind="stable")]


@dataclass(frozen=True)
class Mosaic:
    """One representative galaxy per occupied cell of a grid laid over a map."""
    rows: np.ndarray     # (K,) row of each cell's galaxy: the one nearest the cell's centre
    centres: np.ndarray  # (K, 2) the centres of those cells, on the map
    cell: tuple[float, float]  # a cell's width and height, in map units


def mosaic(xy: np.ndarray, cells: int = 12, min_galaxies: int = 3) -> Mosaic:
    """Lay a `cells` x `cells` grid over the map's bounding box and, in every cell holding at least
    `min_galaxies` galaxies (sparse outskirts stay empty), pick the galaxy nearest its centre."""
    lo = xy.min(axis=0)
    size = np.maximum(xy.max(axis=0) - lo, 1e-9) / cells
    index = np.clip(((xy - lo) // size).astype(np.int64), 0, cells - 1)  # (N, 2) cell column, row
    cell = index[:, 0] * cells + index[:, 1]
    offset = np.square((xy - lo) / size - (index + 0.5)).sum(axis=1)  # in cell units: square cells alike
    order = np.lexsort((offset, cell))  # by cell, nearest the centre first
    first = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    counts = np.diff(np.r_[first, len(order)])
    rows = order[first[counts >= min_galaxies]]
    return Mosaic(rows, (lo + (index[rows] + 0.5) * size).astype(np.float32), (float(size[0]), float(size[1])))
