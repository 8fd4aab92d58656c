"""A visitor's walk through the decision tree, compared with the crowd's and the model's answers.

The walk follows each answer's `leads_to`, exactly as the volunteers' interface did: the shape
branch, then Q6 ("anything odd?"), then Q8 if something was odd; a star or artifact ends at once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import tree

Walk = list[tuple[int, int]]  # (question number, answer index) in the order asked


def next_question(walk: Walk) -> int | None:
    """The question to ask after `walk`; None when the tree is finished."""
    if not walk:
        return 1
    number, k = walk[-1]
    return tree.QUESTION_BY_NUMBER[number].answers[k].leads_to


def compare(walk: Walk, crowd_weighted, model_weighted=None) -> pd.DataFrame:
    """One row per question the visitor answered: their answer, the share of the crowd (and of the
    model) that gave it, and the crowd's and model's own top answers (conditional fractions). Where
    the crowd's answers are unknown (partial labels: "no labels") or nobody reached the question
    ("wasn't asked") the share is NaN and `crowd agrees` None."""
    sources = {"crowd": crowd_weighted, "model": model_weighted}
    cond = {k: tree.to_conditional(v)[0] for k, v in sources.items() if v is not None}
    rows = []
    for number, k in walk:
        q, s = tree.QUESTION_BY_NUMBER[number], tree.SLICES[number]
        row = {"question": q.title, "you": q.answers[k].long}
        for name, c in cond.items():
            if np.isnan(np.asarray(sources[name], np.float64).reshape(-1)[s]).any():
                row.update({f"{name} share of your answer": np.nan, f"{name} answer": "no labels",
                            f"{name} agrees": None})
                continue
            if np.isnan(c[s]).any():  # nobody reached the question: no answer to compare with
                row.update({f"{name} share of your answer": np.nan, f"{name} answer": "wasn't asked",
                            f"{name} agrees": None})
                continue
            part = c[s]
            top = int(part.argmax())
            row[f"{name} share of your answer"] = float(part[k])
            row[f"{name} answer"] = f"{q.answers[top].long} ({part[top]:.0%})"
            row[f"{name} agrees"] = top == k
        rows.append(row)
    return pd.DataFrame(rows)


def parted_ways(comparison: pd.DataFrame, source: str = "crowd") -> int | None:
    """Position in the walk of the first question where `source`'s top answer was not the visitor's."""
    agrees = comparison[f"{source} agrees"] if len(comparison) else pd.Series([], dtype=object)
    misses = np.flatnonzero(agrees.eq(False).to_numpy())  # None (unknown) is no parting
    return int(misses[0]) if len(misses) else None
