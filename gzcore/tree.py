"""The Galaxy Zoo 2 decision tree as the 2014 Kaggle labels encode it.

One source of truth for the 11 questions and 37 answers. Torch-free: plain data plus numpy helpers.

The labels are *weighted* vote fractions: each answer's fraction is multiplied by the weight with
which its question is reached ("reach"). Two quirks of the labels as Kaggle released them: Q5 is
reached with weight Class2.2 (both Q4 answers lead there), and Q6 sums to 1 for every galaxy (not
1 - Class1.3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Answer:
    column: str      # Kaggle column id, e.g. "Class1.2"
    short: str       # short label for charts, e.g. "features/disk"
    long: str        # the volunteers' wording
    leads_to: int | None  # next question number, None = end of the tree


@dataclass(frozen=True)
class Question:
    number: int
    short: str
    text: str        # the volunteers' wording
    answers: tuple[Answer, ...]
    reached_by: str | None  # column whose weighted value is this question's reach; None = always 1

    @property
    def label(self) -> str:
        """Short label for charts and tables, e.g. "Q3 bar"."""
        return f"Q{self.number} {self.short}"

    @property
    def title(self) -> str:
        """The question as volunteers read it, numbered: "Q3. Is there a sign of a bar ...?"."""
        return f"Q{self.number}. {self.text}"


def _q(number, short, text, reached_by, answers):
    cols = [Answer(f"Class{number}.{i + 1}", s, l, nxt) for i, (s, l, nxt) in enumerate(answers)]
    return Question(number, short, text, tuple(cols), reached_by)


QUESTIONS: tuple[Question, ...] = (
    _q(1, "shape", "Is the galaxy simply smooth and rounded, with no sign of a disk?", None, [
        ("smooth", "Smooth", 7),
        ("features/disk", "Features or disk", 2),
        ("star/artifact", "Star or artifact", None)]),
    _q(2, "edge-on", "Could this be a disk viewed edge-on?", "Class1.2", [
        ("edge-on", "Yes", 9),
        ("not edge-on", "No", 3)]),
    _q(3, "bar", "Is there a sign of a bar feature through the centre of the galaxy?", "Class2.2", [
        ("bar", "Bar", 4),
        ("no bar", "No bar", 4)]),
    _q(4, "spiral", "Is there any sign of a spiral arm pattern?", "Class2.2", [
        ("spiral", "Spiral", 10),
        ("no spiral", "No spiral", 5)]),
    _q(5, "bulge", "How prominent is the central bulge, compared with the rest of the galaxy?",
       "Class2.2", [
        ("no bulge", "No bulge", 6),
        ("noticeable bulge", "Just noticeable", 6),
        ("obvious bulge", "Obvious", 6),
        ("dominant bulge", "Dominant", 6)]),
    _q(6, "odd", "Is there anything odd?", None, [
        ("odd", "Yes", 8),
        ("not odd", "No", None)]),
    _q(7, "roundness", "How rounded is it?", "Class1.1", [
        ("round", "Completely round", 6),
        ("in between", "In between", 6),
        ("cigar", "Cigar-shaped", 6)]),
    _q(8, "odd feature", "Is the odd feature a ring, or is the galaxy disturbed or irregular?",
       "Class6.1", [
        ("ring", "Ring", None),
        ("lens/arc", "Lens or arc", None),
        ("disturbed", "Disturbed", None),
        ("irregular", "Irregular", None),
        ("other", "Other", None),
        ("merger", "Merger", None),
        ("dust lane", "Dust lane", None)]),
    _q(9, "edge-on bulge", "Does the galaxy have a bulge at its centre? If so, what shape?",
       "Class2.1", [
        ("rounded bulge", "Rounded", 6),
        ("boxy bulge", "Boxy", 6),
        ("no bulge (edge-on)", "No bulge", 6)]),
    _q(10, "arm winding", "How tightly wound do the spiral arms appear?", "Class4.1", [
        ("tight", "Tight", 11),
        ("medium", "Medium", 11),
        ("loose", "Loose", 11)]),
    _q(11, "arm count", "How many spiral arms are there?", "Class4.1", [
        ("1 arm", "1", 5),
        ("2 arms", "2", 5),
        ("3 arms", "3", 5),
        ("4 arms", "4", 5),
        ("more than 4 arms", "More than four", 5),
        ("can't tell", "Can't tell", 5)]),
)

COLUMNS: tuple[str, ...] = tuple(a.column for q in QUESTIONS for a in q.answers)
N_ANSWERS = len(COLUMNS)  # 37


def _slices() -> dict[int, slice]:
    out, start = {}, 0
    for q in QUESTIONS:
        out[q.number] = slice(start, start + len(q.answers))
        start += len(q.answers)
    return out


SLICES: dict[int, slice] = _slices()
COLUMN_INDEX: dict[str, int] = {c: i for i, c in enumerate(COLUMNS)}
QUESTION_BY_NUMBER: dict[int, Question] = {q.number: q for q in QUESTIONS}
ANSWER_BY_COLUMN: dict[str, Answer] = {a.column: a for q in QUESTIONS for a in q.answers}
QUESTION_OF_COLUMN: dict[str, int] = {a.column: q.number for q in QUESTIONS for a in q.answers}


def answer_label(column: str) -> str:
    """Short label of one answer column for charts and tables, e.g. "Q3 bar"."""
    return f"Q{QUESTION_OF_COLUMN[column]} {ANSWER_BY_COLUMN[column].short}"


# Order in which weighted values can be built: each question after the one holding its reach column.
BUILD_ORDER: tuple[int, ...] = (1, 6, 2, 7, 8, 3, 4, 5, 9, 10, 11)


def reach(weighted: np.ndarray) -> np.ndarray:
    """Per-question reach weights (N, 11) of weighted label rows (N, 37), in question order."""
    w = np.atleast_2d(np.asarray(weighted, dtype=np.float64))
    cols = [np.ones(len(w)) if q.reached_by is None else w[:, COLUMN_INDEX[q.reached_by]]
            for q in QUESTIONS]
    return np.stack(cols, axis=1)


def to_conditional(weighted: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Weighted fractions -> per-question distributions given the question was asked.

    A question nobody reached (reach < eps) gets NaN: there is no conditional answer to show.
    """
    w = np.atleast_2d(np.asarray(weighted, dtype=np.float64))
    r = reach(w)
    out = np.empty_like(w)
    for i, q in enumerate(QUESTIONS):
        s = SLICES[q.number]
        rq = r[:, i:i + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, s] = np.where(rq > eps, w[:, s] / np.maximum(rq, eps), np.nan)
    return out


def to_weighted(conditional: np.ndarray) -> np.ndarray:
    """Per-question distributions -> weighted fractions, the inverse of `to_conditional`.

    NaN (unreached) questions are treated as zero weight.
    """
    c = np.nan_to_num(np.atleast_2d(np.asarray(conditional, dtype=np.float64)))
    out = np.zeros_like(c)
    for number in BUILD_ORDER:
        q = QUESTION_BY_NUMBER[number]
        s = SLICES[number]
        weight = 1.0 if q.reached_by is None else out[:, COLUMN_INDEX[q.reached_by]][:, None]
        out[:, s] = c[:, s] * weight
    return out


@dataclass(frozen=True)
class TreeProblem:
    row: int          # 0-based row in the matrix given
    question: int
    message: str


def answered(weighted: np.ndarray) -> dict[int, int]:
    """Rows whose answers to each question are all known (not NaN), by question number: partial
    labels leave some questions, or all, at 0."""
    known = ~np.isnan(weighted)
    return {q.number: int(known[:, SLICES[q.number]].all(axis=1).sum()) for q in QUESTIONS}


def check_labels(weighted: np.ndarray, tol: float = 1e-3, ids=None,
                 unknown_ok: bool = False) -> list[TreeProblem]:
    """Every way a label matrix breaks the tree: NaN, values outside [0, 1], question sums that
    differ from their reach by more than `tol`. Empty list = the labels obey the tree.
    With `unknown_ok`, NaN cells are unknown answers (partial labels): a question's sum is then
    checked where its answers and its reach are all known."""
    w = np.atleast_2d(np.asarray(weighted, dtype=np.float64))
    if w.shape[1] != N_ANSWERS:
        raise ValueError(f"expected {N_ANSWERS} answer columns, got {w.shape[1]}")
    name = (lambda i: f"GalaxyID {ids[i]}") if ids is not None else (lambda i: f"row {i}")
    problems: list[TreeProblem] = []
    bad_nan = np.zeros(len(w), bool) if unknown_ok else np.isnan(w).any(axis=1)
    bad_range = ((w < -tol) | (w > 1 + tol)).any(axis=1) & ~bad_nan
    for i in np.flatnonzero(bad_nan):
        cols = [COLUMNS[j] for j in np.flatnonzero(np.isnan(w[i]))]
        problems.append(TreeProblem(int(i), QUESTION_OF_COLUMN[cols[0]] if cols else 0,
                                    f"{name(i)}: missing value in {', '.join(cols)}"))
    for i in np.flatnonzero(bad_range):
        cols = [COLUMNS[j] for j in np.flatnonzero((w[i] < -tol) | (w[i] > 1 + tol))]
        problems.append(TreeProblem(int(i), QUESTION_OF_COLUMN[cols[0]],
                                    f"{name(i)}: value outside [0, 1] in {', '.join(cols)}"))
    r = reach(w)
    ok = ~(bad_nan | bad_range)
    for qi, q in enumerate(QUESTIONS):
        total = w[:, SLICES[q.number]].sum(axis=1)  # NaN where an answer is unknown
        off = ok & ~np.isnan(total - r[:, qi]) & (np.abs(total - r[:, qi]) > tol)
        for i in np.flatnonzero(off):
            expected = "1" if q.reached_by is None else f"{q.reached_by} = {r[i, qi]:.4f}"
            problems.append(TreeProblem(int(i), q.number,
                                        f"{name(i)}: Q{q.number} answers sum to {total[i]:.4f}, "
                                        f"expected {expected}"))
    return sorted(problems, key=lambda p: (p.row, p.question))


@dataclass(frozen=True)
class PathStep:
    question: int
    answer: Answer
    probability: float  # conditional probability of the chosen answer
    reach: float        # weighted reach of the question


def most_likely_path(weighted: np.ndarray) -> list[PathStep]:
    """Walk the tree from Q1, taking the answer with the largest fraction at each question.

    Q6 ("anything odd?") is asked of every galaxy that is not a star, after the shape branch.
    """
    w = np.asarray(weighted, dtype=np.float64).reshape(N_ANSWERS)
    cond = to_conditional(w)[0]
    r = reach(w)[0]
    steps: list[PathStep] = []
    number: int | None = 1
    while number is not None:
        q = QUESTION_BY_NUMBER[number]
        s = SLICES[number]
        dist = np.nan_to_num(cond[s])
        k = int(np.argmax(dist))
        steps.append(PathStep(number, q.answers[k], float(dist[k]), float(r[number - 1])))
        number = q.answers[k].leads_to
    return steps


def summary(weighted: np.ndarray) -> str:
    """A one-line reading of the most likely path, e.g. 'features 85% · spiral 70%, 2 arms · tight'."""
    parts = []
    for step in most_likely_path(weighted):
        if step.question == 6 and step.answer.column == "Class6.2":
            continue  # "nothing odd" is the default; don't clutter the line
        parts.append(f"{step.answer.short} {step.probability:.0%}")
    return " · ".join(parts)
