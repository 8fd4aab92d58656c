"""Oddballs: the galaxies least like the others in the model's feature space, and "more like these".

`anomaly` scores every galaxy by its mean cosine distance to its K = 20 nearest neighbours among the
model's unit embeddings (catalog.embeddings): a galaxy in an empty corner of the feature space
scores high. Chosen over scikit-learn's IsolationForest by `python -m benchmarks.bench_oddballs` on
the real sample with checkpoints/default.pt: of the 50 most anomalous of its 574 held-out galaxies,
23 are crowd-flagged odd (Class6.1 ≥ 0.5) where the base rate (12%) gives 7; IsolationForest (200
trees) finds 13 to 15. Over all 6,000 galaxies: 26 of 50 against 15 to 18 (base rate 11%). The
model's own Q6 answer (supervised) puts 45 in its held-out top 50: the score finds what is unlike
the rest, of which odd galaxies are a part. It uses no randomness; it costs a few seconds for 6,000
galaxies (N² products; a hundred times that for 60,000), so it is cached on disk.

`more_like` is a small active-learning loop: a logistic regression on the embeddings, with the
seeds and the galaxies marked interesting as positives, and as negatives those marked not
interesting (each weighing as much as a positive) and a fixed random background of 200 others
(weighing as much as all the positives together); the rest are ranked by its probability, and
every mark refits it. The background lets it learn from seeds alone what sets them apart from a
typical galaxy; the weights make a mark count however large the folder. Chosen over a Rocchio
query (the mean of the positives less half the mean of the negatives) by the benchmark's simulated
hunts (3 seeds of a kind, then 50 galaxies shown and marked one at a time): of the first 12 shown
it finds more of every kind tried (rings 9.0 against 5.7, mergers 9.0 against 5.3); over the
50, more rings (36.7 against 33.0), as many odd galaxies and mergers, and 48.3 edge-on disks
against 49.7. A refit costs about 0.25 s for 6,000 galaxies. Marks are a dict GalaxyID -> one of MARKS, in the
order made; `marks_table` / `read_marks` are its CSV (GalaxyID, mark).
"""
from __future__ import annotations

import io
import os
import re

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from . import computed, data

K = 20            # neighbours whose mean distance is the anomaly score
BACKGROUND = 200  # random galaxies taken as negatives by `more_like`
MARKS = ("seed", "interesting", "not interesting")
COLUMN = "oddness"  # the anomaly score's column in Browse's table
VERSION = 1       # of the cached scores
MAX_MARKS = 10_000        # rows of a marks CSV: a search marks tens to hundreds of galaxies
MAX_MARKS_BYTES = 2 ** 20  # bytes of a marks CSV (1 MB, as Streamlit counts it): 10,000 rows take ~0.3 MB
INT64_MAX = 2 ** 63 - 1   # the largest GalaxyID (ids are int64 everywhere)
_ID = re.compile(r"[0-9]+")  # ASCII digits: "²" and "١٢" are digits to Python's isdigit, not ids


def anomaly(embeddings: np.ndarray, k: int = K, chunk: int = 512, progress=None) -> np.ndarray:
    """Mean cosine distance (1 − similarity) of each unit row of `embeddings` to its `k` nearest
    other rows -> float32 (N,): higher is odder."""
    n = len(embeddings)
    k = min(k, n - 1)
    out = np.zeros(n, np.float32)
    if k <= 0:
        return out
    for start in range(0, n, chunk):
        sims = embeddings[start:start + chunk] @ embeddings.T  # (chunk, N)
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
        nearest = -np.partition(-sims, k - 1, axis=1)[:, :k]
        out[start:start + len(sims)] = 1 - nearest.mean(axis=1)
        if progress:
            progress(start + len(sims), n)
    return out


def anomaly_cached(embeddings: np.ndarray, subject: computed.Subject, progress=None) -> np.ndarray:
    """`anomaly` of the subject's embeddings, computed once (`computed.once`, in `oddballs/`)."""
    return computed.once(subject.file("oddballs", f"-k{K}-v{VERSION}.npy"),
                         lambda report: anomaly(embeddings, progress=report), computed.npy, computed.save_npy,
                         progress)


def most_anomalous(scores: np.ndarray, n: int, rows=None) -> np.ndarray:
    """The `n` rows (of `rows`; default all) with the highest score, highest first, ties in row order."""
    rows = np.arange(len(scores)) if rows is None else np.asarray(rows, np.int64)
    return rows[np.argsort(-scores[rows], kind="stable")[:n]]


def more_like(embeddings: np.ndarray, positives, negatives=(), n: int | None = None,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, probability of being interesting), best first, of the galaxies neither positive nor
    negative, by the module docstring's logistic regression; the first `n` (default all).
    The background is the first BACKGROUND unmarked rows of a permutation seeded by `seed`, so a
    mark changes it only by the galaxy marked."""
    positives, negatives = np.unique(np.asarray(positives, np.int64)), np.asarray(negatives, np.int64)
    if not len(positives):
        raise ValueError("more_like needs at least one positive (a seed or a galaxy marked interesting)")
    marked = np.zeros(len(embeddings), bool)
    marked[positives] = marked[negatives] = True
    order = np.random.default_rng(seed).permutation(len(embeddings))
    background = order[~marked[order]][:BACKGROUND]
    others = np.flatnonzero(~marked)
    if not len(others):
        return others, np.zeros(0)
    negatives = np.setdiff1d(negatives, positives)  # a seed marked "not" stays a seed
    x = embeddings[np.concatenate([positives, negatives, background])]
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives) + len(background))]
    weight = np.r_[np.ones(len(positives) + len(negatives)), np.full(len(background), len(positives) / len(background))]
    fit = LogisticRegression(max_iter=1000).fit(x, y, sample_weight=weight)
    p = fit.predict_proba(embeddings[others])[:, 1]
    best = np.argsort(-p, kind="stable")[:n]
    return others[best], p[best]


def split_marks(marks: dict, rows_of) -> tuple[list[int], list[int]]:
    """(positive rows, negative rows) of marks {GalaxyID: mark}: seeds and interesting, and not
    interesting; `rows_of(GalaxyID)` gives a row or None (a galaxy not in this catalogue: left out)."""
    rows = {gid: rows_of(gid) for gid in marks}
    positives = [r for gid, r in rows.items() if r is not None and marks[gid] != "not interesting"]
    return positives, [r for gid, r in rows.items() if r is not None and marks[gid] == "not interesting"]


def marks_table(marks: dict) -> pd.DataFrame:
    """Marks {GalaxyID: mark} as the CSV's table: GalaxyID, mark, in the order made."""
    return pd.DataFrame({"GalaxyID": pd.Series(list(marks), dtype="int64"),
                         "mark": pd.Series(list(marks.values()), dtype="object")})


def _capped(source, name: str) -> bytes:
    """The bytes of a marks CSV (a path, or an open text or binary file), DataError past MAX_MARKS_BYTES
    (read no further than that)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                raw = f.read(MAX_MARKS_BYTES + 1)
        else:
            raw = source.read(MAX_MARKS_BYTES + 1)
    except OSError as e:
        raise data.DataError(f"{name}: cannot read it ({e.strerror or e})") from e
    raw = raw.encode() if isinstance(raw, str) else raw
    if len(raw) > MAX_MARKS_BYTES:
        raise data.DataError(f"{name}: more than {MAX_MARKS_BYTES // 2 ** 20} MB; a marks CSV holds at most "
                             f"{MAX_MARKS:,} rows")
    return raw


def _cell(text: str) -> str:
    """A cell as an error quotes it: its first 24 characters."""
    return repr(text if len(text) <= 24 else text[:24] + "…")


def read_marks(source, name: str | None = None) -> dict[int, str]:
    """Marks from a CSV of `marks_table` (a path or an open file, `name` naming it in errors), at most
    MAX_MARKS_BYTES and MAX_MARKS rows; a GalaxyID is the ASCII digits of a number up to INT64_MAX.
    DataError naming the file, the row and what is wrong."""
    name = name or str(source)
    raw = _capped(source, name)
    try:
        table = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, ValueError) as e:  # pandas' parser, decoding and empty-file errors are ValueErrors
        raise data.DataError(f"{name}: cannot read it as a marks CSV ({' '.join(str(e).split())[:200]})") from e
    if list(table.columns[:2]) != ["GalaxyID", "mark"]:
        raise data.DataError(f"{name}: a marks CSV has the columns GalaxyID, mark; found "
                             f"{', '.join(_cell(str(c)) for c in table.columns[:5]) or 'none'}")
    if len(table) > MAX_MARKS:
        raise data.DataError(f"{name}: {len(table):,} rows; a marks CSV holds at most {MAX_MARKS:,}")
    marks = {}
    for i, (gid, mark) in enumerate(zip(table["GalaxyID"], table["mark"])):
        gid = gid.strip(" \t")
        if not gid:
            raise data.DataError(f"{name}: row {i + 2} has no GalaxyID (its cell is empty)")
        if not _ID.fullmatch(gid):
            raise data.DataError(f"{name}: row {i + 2} has no GalaxyID (found {_cell(gid)}: a GalaxyID is "
                                 f"made of the digits 0-9)")
        if len(gid) > 19 or int(gid) > INT64_MAX:
            raise data.DataError(f"{name}: row {i + 2} has no GalaxyID (found {_cell(gid)}: beyond "
                                 f"{INT64_MAX:,}, the largest id gzcore reads)")
        if mark not in MARKS:
            raise data.DataError(f"{name}: row {i + 2} has the mark {_cell(mark)}; a mark is one of "
                                 f"{', '.join(MARKS)}")
        marks[int(gid)] = mark
    return marks
