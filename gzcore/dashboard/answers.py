"""One galaxy's answers as the Galaxy page shows them: the most likely path through the tree and its
11 questions (crowd vs model ± spread), or a model's targets or class probabilities. Reads one row
of a catalogue table (catalog.build, or catalog.enrich of a single prediction) and renders it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from gzcore import catalog, targets, tree
from gzcore.dashboard import bars, charts


Beside = tuple[pd.DataFrame, int, str]  # a second model's table, its row of the galaxy, its name


def paths(table: pd.DataFrame, row: int, beside: Beside | None = None) -> None:
    """The crowd's (when the table has labels), the model's and a second model's (`beside`) most
    likely path through the tree."""
    rows = [(source.capitalize(), catalog.weighted(table, source, rows=[row])[0])
            for source in (("crowd", "model") if catalog.has_crowd(table) else ("model",))]
    if beside is not None:
        rows.append((f"`{beside[2]}`", catalog.weighted(beside[0], rows=[beside[1]])[0]))
    for name, w in rows:
        steps = tree.most_likely_path(w)
        known = [s for s in steps if not np.isnan(w[tree.SLICES[s.question]]).any()]  # partial labels
        st.markdown(f"**{name}'s path:** " + " → ".join(
            f"Q{s.question} {s.answer.long} ({s.probability:.0%})" for s in known) +
            (" (questions without crowd labels left out)" if len(known) < len(steps) else ""))


def outputs(table: pd.DataFrame, row: int, task: targets.Task, kind: str = "conditional",
            reference: pd.DataFrame | None = None, key: str = "galaxy", beside: Beside | None = None) -> None:
    """Every output of the galaxy in `row`: the tree's 11 questions (answers of `kind`, conditional
    or weighted; questions few reach greyed), or each target on the axis of the values of
    `reference` (default `table`: the data's galaxies), or the class probabilities; a second
    model's values (`beside`) with the model's. The answers are one block of HTML (bars.question: a
    Plotly figure per question costs the server ~20 times as much) in a container keyed
    `{key}_answers` (`{key}_classes`); the targets' chart keys start with `key`."""
    crowd, spread = catalog.has_crowd(table), catalog.has_spread(table)

    def other(columns, kind: str = "weighted") -> tuple:
        """(the second model's values of `columns`, its name) for bars.question; (None, '') without one."""
        if beside is None:
            return None, ""
        return catalog.galaxy_values(beside[0], beside[1], columns, kind)["model"], beside[2]
    if task.kind == "tree":
        st.subheader("The 11 questions")
        crowd_w = catalog.weighted(table, "crowd", rows=[row])[0] if crowd else None
        shown = []
        for q in tree.QUESTIONS:
            values = catalog.galaxy_values(table, row, [a.column for a in q.answers], kind)
            labelled = crowd and not np.isnan(crowd_w[tree.SLICES[q.number]]).any()  # partial labels
            reach_source = "crowd" if labelled else "model"
            reach = float(table[catalog.qcol("reach", q.number, reach_source)].iat[row])
            greyed = reach < catalog.LOW_REACH
            shown.append(bars.question(
                [a.long for a in q.answers], values["crowd"], values["model"], greyed,
                values["spread"] if spread else None, *other([a.column for a in q.answers], kind), title=q.title,
                caption=f"Reached by {reach:.0%} of the {reach_source}" + (" (few: greyed)" if greyed else "")
                + ("" if labelled or not crowd else " · no crowd labels for this question")))
        st.container(key=f"{key}_answers").html(bars.block(shown))
    elif task.kind == "regression":
        st.subheader("Predicted vs true" if crowd else "Predicted")
        st.caption(":blue[●] model ± spread · :orange[◆] true value · the axis spans the model's and the true "
                   "values of all galaxies")
        reference = table if reference is None else reference
        values = catalog.galaxy_values(table, row, task.columns)
        for i, c in enumerate(task.columns):
            model, truth, error = values["model"][i], values["crowd"][i], values["spread"][i]
            seen = [catalog.col(c, s) for s in ("crowd", "model") if catalog.col(c, s) in reference]
            everything = np.append(reference[seen].to_numpy(np.float64), model)
            span = (np.nanmin(everything), np.nanmax(everything))
            metric, chart = st.columns([1, 3], vertical_alignment="center")
            unit = f" {task.unit(c)}" if task.unit(c) else ""
            metric.metric(c, task.format(c, model, error), delta_color="off",
                          delta=None if np.isnan(truth) else f"{model - truth:+.3g}{unit} vs true {task.format(c, truth)}")
            if beside is not None:
                metric.caption(f"`{beside[2]}`: {task.format(c, other([c])[0][0])}")
            chart.plotly_chart(charts.target(c, model, error, truth, span, task.unit(c)), key=f"{key}_target_{i}",
                               config={"displayModeBar": False})
    else:
        st.subheader("Class probabilities")
        st.markdown(":orange-background[true class] :blue-background[model]")
        values = catalog.galaxy_values(table, row, task.columns)
        st.container(key=f"{key}_classes").html(bars.block([bars.question(
            list(task.columns), values["crowd"], values["model"], False, None, *other(task.columns),
            sources=("true", "model"))], columns=1))
