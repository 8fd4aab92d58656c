"""Two models side by side over one data folder: RMSE overall, per question and per answer, each
difference with a paired bootstrap interval, and the galaxies where the two disagree most.

Scores come from galaxies neither model trained on: the intersection of the two checkpoints'
held-out splits (`checkpoint.split`). When it is empty (a student distilled on every galaxy, say),
the second model's held-out galaxies are used instead, with a warning naming the model that saw them.

The bootstrap resamples galaxies, the same draw for both models (paired): a difference whose 95%
interval excludes 0 is more than the noise of which galaxies happened to be held out.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog, checkpoint, data, evaluate, targets, tree

ROUNDS = 1000       # bootstrap resamples
LEVEL = 0.95        # of the bootstrap interval
TOP = 10            # disagreeing galaxies listed


@dataclass
class Comparison:
    names: tuple[str, str]   # the two checkpoints, A then B
    task: targets.Task
    galaxies: int            # compared galaxies
    basis: str               # which galaxies, in words
    warning: str | None      # set when a model saw the compared galaxies in training
    scores: pd.DataFrame     # level, name, galaxies, RMSE A, RMSE B, B − A, low, high, verdict
    disagreements: pd.DataFrame  # the TOP galaxies by `difference`, largest first

    @property
    def overall(self) -> pd.Series:
        return self.scores[self.scores.level == "overall"].iloc[0]

    @property
    def per_question(self) -> pd.DataFrame:
        """One row per question (empty for a model of other targets)."""
        return self.scores[self.scores.level == "question"].reset_index(drop=True)

    @property
    def per_answer(self) -> pd.DataFrame:
        """One row per output: the tree's 37 answers, or the targets or classes."""
        return self.scores[self.scores.level == "answer"].reset_index(drop=True)


def same_task(ckpt_a: dict, ckpt_b: dict, path_a, path_b) -> targets.Task:
    """The task both checkpoints share; CheckpointError naming both files when they predict
    different outputs."""
    task_a, task_b = targets.of_checkpoint(ckpt_a), targets.of_checkpoint(ckpt_b)
    if (task_a.kind, task_a.columns) != (task_b.kind, task_b.columns):
        def what(task):
            return "the Galaxy Zoo tree's 37 answers" if task.kind == "tree" else \
                f"{task.kind} of {', '.join(task.columns)}"
        raise checkpoint.CheckpointError(
            f"{path_a} predicts {what(task_a)} but {path_b} predicts {what(task_b)}: only models of the "
            f"same outputs compare; choose two checkpoints trained for the same task")
    return task_a


def held_out(held_a: np.ndarray, held_b: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, str, str | None]:
    """(rows, basis, warning) from two boolean masks of the galaxies each model held out: the rows
    neither trained on; when there are none, B's held-out rows (A's if B has none) and a warning
    naming the model that saw them. DataError when neither holds any galaxy out."""
    both = np.flatnonzero(held_a & held_b)
    if len(both):
        return both, f"{len(both):,} galaxies neither model trained on (both checkpoints' held-out splits)", None
    for held, mine, other in ((held_b, names[1], names[0]), (held_a, names[0], names[1])):
        if held.any():
            rows = np.flatnonzero(held)
            return rows, f"{len(rows):,} galaxies held out by {mine} only", (
                f"No galaxy here is held out by both models: {other} trained on all {len(rows):,} galaxies "
                f"held out by {mine}, so its scores here are optimistic (seen in training) and the "
                f"comparison favours it.")
    raise data.DataError(f"neither {names[0]} nor {names[1]} holds any of these galaxies out: both "
                         f"trained on all of them, so no score here is fair to either")


def _groups(task: targets.Task) -> tuple[list[tuple[str, str]], np.ndarray]:
    """([(level, name)], membership (K outputs, G groups)): overall, per question (tree), per output."""
    k = len(task.columns)
    names, slices = [("overall", "all")], [slice(0, k)]
    if task.kind == "tree":
        names += [("question", q.label) for q in tree.QUESTIONS]
        slices += [tree.SLICES[q.number] for q in tree.QUESTIONS]
    names += [("answer", tree.answer_label(c) if task.kind == "tree" else c) for c in task.columns]
    slices += [slice(i, i + 1) for i in range(k)]
    members = np.zeros((k, len(slices)))
    for g, s in enumerate(slices):
        members[s, g] = 1
    return names, members


def score_table(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray, task: targets.Task,
                rounds: int = ROUNDS, seed: int = 0) -> pd.DataFrame:
    """RMSE of A and B per group (overall, question, output) over the known cells (NaN truth is
    unknown, as in `evaluate.scores`), B − A and its paired bootstrap interval, and a verdict."""
    names, members = _groups(task)
    known = ~np.isnan(np.asarray(truth, np.float64))
    counts = known.astype(np.float64) @ members                          # (n, G) known cells per galaxy
    sums = [np.where(known, (np.asarray(p, np.float64) - truth) ** 2, 0) @ members for p in (pred_a, pred_b)]
    n = len(truth)
    assert n, "no galaxies to compare (held_out never gives none)"
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=rounds)  # (rounds, n)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group without labels: nan
        rmse = [np.sqrt(s.sum(0) / counts.sum(0)) for s in sums]
        boot = [np.sqrt((weights @ s) / (weights @ counts)) for s in sums]
        tail = (1 - LEVEL) / 2 * 100
        low, high = np.nanpercentile(boot[1] - boot[0], [tail, 100 - tail], axis=0)

    def verdict(diff, lo, hi):
        if np.isnan(diff):
            return "no labels"
        if diff == lo == hi == 0:
            return "no difference"
        return "B better" if hi < 0 else "A better" if lo > 0 else "within noise"
    table = pd.DataFrame({"level": [g[0] for g in names], "name": [g[1] for g in names],
                          "galaxies": (counts > 0).sum(0), "RMSE A": rmse[0], "RMSE B": rmse[1],
                          "B − A": rmse[1] - rmse[0], "low": low, "high": high})
    table["verdict"] = [verdict(*r) for r in table[["B − A", "low", "high"]].to_numpy()]
    return table


def says(pred: np.ndarray, task: targets.Task) -> list[str]:
    """One line per galaxy of what a model predicts: its most likely path through the tree, its
    targets, or its most probable class."""
    if task.kind == "tree":
        return [tree.summary(w) for w in pred]
    if task.kind == "classification":
        return [f"{task.columns[p.argmax()]} {p.max():.0%}" for p in pred]
    return [" · ".join(f"{c} {task.format(c, v)}" for c, v in zip(task.columns, p)) for p in pred]


def top_disagreement(pred_a: np.ndarray, pred_b: np.ndarray) -> list[str]:
    """Per galaxy (tree models), the most reached question whose top answers differ, e.g.
    'Q1: smooth vs features/disk (reached by 100%)', or '' when they agree everywhere."""
    cond = [np.nan_to_num(tree.to_conditional(p), nan=-1.0) for p in (pred_a, pred_b)]
    reach = np.minimum(tree.reach(pred_a), tree.reach(pred_b))
    out = []
    for g in range(len(pred_a)):
        found = ""
        for i in np.argsort(-reach[g], kind="stable"):
            q = tree.QUESTIONS[i]
            top_a, top_b = (c[g, tree.SLICES[q.number]].argmax() for c in cond)
            if top_a != top_b:
                found = (f"Q{q.number}: {q.answers[top_a].short} vs {q.answers[top_b].short} "
                         f"(reached by {reach[g, i]:.0%})")
                break
        out.append(found)
    return out


def disagreement_table(ids, pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray,
                       task: targets.Task, top: int = TOP) -> pd.DataFrame:
    """The `top` galaxies where A and B differ most, by `difference`: the root mean square of
    A − B over the outputs; with each model's reading (`says`), its per-galaxy RMSE against the
    labels and, for tree models, the most reached question whose top answers differ."""
    diff = np.sqrt(np.mean((np.asarray(pred_a, np.float64) - pred_b) ** 2, axis=1))
    order = np.argsort(-diff, kind="stable")[:top]
    a, b, t = pred_a[order], pred_b[order], truth[order]
    with warnings.catch_warnings():  # a galaxy without labels: nan
        warnings.simplefilter("ignore", RuntimeWarning)
        errors = [np.sqrt(np.nanmean((p - t) ** 2, axis=1)) for p in (a, b)]
    table = pd.DataFrame({"GalaxyID": np.asarray(ids, np.int64)[order], "difference": diff[order],
                          "error A": errors[0], "error B": errors[1], "A says": says(a, task),
                          "B says": says(b, task)})
    if task.kind == "tree":
        table["top answers"] = top_disagreement(a, b)
    return table


def compare(ids, pred_a, pred_b, truth, task: targets.Task, names: tuple[str, str], basis: str,
            warning: str | None = None, top: int = TOP, rounds: int = ROUNDS) -> Comparison:
    """The comparison over the galaxies given (ids, both models' decoded outputs, the labels as
    `Task.comparable` gives them)."""
    return Comparison(names, task, len(ids), basis, warning, score_table(pred_a, pred_b, truth, task, rounds),
                      disagreement_table(ids, pred_a, pred_b, truth, task, top))


def _aligned(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in A, positions in B) of the galaxies both hold, in A's order."""
    where_b = pd.Index(ids_b).get_indexer(ids_a)
    both = np.flatnonzero(where_b >= 0)
    return both, where_b[both]


def of_tables(table_a: pd.DataFrame, table_b: pd.DataFrame, held_a, held_b, task: targets.Task,
              names: tuple[str, str], top: int = TOP) -> Comparison:
    """Compare two catalogues of one folder (catalog.build; A's holds the labels) given the rows
    each checkpoint held out."""
    pos_a, pos_b = _aligned(table_a.GalaxyID.to_numpy(), table_b.GalaxyID.to_numpy())
    mask_a, mask_b = (np.isin(pos, held) for pos, held in ((pos_a, held_a), (pos_b, held_b)))
    rows, basis, warning = held_out(mask_a, mask_b, names)
    rows_a, rows_b = pos_a[rows], pos_b[rows]
    return compare(table_a.GalaxyID.to_numpy()[rows_a], catalog.values(table_a, task.columns, rows=rows_a),
                   catalog.values(table_b, task.columns, rows=rows_b),
                   catalog.values(table_a, task.columns, "crowd", rows_a), task, names, basis, warning, top)


def names_of(path_a, path_b) -> tuple[str, str]:
    """The two checkpoints' file names, or their paths when the names are the same."""
    a, b = Path(path_a), Path(path_b)
    return (a.name, b.name) if a.name != b.name else (str(a), str(b))


def run(path_a, path_b, folder, labels=None, tta: bool = True, top: int = TOP, progress=None,
        device="cpu") -> Comparison:
    """Load both checkpoints, read `folder` (labels as `checkpoint.data_for`: the folder's Kaggle
    answers, or the CSV `labels`) as each was trained on, and compare them on the galaxies neither
    trained on, with 8-view TTA unless `tta` is False."""
    model_a, ckpt_a = checkpoint.load(path_a)
    model_b, ckpt_b = checkpoint.load(path_b)
    task = same_task(ckpt_a, ckpt_b, path_a, path_b)
    if task.kind != "tree" and labels is None:
        raise data.DataError(f"{path_a} and {path_b} predict {', '.join(task.label_columns)}: pass "
                             f"their labels CSV")
    names = names_of(path_a, path_b)
    read = {}
    def alike(ckpt):  # one read when both crop and frame alike
        return checkpoint.preprocess_of(ckpt), checkpoint.framing_of(ckpt)
    for ckpt in (ckpt_a, ckpt_b):
        if alike(ckpt) not in read:
            read[alike(ckpt)] = checkpoint.data_for(ckpt, folder, labels=True, label_file=labels, progress=progress)
    data_a, data_b = (read[alike(c)] for c in (ckpt_a, ckpt_b))
    pos_a, pos_b = _aligned(data_a.galaxies.ids, data_b.galaxies.ids)
    held_a = np.isin(pos_a, checkpoint.split(data_a.galaxies, ckpt_a)[1])
    held_b = np.isin(pos_b, checkpoint.split(data_b.galaxies, ckpt_b)[1])
    rows, basis, warning = held_out(held_a, held_b, names)
    pred = [task.decode(evaluate.predict(model, d.crops, ckpt["input_size"], tta=tta, index=pos[rows],
                                         progress=progress, device=device))
            for model, ckpt, d, pos in ((model_a, ckpt_a, data_a, pos_a), (model_b, ckpt_b, data_b, pos_b))]
    truth = task.comparable(data_a.galaxies.labels)[pos_a[rows]]
    return compare(data_a.galaxies.ids[pos_a[rows]], *pred, truth, task, names, basis, warning, top)
