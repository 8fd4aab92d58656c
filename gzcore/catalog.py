"""The catalogue the dashboard browses: one row per galaxy with the model's and the crowd's answers.

`build` runs a model over a folder once (no TTA) and caches the table on disk, keyed by the data
fingerprint and the checkpoint file; `enrich` adds derived columns, all vectorised so that filters
and sorts over 60,000 rows stay interactive:

    Class1.1 …            model, weighted (as in the Kaggle labels)    crowd Class1.1 …   crowd
    cond Class1.1 …       model, conditional (given the question)      crowd cond …       crowd
    reach Q1 …            model's weight of reaching the question      crowd reach Q1 …   crowd
    top Q1 …              index of the top conditional answer (-1: unreached)
    ptop Q1 …             its conditional probability
    rmse                  per-galaxy RMSE over the 37 answers (crowd vs model)
    disagreement          "confident disagreement", below; with `disagreement Q` (question number)
                          and `crowd surer` (True: the crowd is the confident side)

Confident disagreement is a regression version of FiftyOne's "mistakenness". For each question q
take the crowd's top answer a and score

    reach_q(crowd) * |crowd_a - model_a| * max(|2 crowd_a - 1|, |2 model_top - 1|)

(conditional fractions). |2p - 1| is a side's confidence in its top answer (0 at a coin toss, 1 when
unanimous), so the score is high where the two disagree *and* at least one of them is sure, and it
vanishes for questions few volunteers were asked. A galaxy's score is its largest question score.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import data, evaluate, neighbours, tree

LOW_REACH = 0.5        # questions reached by fewer than half of the volunteers are shown greyed
CONFIDENT = 0.8        # "crowd-confident": top conditional answer at least this


def col(column: str, source: str = "model", kind: str = "weighted") -> str:
    """Table column of answer `column` ('Class1.1') for source model|crowd, kind weighted|conditional."""
    return ("crowd " if source == "crowd" else "") + ("cond " if kind == "conditional" else "") + column


def qcol(stat: str, number: int, source: str = "model") -> str:
    """Per-question column: stat in reach|top|ptop, e.g. qcol('reach', 2, 'crowd') = 'crowd reach Q2'."""
    return ("crowd " if source == "crowd" else "") + f"{stat} Q{number}"


def has_crowd(table: pd.DataFrame) -> bool:
    return col("Class1.1", "crowd") in table


def weighted(table: pd.DataFrame, source: str = "model", rows=None) -> np.ndarray:
    """(N, 37) weighted answers of `source`, optionally only `rows` (positions)."""
    part = table if rows is None else table.iloc[rows]  # rows first: a page of 24 stays cheap at 60,000
    return part[[col(c, source) for c in tree.COLUMNS]].to_numpy(np.float64)


def scores(table: pd.DataFrame, rows=None) -> dict:
    """evaluate.scores of the model against the crowd over `rows` (positions; default all)."""
    return evaluate.scores(weighted(table, rows=rows), weighted(table, "crowd", rows=rows))


def _per_source(w: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    cond, reach = tree.to_conditional(w), tree.reach(w)
    out = {f"{prefix}cond {c}": cond[:, i].astype(np.float32) for i, c in enumerate(tree.COLUMNS)}
    for i, q in enumerate(tree.QUESTIONS):
        part = np.nan_to_num(cond[:, tree.SLICES[q.number]], nan=-1.0)
        top = part.argmax(axis=1)
        reached = ~np.isnan(cond[:, tree.SLICES[q.number].start])
        out[f"{prefix}reach Q{q.number}"] = reach[:, i].astype(np.float32)
        out[f"{prefix}top Q{q.number}"] = np.where(reached, top, -1).astype(np.int8)
        out[f"{prefix}ptop Q{q.number}"] = np.where(reached, part.max(axis=1), np.nan).astype(np.float32)
    return out


def disagreement(crowd_w: np.ndarray, model_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, question number, crowd surer) per galaxy: the module docstring's definition."""
    c, m = np.nan_to_num(tree.to_conditional(crowd_w)), np.nan_to_num(tree.to_conditional(model_w))
    reach = tree.reach(crowd_w)
    scores, surer = [], []
    for i, q in enumerate(tree.QUESTIONS):
        s = tree.SLICES[q.number]
        a = c[:, s].argmax(axis=1)
        rows = np.arange(len(c))
        crowd_a, model_a = c[:, s][rows, a], m[:, s][rows, a]
        crowd_conf, model_conf = np.abs(2 * crowd_a - 1), np.abs(2 * m[:, s].max(axis=1) - 1)
        scores.append(reach[:, i] * np.abs(crowd_a - model_a) * np.maximum(crowd_conf, model_conf))
        surer.append(crowd_conf >= model_conf)
    scores = np.stack(scores, axis=1)
    worst = scores.argmax(axis=1)
    rows = np.arange(len(scores))
    return scores[rows, worst], worst + 1, np.stack(surer, axis=1)[rows, worst]


def enrich(table: pd.DataFrame) -> pd.DataFrame:
    """The predictions table (evaluate.predictions_table) plus the derived columns above."""
    extra = _per_source(weighted(table), "")
    if has_crowd(table):
        crowd = weighted(table, "crowd")
        extra.update(_per_source(crowd, "crowd "))
        score, question, surer = disagreement(crowd, weighted(table))
        extra.update({"disagreement": score.astype(np.float32), "disagreement Q": question.astype(np.int8),
                      "crowd surer": surer})
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)


# ------------------------------------------------------------------ building and caching


def file_key(path) -> str:
    """Identity of a file's current contents for cache keys: path, size and modification time."""
    path = Path(path).resolve()
    st = path.stat()
    return hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]


def _cache_file(kind: str, galaxies: data.GalaxySet, ckpt: dict, ckpt_path, cache_dir, suffix: str) -> Path:
    fp = data.fingerprint(galaxies, data.Preprocess(**ckpt["preprocess"]))
    return Path(cache_dir) / kind / f"{fp}-{file_key(ckpt_path)}{suffix}"


def build(galaxies: data.GalaxySet, crops, model, ckpt: dict, ckpt_path, cache_dir,
          progress=None) -> pd.DataFrame:
    """The enriched table of `model` over `galaxies`, read from `cache_dir/predictions/` when the
    same data (fingerprint) and checkpoint file were seen before."""
    path = _cache_file("predictions", galaxies, ckpt, ckpt_path, cache_dir, ".parquet")
    if path.is_file():
        return enrich(pd.read_parquet(path))
    pred = evaluate.predict(model, crops, ckpt["input_size"], progress=progress)
    table = evaluate.predictions_table(galaxies.ids, pred, galaxies.labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return enrich(table)


def embeddings(galaxies: data.GalaxySet, crops, model, ckpt: dict, ckpt_path, cache_dir,
               progress=None) -> np.ndarray:
    """neighbours.embed of every galaxy, cached in `cache_dir/embeddings/` like `build`."""
    path = _cache_file("embeddings", galaxies, ckpt, ckpt_path, cache_dir, ".npy")
    if path.is_file():
        return np.load(path)
    emb = neighbours.embed(model, crops, ckpt["input_size"], progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), emb)
    path.with_suffix(".tmp.npy").replace(path)
    return emb


def export(table: pd.DataFrame) -> pd.DataFrame:
    """The predictions table without the derived columns (what evaluate.predictions_table wrote)."""
    crowd = [col(c, "crowd") for c in tree.COLUMNS] + ["rmse"] if has_crowd(table) else []
    return table[["GalaxyID", *tree.COLUMNS, *crowd]]


def image(path, size: int | None = None) -> np.ndarray:
    """An image file as uint8 (H, W, 3), optionally shrunk to `size` px (JPEG draft mode: a
    thumbnail costs a fraction of a full decode). Raises DataError for unreadable files."""
    try:
        with Image.open(path) as img:
            if size:
                img.draft("RGB", (size, size))
                img = img.convert("RGB")
                img.thumbnail((size, size))
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise data.DataError(f"{path}: cannot decode image ({e})") from e


# ------------------------------------------------------------------ selecting


@dataclass(frozen=True)
class Range:
    """Keep rows whose `column` lies in [lo, hi] (NaN, i.e. unreached, never does)."""
    column: str
    lo: float = -np.inf
    hi: float = np.inf

    def describe(self, labels: dict[str, str]) -> str:
        """Readable form, e.g. '0.8 ≤ crowd conditional · Q4 spiral ≤ 1' or 'crowd top answer to
        Q1 = features/disk'."""
        words = self.column.split()  # e.g. ['crowd', 'top', 'Q1'] or ['top', 'Q1']
        if len(words) >= 2 and words[-2] == "top":
            number = int(words[-1][1:])
            answer = tree.QUESTION_BY_NUMBER[number].answers[int(self.lo)].short
            return f"{words[0] if len(words) == 3 else 'model'} top answer to Q{number} = {answer}"
        name = labels.get(self.column, self.column)
        if self.hi == np.inf:
            return f"{name} ≥ {self.lo:.3g}"
        return f"{self.lo:.3g} ≤ {name} ≤ {self.hi:.3g}"


def column_labels(table: pd.DataFrame) -> dict[str, str]:
    """Readable names of the columns one can filter or sort on, e.g. 'crowd conditional · Q4 spiral'."""
    out = {}
    sources = ("crowd", "model") if has_crowd(table) else ("model",)
    if has_crowd(table):
        out["disagreement"] = "confident disagreement (crowd vs model)"
        out["rmse"] = "per-galaxy RMSE (crowd vs model)"
    for source in sources:
        for kind in ("conditional", "weighted"):
            for c in tree.COLUMNS:
                out[col(c, source, kind)] = f"{source} {kind} · Q{tree.QUESTION_OF_COLUMN[c]} " \
                                            f"{tree.ANSWER_BY_COLUMN[c].short}"
        for q in tree.QUESTIONS:
            out[qcol("reach", q.number, source)] = f"{source} reach · Q{q.number} {q.short}"
    return out


def select(table: pd.DataFrame, ranges=(), sort_by: str | None = None,
           descending: bool = True) -> np.ndarray:
    """Row positions passing every Range, ordered by `sort_by` (NaN last)."""
    keep = np.ones(len(table), dtype=bool)
    for r in ranges:
        v = table[r.column].to_numpy()
        keep &= (v >= r.lo) & (v <= r.hi)
    rows = np.flatnonzero(keep)
    if sort_by:
        v = table[sort_by].to_numpy(np.float64)[rows]
        rows = rows[np.argsort(-v if descending else v, kind="stable")]
    return rows


def confusion(table: pd.DataFrame, number: int, rows=None, confident: bool = False,
              min_reach: float = LOW_REACH) -> pd.DataFrame:
    """Counts of (crowd top answer, model top answer) for question `number`, over galaxies where
    the crowd reached it with weight >= min_reach (and, if `confident`, ptop >= CONFIDENT)."""
    answers = [a.short for a in tree.QUESTION_BY_NUMBER[number].answers]
    t = table if rows is None else table.iloc[rows]
    keep = t[qcol("reach", number, "crowd")].to_numpy() >= min_reach
    if confident:
        keep &= t[qcol("ptop", number, "crowd")].to_numpy() >= CONFIDENT
    crowd, model = t[qcol("top", number, "crowd")].to_numpy()[keep], t[qcol("top", number)].to_numpy()[keep]
    counts = np.zeros((len(answers), len(answers)), dtype=np.int64)
    np.add.at(counts, (crowd, model), 1)
    return pd.DataFrame(counts, index=pd.Index(answers, name="crowd"),
                        columns=pd.Index(answers, name="model"))


def confusion_ranges(number: int, crowd: int, model: int, confident: bool = False,
                     min_reach: float = LOW_REACH) -> list[Range]:
    """The Browse filter that shows one confusion cell's galaxies."""
    ranges = [Range(qcol("top", number, "crowd"), crowd, crowd), Range(qcol("top", number), model, model),
              Range(qcol("reach", number, "crowd"), min_reach)]
    return ranges + ([Range(qcol("ptop", number, "crowd"), CONFIDENT)] if confident else [])


# ------------------------------------------------------------------ dataset statistics


def answer_correlations(table: pd.DataFrame, source: str = "crowd") -> pd.DataFrame:
    """Pearson correlation between the 37 weighted answers, labelled 'Q1 smooth' etc."""
    labels = [tree.answer_label(c) for c in tree.COLUMNS]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(weighted(table, source).T)
    return pd.DataFrame(corr, index=labels, columns=labels)


def top_answer_shares(table: pd.DataFrame, source: str = "crowd",
                      min_reach: float = LOW_REACH) -> pd.DataFrame:
    """Long table (question, answer, share): how often each answer is the top one, among galaxies
    whose question was reached with weight >= min_reach."""
    out = []
    for q in tree.QUESTIONS:
        keep = table[qcol("reach", q.number, source)].to_numpy() >= min_reach
        top = table[qcol("top", q.number, source)].to_numpy()[keep]
        counts = np.bincount(top[top >= 0], minlength=len(q.answers))
        for a, n in zip(q.answers, counts):
            out.append({"question": q.label, "answer": a.short,
                        "share": n / max(len(top), 1), "galaxies": int(n)})
    return pd.DataFrame(out)


def most_confident(table: pd.DataFrame, source: str = "crowd") -> pd.Series:
    """Row position of the galaxy with the largest weighted value of each answer (confident *and*
    reached), indexed by answer column."""
    return pd.Series(weighted(table, source).argmax(axis=0), index=list(tree.COLUMNS))


def mean_image(crops, chunk: int = 2048) -> np.ndarray:
    """Mean crop, uint8, read in chunks (the crops may be a memory-mapped cache)."""
    total = np.zeros(crops.shape[1:], np.float64)
    for i in range(0, len(crops), chunk):
        total += np.asarray(crops[i:i + chunk], np.float64).sum(axis=0)
    return (total / max(len(crops), 1)).clip(0, 255).astype(np.uint8)
