"""Evaluate: RMSE against the baselines, predicted vs crowd (or vs the true targets, with residuals),
top-answer (or class) confusion, and how well the model's spread predicts its errors."""
import numpy as np
import pandas as pd
import streamlit as st

from gzcore import catalog, checkpoint, evaluate, tree
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Evaluate")
ctx = state.context()
state.labelled(ctx)
task = ctx.task
held = checkpoint.split(ctx.galaxies, ctx.ckpt)[1]
if len(held) < 2:
    st.info("The checkpoint's validation split holds fewer than 2 of these galaxies: nothing to score.")
    st.stop()
if note := state.split_note(ctx):
    st.warning(f"{note} 'Held out' here is `gz train`'s default split (10 %, seed 0).")
held_table = state.held_out_table(ctx.ckpt_path, ctx.data_dir, ctx.labels_path)  # a tenth of the catalogue's work
scope = st.segmented_control("Galaxies", ["held out", "all"], default="held out", key="eval_scope",
                             format_func={"held out": "Held out", "all": "All galaxies"}.get,
                             help="Every figure and table on this page counts these galaxies: the checkpoint's "
                                  "held-out split, or every galaxy, the training split included") or "held out"
table = held_table if scope == "held out" else ctx.table  # every figure below counts these galaxies
galaxy_rows = held if scope == "held out" else np.arange(len(ctx.galaxies))
rows = np.arange(len(table))
who = (f"{len(table):,} held-out galaxies (never trained on)" if scope == "held out" else
       f"{len(table):,} galaxies, the {len(table) - len(held):,} of the training split included (fitted: optimistic)")
st.subheader(f"Held-out galaxies ({len(held):,}: the checkpoint's validation split)" if scope == "held out" else
             f"All {len(table):,} galaxies ({len(held):,} held out)")
baselines = state.baselines(ctx) if scope == "held out" else state.baselines_over(ctx, galaxy_rows)
frame = pd.DataFrame({"predictor": [f"model ({state.prediction_kind(ctx)})", *baselines],
                      "RMSE": [catalog.scores(table, None, task.columns)["rmse"], *baselines.values()],
                      "kind": ["model"] + ["baseline"] * len(baselines)})
st.caption(f"{task.unit_name} in the labels' units{f' ({task.shared_unit})' if task.shared_unit else ''} over the {who}" + (
    " (class probabilities vs one-hot true classes)" if task.kind == "classification" else "")
           + "; the baselines are fitted on the training split")
st.plotly_chart(charts.scores(frame, "predictor", "RMSE", color="kind", height=300, barmode="relative",
                              unit=task.shared_unit), key="eval_overall")

pred, truth = (catalog.values(table, task.columns, source, rows) for source in ("model", "crowd"))
if task.kind == "tree":
    s = evaluate.scores(pred, truth)
    known = [q for q in tree.QUESTIONS if s["question_labelled"][q.number]]  # partial labels: some
    partial = len(known) < len(tree.QUESTIONS)
    carrying = {q.number: f" (n={s['question_labelled'][q.number]:,})" if partial else "" for q in known}
    per_q = pd.DataFrame({"question": [q.label + carrying[q.number] for q in known],
                          "RMSE": [s["per_question"][q.number] for q in known]})
    answers = [c for c in tree.COLUMNS if s["labelled"][c]]
    per_a = pd.DataFrame({"answer": [tree.answer_label(c) for c in answers],
                          "RMSE": [s["per_answer"][c] for c in answers]})
    st.caption(f"Over the {who}." + (f" Partial labels: {len(known)} of {len(tree.QUESTIONS)} questions have "
                                     f"crowd answers here (n: galaxies carrying each); the others are not scored"
                                     if partial else ""))
    tab_q, tab_a = st.tabs(["RMSE per question", "RMSE per answer"])
    tab_q.plotly_chart(charts.scores(per_q, "question", "RMSE"), key="eval_per_q")
    tab_a.plotly_chart(charts.scores(per_a, "answer", "RMSE"), key="eval_per_a")

    st.subheader("Predicted vs crowd, one answer")
    answer = st.selectbox("Answer", answers, key="eval_answer",
                          format_func=lambda c: f"{tree.answer_label(c)}: {tree.ANSWER_BY_COLUMN[c].long}")
    k = tree.COLUMN_INDEX[answer]
    st.caption(f"Over the {who}")
    left, right = st.columns(2)
    left.plotly_chart(charts.density(pred[:, k], truth[:, k], "weighted fraction"), key="eval_density")
    right.plotly_chart(charts.residuals(pred[:, k], truth[:, k], "weighted fraction"), key="eval_residuals")

    st.subheader("Top answer: crowd vs model")
    question = st.selectbox("Question", [q.number for q in known], key="eval_q",
                            format_func=lambda n: tree.QUESTION_BY_NUMBER[n].title)
    st.caption(f"Left: the {who} whose question was reached by at least {catalog.LOW_REACH:.0%} of the crowd; "
               f"right: only those whose top crowd answer has at least {catalog.CONFIDENT:.0%} of the votes. "
               f"Pick a cell below to see its galaxies in the gallery.")
    names = [a.short for a in tree.QUESTION_BY_NUMBER[question].answers]
    for confident, cell in zip((False, True), st.columns(2)):
        with cell:
            st.markdown("**Crowd-confident galaxies**" if confident else "**All galaxies**")
            st.plotly_chart(charts.confusion(catalog.confusion(table, question, confident=confident)),
                            key=f"eval_confusion_{confident}")
            a, b, button = st.columns([2, 2, 1], vertical_alignment="bottom")
            crowd = a.selectbox("Crowd said", range(len(names)), format_func=names.__getitem__,
                                key=f"eval_crowd_{confident}")
            model = b.selectbox("Model said", range(len(names)), format_func=names.__getitem__,
                                key=f"eval_model_{confident}")
            if button.button("Browse", key=f"eval_browse_{confident}",
                             help="Open these galaxies in the gallery"):
                st.session_state.browse_ranges = catalog.confusion_ranges(question, crowd, model, confident)
                st.session_state.browse_page = 1
                st.switch_page(navigation.BROWSE.script)
elif task.kind == "regression":
    st.subheader("Predicted vs true, with residuals")
    name = st.selectbox("Target", task.columns, key="eval_target") if len(task.columns) > 1 else \
        task.columns[0]
    known = rows[~np.isnan(truth[:, task.columns.index(name)])]
    spread = catalog.values(table, [name], "spread", known)[:, 0] if catalog.has_spread(table) \
        else None
    model, true = (catalog.values(table, [name], source, known)[:, 0] for source in ("model", "crowd"))
    st.caption(f"Of the {who}: {len(known):,} galaxies with a true {name} · RMSE "
               f"{task.format(name, evaluate.rmse(model, true))}"
               + (" · bars: ± the model's spread" if spread is not None else ""))
    label = task.named(name)
    st.plotly_chart(charts.predicted_vs_true(model, true, spread, label, table.GalaxyID.to_numpy()[known]),
                    key="eval_scatter")
else:
    st.subheader("Classes: true vs model")
    classes = ctx.galaxies.labels[galaxy_rows, 0]
    majority = catalog.majority_class(ctx.galaxies.labels[checkpoint.split(ctx.galaxies, ctx.ckpt)[0], 0])
    st.caption(f"Over the {who}")
    left, right = st.columns(2)
    left.metric("Accuracy", f"{evaluate.accuracy(pred, classes):.1%}")
    right.metric("Majority class (from the training split)",
                 f"{evaluate.accuracy(np.eye(len(task.columns))[np.full(len(rows), majority)], classes):.1%}",
                 help=f"Always answering {task.columns[majority]}")
    st.plotly_chart(charts.confusion(catalog.class_confusion(table, task, rows), "true", "model"),
                    key="eval_class_confusion")

if catalog.has_spread(table):
    st.subheader("Calibration: does the spread predict the error?")
    bins, rho = catalog.calibration(table, task)
    left, right = st.columns([3, 1])
    left.plotly_chart(charts.calibration(bins, "weighted answer" if task.kind == "tree" else task.shared_unit or
                                         "target units"),
                      key="eval_calibration")
    right.metric("Spearman ρ (spread vs |error|)", f"{rho:.2f}",
                 help=f"Rank correlation over every known (galaxy, output) cell of the {who}: "
                      "1 when the spread orders the errors perfectly, 0 when it says nothing")
    right.caption(f"{int(bins.cells.sum()):,} cells of the {who} in {len(bins)} bins of equal count by predicted "
                  f"spread; a calibrated spread lies on the diagonal (RMSE = spread). Spread: "
                  f"{state.spread_source(ctx)}.")

everything = ctx.table_if_ready()
if everything is None:
    st.caption("The CSV of every galaxy's predictions is offered here once they are all computed.")
else:
    st.download_button("Download all predictions (CSV)", lambda: catalog.export(everything, task).to_csv(index=False),
                       file_name=f"predictions-{ctx.ckpt_path.stem}.csv", mime="text/csv",
                       icon=":material/download:")
