"""The catalogue the dashboard browses: one row per galaxy with the model's and the crowd's answers.

`build` runs a model over a folder once and caches its outputs and their spread on disk, keyed by
the data fingerprint and the checkpoint file; the labels are joined afresh each time (a changed
labels file is never misread). `enrich` adds derived columns, all vectorised so that filters and
sorts over 60,000 rows stay interactive. For a Galaxy Zoo tree model:

    Class1.1 …            model, weighted (as in the Kaggle labels)    crowd Class1.1 …   crowd
    cond Class1.1 …       model, conditional (given the question)      crowd cond …       crowd
    spread Class1.1 …     the model's spread of each weighted answer   spread cond …      conditional
    reach Q1 …            model's weight of reaching the question      crowd reach Q1 …   crowd
    top Q1 …              index of the top conditional answer (-1: unreached or unknown)
    ptop Q1 …             its conditional probability
    rmse                  per-galaxy RMSE over the answers the crowd gave (NaN: unknown)
    uncertainty           the model's spread of the galaxy (`uncertainty`, below)
    disagreement          "confident disagreement", below; with `disagreement Q` (question number)
                          and `crowd surer` (True: the crowd is the confident side)

For a model of other targets (gzcore.targets) the columns are the task's: `oh_p50` (model, in the
target's units), `crowd oh_p50` (the true value from a labels CSV; "crowd" is the source of truth
in every column name), `spread oh_p50`, `error oh_p50` (model - true), `rmse`, `uncertainty`; for
a classifier a probability per class, `crowd <class>` one-hot, `class` and `crowd class` (indices,
-1 unknown) and `p true class`.

Confident disagreement is a regression version of FiftyOne's "mistakenness". For each question q
take the crowd's top answer a and score

    reach_q(crowd) * |crowd_a - model_a| * max(|2 crowd_a - 1|, |2 model_top - 1|)

(conditional fractions). |2p - 1| is a side's confidence in its top answer (0 at a coin toss, 1 when
unanimous), so the score is high where the two disagree *and* at least one of them is sure, and it
vanishes for questions few volunteers were asked. A galaxy's score is its largest question score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import checkpoint, computed, data, evaluate, models, neighbours, targets, tree

HELD_OUT = "held out"  # 1 for a galaxy in the model's held-out split, 0 in its training split (state.with_split)
LOW_REACH = 0.5        # questions reached by fewer than half of the volunteers are shown greyed
CONFIDENT = 0.8        # "crowd-confident": top conditional answer at least this
VERSION = 2            # of the cached outputs; 2: model outputs and their spread, no labels


def col(column: str, source: str = "model", kind: str = "weighted") -> str:
    """Table column of output `column` ('Class1.1', or a target) for source model|crowd|spread and
    kind weighted|conditional (the tree's answers only)."""
    prefix = {"model": "", "crowd": "crowd ", "spread": "spread "}[source]
    return prefix + ("cond " if kind == "conditional" else "") + column


def qcol(stat: str, number: int, source: str = "model") -> str:
    """Per-question column: stat in reach|top|ptop, e.g. qcol('reach', 2, 'crowd') = 'crowd reach Q2'."""
    return ("crowd " if source == "crowd" else "") + f"{stat} Q{number}"


def has_crowd(table: pd.DataFrame) -> bool:
    """Whether the table holds labels (the crowd's answers, or a labels CSV's true values)."""
    return "rmse" in table


def error_columns(table) -> list[str]:
    """The columns that measure the model's error against the labels (sorting on them ranks its mistakes)."""
    named = ["disagreement", "rmse", "p true class"] + [c for c in table.columns if c.startswith("error ")]
    return [c for c in named if c in table]


def has_spread(table: pd.DataFrame) -> bool:
    """Whether the table holds the model's spread of each output (`build` stores it)."""
    return any(c.startswith("spread ") for c in table.columns)


def values(table: pd.DataFrame, columns, source: str = "model", rows=None) -> np.ndarray:
    """(N, K) values of `columns` (a task's outputs) from `source`, optionally only `rows` (positions)."""
    part = table if rows is None else table.iloc[rows]  # rows first: a page of 24 stays cheap at 60,000
    return part[[col(c, source) for c in columns]].to_numpy(np.float64)


def galaxy_values(table: pd.DataFrame, row: int, columns, kind: str = "weighted") -> dict[str, np.ndarray]:
    """One galaxy's model, crowd and spread values of `columns` (of `kind` for the tree's answers),
    by source; NaN where the table has none (no labels, no spread)."""
    def one(name):
        return table[name].iat[row] if name in table else np.nan
    return {source: np.array([one(col(c, source, kind)) for c in columns], np.float64)
            for source in ("model", "crowd", "spread")}


def weighted(table: pd.DataFrame, source: str = "model", rows=None) -> np.ndarray:
    """(N, 37) weighted answers of `source`, optionally only `rows` (positions)."""
    return values(table, tree.COLUMNS, source, rows)


def scores(table: pd.DataFrame, rows=None, columns=tree.COLUMNS) -> dict:
    """evaluate.scores of the model against the labels over `rows` (positions; default all)."""
    return evaluate.scores(values(table, columns, rows=rows), values(table, columns, "crowd", rows),
                           columns)


def question_counts(table: pd.DataFrame, rows=None) -> dict[int, int]:
    """Galaxies whose crowd answers to each question are known, by question number (partial labels
    leave some questions, or all, at 0)."""
    if not all(col(c, "crowd") in table for c in tree.COLUMNS):  # no labels, or a model of other targets
        return {q.number: 0 for q in tree.QUESTIONS}
    return tree.answered(weighted(table, "crowd", rows))


def uncertainty(spread: np.ndarray | None, pred: np.ndarray, task: targets.Task) -> np.ndarray:
    """One number per galaxy saying how unsure the model is (Browse sorts on it: "least certain").

    Tree and scalar targets: the root mean square of the spreads over the task's outputs. The
    weighted answers already carry the reach (an answer to a question few would be asked is small,
    and so is its spread), so no further weighting by reach is needed; and the root mean square
    mirrors the per-galaxy RMSE, so a well calibrated spread gives `uncertainty` ≈ `rmse` on
    average and the two columns compare directly. A single target: its spread, in its units.
    A classifier has no spread (its probabilities are its uncertainty): 1 - its top probability."""
    if task.kind == "classification":
        return (1 - np.asarray(pred).max(axis=1)).astype(np.float32)
    return np.sqrt(np.mean(np.square(spread, dtype=np.float64), axis=1)).astype(np.float32)


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
    """(score, question number, crowd surer) per galaxy: the module docstring's definition. A
    question whose crowd answers are unknown (partial labels) scores 0."""
    c, m = np.nan_to_num(tree.to_conditional(crowd_w)), np.nan_to_num(tree.to_conditional(model_w))
    reach = np.nan_to_num(tree.reach(crowd_w))
    scores, surer = [], []
    for i, q in enumerate(tree.QUESTIONS):
        s = tree.SLICES[q.number]
        a = c[:, s].argmax(axis=1)
        rows = np.arange(len(c))
        crowd_a, model_a = c[:, s][rows, a], m[:, s][rows, a]
        crowd_conf, model_conf = np.abs(2 * crowd_a - 1), np.abs(2 * m[:, s].max(axis=1) - 1)
        known = ~np.isnan(crowd_w[:, s]).any(axis=1)
        scores.append(known * reach[:, i] * np.abs(crowd_a - model_a) * np.maximum(crowd_conf, model_conf))
        surer.append(crowd_conf >= model_conf)
    scores = np.stack(scores, axis=1)
    worst = scores.argmax(axis=1)
    rows = np.arange(len(scores))
    return scores[rows, worst], worst + 1, np.stack(surer, axis=1)[rows, worst]


def _tree_columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    model = weighted(table)
    extra = _per_source(model, "")
    if has_spread(table):  # conditional spread ~ weighted spread / reach (the reach taken as exact)
        reach = tree.reach(model)[:, [tree.QUESTION_OF_COLUMN[c] - 1 for c in tree.COLUMNS]]
        with np.errstate(invalid="ignore", divide="ignore"):
            cond = np.where(reach > 1e-6, values(table, tree.COLUMNS, "spread") / reach, np.nan)
        extra.update({col(c, "spread", "conditional"): cond[:, i].astype(np.float32)
                      for i, c in enumerate(tree.COLUMNS)})
    if has_crowd(table):
        crowd = weighted(table, "crowd")
        extra.update(_per_source(crowd, "crowd "))
        score, question, surer = disagreement(crowd, model)
        extra.update({"disagreement": score.astype(np.float32), "disagreement Q": question.astype(np.int8),
                      "crowd surer": surer})
    return extra


def _target_columns(table: pd.DataFrame, task: targets.Task) -> dict[str, np.ndarray]:
    if not has_crowd(table):
        return {}
    pred, truth = values(table, task.columns), values(table, task.columns, "crowd")
    if task.kind == "regression":
        return {f"error {c}": (pred[:, i] - truth[:, i]).astype(np.float32)
                for i, c in enumerate(task.columns)}
    known = ~np.isnan(truth).any(axis=1)
    true_class = np.where(known, np.nan_to_num(truth).argmax(axis=1), -1)
    return {"crowd class": true_class.astype(np.int16),
            "p true class": np.where(known, pred[np.arange(len(pred)), true_class.clip(0)], np.nan)
            .astype(np.float32)}


def enrich(table: pd.DataFrame, task: targets.Task = targets.TREE) -> pd.DataFrame:
    """The predictions table (evaluate.predictions_table, with `spread` columns when known) plus
    the derived columns above."""
    extra = _tree_columns(table) if task.kind == "tree" else _target_columns(table, task)
    pred = values(table, task.columns)
    if task.kind == "classification":
        extra["class"] = pred.argmax(axis=1).astype(np.int16)
    if task.kind == "classification" or has_spread(table):
        spread = values(table, task.columns, "spread") if has_spread(table) else None
        extra["uncertainty"] = uncertainty(spread, pred, task)
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)


# ------------------------------------------------------------------ building and caching


def predict(model, crops, ckpt: dict, progress=None) -> tuple[np.ndarray, np.ndarray | None]:
    """(outputs, spread) of `model` over uint8 crops, decoded into the task's units (`Task.decode`),
    as the catalogue stores them. The spread (`evaluate.predict(spread=True)`) is, for an ensemble,
    the standard deviation of its members' predictions without test-time augmentation (no extra
    cost: the members run anyway); for a single model, that of its 8 test-time views, which costs 8
    passes, and its outputs are then the mean of the 8 views (TTA), not of one. A classifier gets
    no spread (None): its class probabilities are its uncertainty."""
    task = targets.of_checkpoint(ckpt)
    if task.kind == "classification":
        return task.decode(evaluate.predict(model, crops, ckpt["input_size"], progress=progress)), None
    single = len(models.members(model)) == 1
    raw, spread = evaluate.predict(model, crops, ckpt["input_size"], tta=single, progress=progress,
                                   spread=True)
    return task.decode(raw), task.decode_spread(spread)


def outputs(model, crops, ckpt: dict, progress=None) -> pd.DataFrame:
    """`predict` as the cache keeps it: one column per output, then `spread <output>` columns."""
    task = targets.of_checkpoint(ckpt)
    pred, spread = predict(model, crops, ckpt, progress)
    frame = pd.DataFrame(pred, columns=list(task.columns))
    if spread is not None:
        frame[[col(c, "spread") for c in task.columns]] = spread
    return frame


def _once_frame(path: Path, compute, progress) -> pd.DataFrame:
    return computed.once(path, compute, pd.read_parquet, lambda frame, f: frame.to_parquet(f), progress)


def held_out_outputs(subject: computed.Subject, crops, model, progress=None) -> pd.DataFrame:
    """`outputs` of the checkpoint's held-out galaxies (its split of `subject.galaxies`), computed
    once (`computed.once`): the galaxies Evaluate and Compare score, ready long before the rest."""
    held = checkpoint.split(subject.galaxies, subject.ckpt)[1]
    path = subject.file("predictions", f"-held-{computed.rows_key(held)}-v{VERSION}.parquet")
    return _once_frame(path, lambda report: outputs(model, crops[held], subject.ckpt, report), progress)


def all_outputs(subject: computed.Subject, crops, model, progress=None) -> pd.DataFrame:
    """`outputs` of every galaxy, computed once: the held-out ones first (`held_out_outputs`, reused),
    then the rest."""
    held = checkpoint.split(subject.galaxies, subject.ckpt)[1]
    rest = np.setdiff1d(np.arange(len(subject.galaxies)), held)
    n = len(subject.galaxies)

    def compute(report):
        first = held_out_outputs(subject, crops, model, lambda d, t: report(d, n))
        second = outputs(model, crops[rest], subject.ckpt, lambda d, t: report(len(held) + d, n))
        frame = pd.concat([first, second], ignore_index=True)
        return frame.iloc[np.argsort(np.concatenate([held, rest]), kind="stable")].reset_index(drop=True)
    return _once_frame(subject.file("predictions", f"-v{VERSION}.parquet"), compute, progress)


def table(galaxies: data.GalaxySet, frame: pd.DataFrame, task: targets.Task) -> pd.DataFrame:
    """The enriched table of the `outputs` frame of `galaxies` (row for row), beside their labels
    (`Task.comparable`: in the outputs' units)."""
    truth = None if galaxies.labels is None else task.comparable(galaxies.labels)
    predictions = evaluate.predictions_table(galaxies.ids, frame[list(task.columns)].to_numpy(), truth,
                                             task.columns)
    spreads = frame[[c for c in frame.columns if c.startswith("spread ")]].reset_index(drop=True)
    return enrich(pd.concat([predictions, spreads], axis=1), task)


def build(subject: computed.Subject, crops, model, progress=None) -> pd.DataFrame:
    """The enriched table of every galaxy of `subject` (`all_outputs`, on disk after once)."""
    return table(subject.galaxies, all_outputs(subject, crops, model, progress), targets.of_checkpoint(subject.ckpt))


def held_out_table(subject: computed.Subject, crops, model, progress=None) -> tuple[pd.DataFrame, np.ndarray]:
    """(the enriched table of the held-out galaxies alone, their rows in `subject.galaxies`)."""
    held = checkpoint.split(subject.galaxies, subject.ckpt)[1]
    frame = held_out_outputs(subject, crops, model, progress)
    return table(subject.galaxies.subset(held), frame, targets.of_checkpoint(subject.ckpt)), held


def embeddings(subject: computed.Subject, crops, model, progress=None) -> np.ndarray:
    """neighbours.embed of every galaxy, computed once (`computed.once`, in `embeddings/`)."""
    return computed.once(subject.file("embeddings"),
                         lambda report: neighbours.embed(model, crops, subject.ckpt["input_size"], progress=report),
                         computed.npy, computed.save_npy, progress)


def export(table: pd.DataFrame, task: targets.Task = targets.TREE) -> pd.DataFrame:
    """The predictions table without the derived columns (what evaluate.predictions_table wrote),
    with the spread of each output and `uncertainty` when the table has them."""
    crowd = [col(c, "crowd") for c in task.columns] + ["rmse"] if has_crowd(table) else []
    spread = [col(c, "spread") for c in task.columns] + ["uncertainty"] if has_spread(table) else []
    return table[["GalaxyID", *task.columns, *crowd, *spread]]


def summaries(table: pd.DataFrame, task: targets.Task = targets.TREE, rows=None) -> list[str]:
    """One line per galaxy (of `rows`): the model's most likely path through the tree (tree.summary),
    its targets ± spread beside the true values, or its most probable class beside the true one."""
    rows = np.arange(len(table)) if rows is None else np.asarray(rows)
    pred = values(table, task.columns, rows=rows)
    if task.kind == "tree":
        return [tree.summary(w) for w in pred]
    nan = np.full(pred.shape, np.nan)
    truth = values(table, task.columns, "crowd", rows) if has_crowd(table) else nan
    if task.kind == "classification":
        return [f"{task.columns[p.argmax()]} {p.max():.0%}" + ("" if np.isnan(t).any() else
                f" · true {task.columns[int(t.argmax())]}") for p, t in zip(pred, truth)]
    spread = values(table, task.columns, "spread", rows) if has_spread(table) else nan
    return [" · ".join(f"{c} {task.format(c, p[i], s[i])}" +
                       ("" if np.isnan(t[i]) else f" (true {task.format(c, t[i])})") for i, c in enumerate(task.columns))
            for p, s, t in zip(pred, spread, truth)]


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


def column_labels(table: pd.DataFrame, task: targets.Task = targets.TREE) -> dict[str, str]:
    """Readable names of the columns one can filter or sort on, e.g. 'crowd conditional · Q4 spiral'.
    Crowd columns without a single label (partial labels) are left out."""
    if task.kind != "tree":
        return _target_labels(table, task)
    out = {}
    crowd = has_crowd(table)
    if crowd:
        out["disagreement"] = "confident disagreement (crowd vs model)"
        out["rmse"] = "per-galaxy RMSE (crowd vs model)"
    if has_spread(table):
        out["uncertainty"] = "uncertainty: the model's spread (descending: least certain first)"
    for source in ("crowd", "model", "spread") if crowd else ("model", "spread"):
        for kind in ("conditional", "weighted"):
            for c in tree.COLUMNS:
                out[col(c, source, kind)] = f"{source} {kind} · Q{tree.QUESTION_OF_COLUMN[c]} " \
                                            f"{tree.ANSWER_BY_COLUMN[c].short}"
        if source != "spread":
            for q in tree.QUESTIONS:
                out[qcol("reach", q.number, source)] = f"{source} reach · Q{q.number} {q.short}"
    return {k: v for k, v in out.items() if _has_values(table, k)}


def unit_of(column: str, task: targets.Task) -> str:
    """The units of a table column's values: a target's (its model, true, spread and error columns);
    the targets' shared units for the per-galaxy `rmse` and `uncertainty` of a regression; else ""."""
    if task.kind != "regression":
        return ""
    if column in ("rmse", "uncertainty"):
        return task.shared_unit
    return next((task.unit(c) for c in task.columns if column in (col(c), col(c, "crowd"), col(c, "spread"),
                                                                   f"error {c}")), "")


def _has_values(table, column: str) -> bool:
    """Whether `column` holds a value (a large_catalog.Catalogue has left out its empty columns)."""
    return column in table and (not isinstance(table, pd.DataFrame) or table[column].notna().any())


def _target_labels(table: pd.DataFrame, task: targets.Task) -> dict[str, str]:
    crowd, out = has_crowd(table), {}
    if crowd:
        out["rmse"] = "per-galaxy error: RMSE over the targets (model vs true)" if task.kind == "regression" \
            else "per-galaxy RMSE of the class probabilities (model vs true)"
    if "uncertainty" in table:
        out["uncertainty"] = ("uncertainty: 1 − top probability" if task.kind == "classification" else
                              "uncertainty: the model's spread") + " (descending: least certain first)"
    if task.kind == "classification" and crowd:
        out["p true class"] = "model probability of the true class"
    for c in task.columns:
        name = f"probability {c}" if task.kind == "classification" else c + (f" ({task.unit(c)})" if task.unit(c) else "")
        out[col(c)] = f"model · {name}"
        if crowd and task.kind == "regression":
            out[col(c, "crowd")] = f"true · {c}"
            out[f"error {c}"] = f"error · {c} (model − true)"
        if has_spread(table):
            out[col(c, "spread")] = f"spread · {c}"
    return out


def bounds(values: np.ndarray) -> tuple[float, float, float]:
    """(lo, hi, step) of a filter slider over `values`: 50 to 500 steps of a power of ten across
    the finite values (0.01 for fractions, 0.0001 for spreads of a few hundredths), lo < hi."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return 0.0, 1.0, 0.01
    step = 10.0 ** math.floor(math.log10(max(finite.max() - finite.min(), 0.005) / 50))
    lo = math.floor(round(finite.min() / step, 6)) * step
    hi = max(math.ceil(round(finite.max() / step, 6)) * step, lo + step)
    return round(lo, 12), round(hi, 12), step


def _matching(table, ranges) -> np.ndarray:
    keep = np.ones(len(table), dtype=bool)
    for r in ranges:
        v = table[r.column].to_numpy()
        keep &= (v >= r.lo) & (v <= r.hi)
    return np.flatnonzero(keep)


def _sort_keys(values: np.ndarray, rows: np.ndarray, descending: bool) -> np.ndarray | None:
    """Unique uint64 keys whose ascending order is the sort of `values` (float32 or narrower) with
    NaN last and ties in row order: the value's bits, made monotonic, above the row number. None for
    wider values (ids), which are sorted as they are."""
    if values.dtype.itemsize > 4 or len(rows) >= 2 ** 32:
        return None
    v = values.astype(np.float32) + np.float32(0)  # -0.0 -> 0.0
    bits = (-v if descending else v).view(np.uint32)
    ordered = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))
    ordered[np.isnan(v)] = np.uint32(0xFFFFFFFF)
    return (ordered.astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)


def select(table: pd.DataFrame, ranges=(), sort_by: str | None = None,
           descending: bool = True) -> np.ndarray:
    """Row positions passing every Range, ordered by `sort_by` (NaN last, ties in row order)."""
    return page(table, ranges, sort_by, descending)[1]


def page(table, ranges=(), sort_by: str | None = None, descending: bool = True, start: int = 0,
         count: int | None = None) -> tuple[int, np.ndarray]:
    """(rows matching, their positions start … start + count in `select`'s order): one page of a
    filtered, sorted catalogue without sorting all of it (a partial sort: a page of a million rows
    takes milliseconds)."""
    rows = _matching(table, ranges)
    total = len(rows)
    end = total if count is None else min(total, start + count)
    if start >= end:
        return total, rows[:0]
    if not sort_by:
        return total, rows[start:end]
    values = table[sort_by].to_numpy()[rows]
    keys = _sort_keys(values, rows, descending)
    if keys is None:
        order = np.argsort(-values if descending else values, kind="stable")
        return total, rows[order[start:end]]
    if end - start < total:
        keys = np.partition(keys, [start, end - 1])[start:end]
    return total, (np.sort(keys)[-(end - start):] & np.uint64(0xFFFFFFFF)).astype(np.int64)


def confusion(table: pd.DataFrame, number: int, rows=None, confident: bool = False,
              min_reach: float = LOW_REACH) -> pd.DataFrame:
    """Counts of (crowd top answer, model top answer) for question `number`, over galaxies where
    the crowd reached it with weight >= min_reach (and, if `confident`, ptop >= CONFIDENT)."""
    answers = [a.short for a in tree.QUESTION_BY_NUMBER[number].answers]
    t = table if rows is None else table.iloc[rows]
    keep = t[qcol("reach", number, "crowd")].to_numpy() >= min_reach  # NaN (unknown): never
    keep &= (t[qcol("top", number, "crowd")].to_numpy() >= 0) & (t[qcol("top", number)].to_numpy() >= 0)
    if confident:
        keep &= t[qcol("ptop", number, "crowd")].to_numpy() >= CONFIDENT
    crowd, model = t[qcol("top", number, "crowd")].to_numpy()[keep], t[qcol("top", number)].to_numpy()[keep]
    counts = np.zeros((len(answers), len(answers)), dtype=np.int64)
    np.add.at(counts, (crowd, model), 1)
    return pd.DataFrame(counts, index=pd.Index(answers, name="crowd"),
                        columns=pd.Index(answers, name="model"))


def calibration(table: pd.DataFrame, task: targets.Task = targets.TREE, rows=None,
                bins: int = 10) -> tuple[pd.DataFrame, float]:
    """evaluate.calibration of the model's spread against its actual errors over `rows` (positions;
    default all): every known (galaxy, output) cell, binned by spread, and Spearman's rank
    correlation of spread and absolute error."""
    spread, pred, truth = (values(table, task.columns, s, rows) for s in ("spread", "model", "crowd"))
    return evaluate.calibration(spread, pred, truth, bins)


def class_confusion(table: pd.DataFrame, task: targets.Task, rows=None) -> pd.DataFrame:
    """A classifier's counts of (true class, most probable class) over `rows` with a known class."""
    t = table if rows is None else table.iloc[rows]
    true, model = t["crowd class"].to_numpy(), t["class"].to_numpy()
    counts = np.zeros((len(task.columns), len(task.columns)), dtype=np.int64)
    np.add.at(counts, (true[true >= 0], model[true >= 0]), 1)
    return pd.DataFrame(counts, index=pd.Index(task.columns, name="true"),
                        columns=pd.Index(task.columns, name="model"))


def majority_class(classes: np.ndarray) -> int:
    """The most frequent of known class indices (NaN unknown): the majority-class baseline."""
    known = classes[~np.isnan(classes)].astype(int)
    return int(np.bincount(known).argmax()) if len(known) else 0


def disputed(table: pd.DataFrame, row: int) -> tuple[int, str, str] | None:
    """(question, the crowd's top answer column, the model's) where the galaxy in `row` has its
    largest confident disagreement (`disagreement Q`), or None without crowd answers there."""
    if "disagreement Q" not in table:
        return None
    number = int(table["disagreement Q"].iat[row])
    crowd, model = (int(table[qcol("top", number, source)].iat[row]) for source in ("crowd", "model"))
    if crowd < 0 or model < 0:
        return None
    answers = tree.QUESTION_BY_NUMBER[number].answers
    return number, answers[crowd].column, answers[model].column


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
    """Long table (question, answer, share, galaxies): how often each answer is the top one, among
    galaxies whose question was reached with weight >= min_reach; questions that none reached, or
    that have no labels (partial labels), are left out."""
    out = []
    for q in tree.QUESTIONS:
        top = table[qcol("top", q.number, source)].to_numpy()
        top = top[(table[qcol("reach", q.number, source)].to_numpy() >= min_reach) & (top >= 0)]
        if not len(top):  # nobody reached it, or no labels for it (partial labels)
            continue
        counts = np.bincount(top, minlength=len(q.answers))
        for a, n in zip(q.answers, counts):
            out.append({"question": q.label, "answer": a.short,
                        "share": n / len(top), "galaxies": int(n)})
    return pd.DataFrame(out, columns=["question", "answer", "share", "galaxies"])


def most_confident(table: pd.DataFrame, source: str = "crowd") -> pd.Series:
    """Row position of the galaxy with the largest weighted value of each answer (confident *and*
    reached), indexed by answer column; -1 for an answer nobody has a label for."""
    w = weighted(table, source)
    known = ~np.isnan(w).all(axis=0)
    return pd.Series(np.where(known, np.nan_to_num(w, nan=-1.0).argmax(axis=0), -1), index=list(tree.COLUMNS))


def surest(table: pd.DataFrame, column: str, k: int = 3, source: str = "crowd") -> list[int]:
    """Row positions of the (up to) `k` galaxies with the largest weighted value of one answer,
    largest first; galaxies nobody gave that answer (0, or unknown) are no example of it."""
    w = np.nan_to_num(values(table, [column], source)[:, 0], nan=0.0)
    rows = np.argsort(-w, kind="stable")[:k]
    return [int(r) for r in rows if w[r] > 0]


def mean_image(crops, chunk: int = 2048) -> np.ndarray:
    """Mean crop, uint8, read in chunks (the crops may be a memory-mapped cache)."""
    total = np.zeros(crops.shape[1:], np.float64)
    for i in range(0, len(crops), chunk):
        total += np.asarray(crops[i:i + chunk], np.float64).sum(axis=0)
    return (total / max(len(crops), 1)).clip(0, 255).astype(np.uint8)
