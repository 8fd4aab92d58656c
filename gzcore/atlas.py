"""The atlas: every galaxy placed on a 2-D map of the model's embedding (neighbours.embed), so that
galaxies the model sees alike lie close together.

Two projections: PCA (the embedding's two main axes, a numpy SVD: instant, used first) and UMAP
(umap-learn with a fixed seed: reproducible, and far better at keeping neighbourhoods, but its first
call in a process spends a minute compiling with numba). `coordinates` computes either once per
model and data and keeps it on disk, keyed like the catalogue's caches. `mosaic` picks one real
galaxy per cell of a grid laid over the map, for a picture of the map made of galaxies; `regions`
groups its tiles into regions of one morphology, each named from the crowd's mean answers of its
galaxies (`describe`), or the model's where the crowd gave none; `close_up` frames a galaxy for a
tile; `colour_unit` gives the units of the column a map is coloured by.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import catalog, computed, data, targets, tree

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
    """One representative galaxy per busy cell (a tile) of a grid laid over a map."""
    rows: np.ndarray     # (K,) row of each tile's galaxy: the one nearest its cell's centre
    centres: np.ndarray  # (K, 2) the centres of those cells, on the map
    cell: tuple[float, float]  # a cell's width and height, in map units
    grid: np.ndarray     # (K, 2) each tile's column and row on the grid
    tile: np.ndarray     # (N,) the tile each galaxy lies in; -1 in a cell too sparse to be drawn


def mosaic(xy: np.ndarray, shape: tuple[int, int] = (12, 12), min_galaxies: int = 3) -> Mosaic:
    """Lay a grid of `shape` (columns, rows) over the map's bounding box and, in every cell holding
    at least `min_galaxies` galaxies (sparse outskirts stay empty), pick the galaxy nearest its centre."""
    shape = np.asarray(shape, np.int64)
    lo = xy.min(axis=0)
    size = np.maximum(xy.max(axis=0) - lo, 1e-9) / shape
    index = np.clip(((xy - lo) // size).astype(np.int64), 0, shape - 1)  # (N, 2) cell column, row
    cell = index[:, 0] * shape[1] + index[:, 1]
    offset = np.square((xy - lo) / size - (index + 0.5)).sum(axis=1)  # in cell units: square cells alike
    order = np.lexsort((offset, cell))  # by cell, nearest the centre first
    first = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    counts = np.diff(np.r_[first, len(order)])
    rows = order[first[counts >= min_galaxies]]
    tile_of_cell = np.full(int(shape.prod()), -1, np.int64)
    tile_of_cell[cell[rows]] = np.arange(len(rows))
    return Mosaic(rows, (lo + (index[rows] + 0.5) * size).astype(np.float32), (float(size[0]), float(size[1])),
                  index[rows], tile_of_cell[cell])


# ------------------------------------------------------------------ regions named by the crowd

_Q1, _Q2, _Q4, _Q6, _Q7, _Q8 = (tree.QUESTION_BY_NUMBER[n] for n in (1, 2, 4, 6, 7, 8))
KINDS = ("smooth and round", "smooth and oval", "smooth, cigar-shaped",  # by Q7, in its answers' order
         "edge-on disks", "spirals", "features or disk", "odd", "stars or artefacts")
SMOOTH_KINDS = 3       # the first KINDS: smooth galaxies, by how round
EDGE_ON, SPIRAL, FEATURES, ODD, STAR = range(SMOOTH_KINDS, len(KINDS))
MAJORITY = 0.5         # the share of votes for "edge-on", "spiral" or "odd" that makes a galaxy so
ODD_NAMED = 0.25       # an odd feature is named when it has this share of Q8's votes


def _answer(weighted: np.ndarray, answer: tree.Answer) -> np.ndarray:
    return weighted[:, tree.COLUMN_INDEX[answer.column]]


def morphology(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of weighted answers (N, 37) as one of KINDS (index, (N,)) and how strongly it is so
    (N,): the weighted fraction of the answer that names it (e.g. Q4 "spiral" for a spiral).
    Q1 decides star, smooth or features; then a majority for "odd" (Q6) makes it odd; then a smooth
    one is as round as Q7's top answer, and one with features is edge-on (Q2), else spiral (Q4),
    by a majority of those asked. Unknown answers (NaN) count as none."""
    w = np.nan_to_num(np.atleast_2d(np.asarray(weighted, np.float64)))
    first = w[:, tree.SLICES[1]].argmax(axis=1)  # 0 smooth, 1 features, 2 star
    conditional = np.nan_to_num(tree.to_conditional(w))
    round_ = w[:, tree.SLICES[7]].argmax(axis=1)
    kind = np.where(first == 0, round_, FEATURES)
    kind = np.where((first == 1) & (_answer(conditional, _Q4.answers[0]) >= MAJORITY), SPIRAL, kind)
    kind = np.where((first == 1) & (_answer(conditional, _Q2.answers[0]) >= MAJORITY), EDGE_ON, kind)
    kind = np.where(_answer(w, _Q6.answers[0]) >= MAJORITY, ODD, kind)
    kind = np.where(first == 2, STAR, kind)
    deciding = {EDGE_ON: _answer(w, _Q2.answers[0]), SPIRAL: _answer(w, _Q4.answers[0]),
                FEATURES: _answer(w, _Q1.answers[1]), ODD: w[:, tree.SLICES[8]].max(axis=1),
                STAR: _answer(w, _Q1.answers[2])}
    strength = np.choose(kind, [*(w[:, tree.COLUMN_INDEX[a.column]] for a in _Q7.answers),
                                *(deciding[k] for k in range(SMOOTH_KINDS, len(KINDS)))])
    return kind, strength


def describe(weighted: np.ndarray) -> str:
    """Mean weighted answers (37,) in words: their KINDS, an odd one with its features (those with
    ODD_NAMED of Q8's votes, commonest first: "odd: merger/disturbed")."""
    kind = int(morphology(weighted)[0][0])
    if kind != ODD:
        return KINDS[kind]
    votes = np.nan_to_num(np.asarray(weighted, np.float64).reshape(-1)[tree.SLICES[8]])
    shares = votes / max(votes.sum(), 1e-9)
    named = [_Q8.answers[i].short for i in np.argsort(-shares, kind="stable") if shares[i] >= ODD_NAMED]
    return f"odd: {'/'.join(named)}" if named else "odd"


@dataclass(frozen=True)
class Region:
    """Neighbouring tiles of a mosaic whose galaxies read alike, and the words for them."""
    label: str          # `describe` of the mean answers of its galaxies
    source: str         # whose answers: "crowd", or "model" where none of its galaxies has the crowd's
    counted: int        # the galaxies whose answers the label is read from
    tiles: np.ndarray   # its tiles (positions in the mosaic)
    rows: np.ndarray    # every galaxy in its tiles (rows of the map)
    clearest: np.ndarray  # its galaxies, those of its kind first, most strongly so first

    @property
    def basis(self) -> str:
        """Which galaxies the label counts, in words."""
        if self.source == "crowd":
            return f"the crowd's answers for {self.counted:,} galaxies"
        return f"the model's answers for {self.counted:,} galaxies (no crowd answers)"


def _complete(crowd: np.ndarray | None, n: int) -> np.ndarray:
    """Which galaxies have the crowd's answer to every question."""
    return np.zeros(n, bool) if crowd is None else ~np.isnan(crowd).any(axis=1)


def reading(crowd: np.ndarray | None, model: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, str, int]:
    """The mean weighted answers of these galaxies: the crowd's over those it answered fully, else the
    model's over them all; with whose answers ("crowd"/"model") and how many galaxies they count."""
    known = rows[_complete(crowd, len(model))[rows]]
    if len(known):
        return crowd[known].mean(axis=0), "crowd", len(known)
    return model[rows].mean(axis=0), "model", len(rows)


def _neighbours(grid: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of tiles side by side on the grid (each pair once)."""
    at = {tuple(g): k for k, g in enumerate(grid.tolist())}
    return [(k, at[(c + dc, r + dr)]) for (c, r), k in at.items() for dc, dr in ((1, 0), (0, 1))
            if (c + dc, r + dr) in at]


def regions(tiles: Mosaic, crowd: np.ndarray | None, model: np.ndarray, min_tiles: int = 2) -> list[Region]:
    """The mosaic's tiles grouped into regions, largest first: neighbouring tiles whose galaxies read
    alike (`describe` of `reading`) join; a group of fewer than `min_tiles` joins the neighbour it
    borders most; the label is read again from each merged group's galaxies until none changes.
    `crowd`, `model`: weighted answers (N, 37) of the map's galaxies (crowd NaN: unknown; None: no labels)."""
    members = [np.flatnonzero(tiles.tile == k) for k in range(len(tiles.rows))]
    group = np.arange(len(tiles.rows))
    pairs = _neighbours(tiles.grid)

    def label(g: int) -> str:
        return describe(reading(crowd, model, np.concatenate([members[k] for k in np.flatnonzero(group == g)]))[0])

    def join(keep: int, gone: int) -> None:
        group[group == gone] = keep

    while True:
        names = {g: label(g) for g in np.unique(group)}
        joined = False
        for i, j in pairs:  # neighbours that read alike join
            if group[i] != group[j] and names[group[i]] == names[group[j]]:
                join(group[i], group[j])
                joined = True
        if not joined:  # a group too small to stand alone joins the neighbour it borders most, smallest first
            sizes = np.bincount(group, minlength=len(group))
            for g in sorted(names, key=lambda g: (sizes[g], g)):
                touching = [b if a == g else a for a, b in ((group[i], group[j]) for i, j in pairs)
                            if a != b and g in (a, b)]
                if 0 < sizes[g] < min_tiles and touching:
                    keep = max(set(touching), key=lambda t: (touching.count(t), sizes[t], -t))
                    join(keep, g)
                    sizes[keep], sizes[g], joined = sizes[keep] + sizes[g], 0, True
        if not joined:
            break
    kinds, strength = morphology(np.where(_complete(crowd, len(model))[:, None], np.nan_to_num(crowd), model)
                                 if crowd is not None else model)
    out = []
    for g in np.unique(group):
        mine = np.flatnonzero(group == g)
        rows = np.concatenate([members[k] for k in mine])
        mean, source, counted = reading(crowd, model, rows)
        own = kinds[rows] == morphology(mean)[0][0]
        clearest = rows[np.lexsort((-strength[rows], ~own))]
        out.append(Region(describe(mean), source, counted, mine, rows, clearest))
    return sorted(out, key=lambda r: (-len(r.rows), r.tiles[0]))


def label_tiles(tiles: Mosaic, found: list[Region], apart: tuple[int, int] = (3, 1)) -> list[int]:
    """The tile each region's name sits on, the regions in order: the one nearest the middle of its
    tiles that lies `apart` (columns, or rows) from the names placed before it, where one does."""
    placed: list[int] = []
    for region in found:
        middle = tiles.grid[region.tiles].mean(axis=0)
        order = region.tiles[np.argsort(np.square(tiles.grid[region.tiles] - middle).sum(axis=1), kind="stable")]
        free = [t for t in order if all((np.abs(tiles.grid[t] - tiles.grid[p]) >= apart).any() for p in placed)]
        placed.append(int((free or order)[0]))
    return placed


def region_of_tiles(found: list[Region], n_tiles: int) -> np.ndarray:
    """(K,) the region (position in `found`) of each tile, -1 for none."""
    out = np.full(n_tiles, -1, np.int64)
    for i, region in enumerate(found):
        out[region.tiles] = i
    return out


def borders(tiles: Mosaic, region_of_tile: np.ndarray) -> np.ndarray:
    """(M, 2, 2) map segments between side-by-side tiles of different regions: the regions' borders."""
    out = []
    for i, j in _neighbours(tiles.grid):
        if region_of_tile[i] != region_of_tile[j]:
            mid = (tiles.centres[i] + tiles.centres[j]) / 2
            along = np.array(tiles.cell) / 2 * (tiles.grid[j] - tiles.grid[i])[::-1]  # half a side, across the step
            out.append([mid - along, mid + along])
    return np.asarray(out, np.float32).reshape(-1, 2, 2)


CLOSE_UP = data.Preprocess(crop="roi", crop_px=data.CROP_FIELDS["roi"])  # a box around the central galaxy


def close_up(path, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the galaxy at the centre of the image `path`, framed by the box a model
    with a ROI crop sees (data.crop_box), so that it fills a tile. Raises DataError as data.read_rgb does."""
    return data.crop_of(data.read_rgb(Path(path), CLOSE_UP), replace(CLOSE_UP, size=size))


def colour_unit(column: str, task: targets.Task) -> str:
    """The units of a catalogue column the map is coloured by ("" for none): a target's value, truth,
    spread or error in the target's units; the RMSE and uncertainty over targets in those they share."""
    for c in task.columns:
        if column in (catalog.col(c), catalog.col(c, "crowd"), catalog.col(c, "spread"), f"error {c}"):
            return task.unit(c)
    return task.shared_unit if column in ("rmse", "uncertainty") else ""
