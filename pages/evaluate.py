"""Evaluate: RMSE against the baselines, predicted vs crowd, residuals and top-answer confusion."""
import numpy as np
import pandas as pd
import streamlit as st

from gzcore import catalog, checkpoint, evaluate, tree
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Evaluate")
ctx = state.context()
state.labelled(ctx)
held = checkpoint.split(ctx.galaxies, ctx.ckpt)[1]
if len(held) < 2:
    st.info("The checkpoint's validation split holds fewer than 2 of these galaxies: nothing to score.")
    st.stop()
st.subheader(f"Held-out galaxies ({len(held):,}: the checkpoint's validation split)")
baselines = state.baselines(ctx)
frame = pd.DataFrame({"predictor": ["model (no TTA)", *baselines],
                      "RMSE": [catalog.scores(ctx.table, held)["rmse"], *baselines.values()],
                      "kind": ["model"] + ["baseline"] * len(baselines)})
st.plotly_chart(charts.scores(frame, "predictor", "RMSE", color="kind", height=300, barmode="relative"),
                key="eval_overall")

scope = st.segmented_control("Galaxies below", ["held out", "all"], default="held out", key="eval_scope")
rows = np.arange(len(ctx.table)) if scope == "all" else held
pred, truth = catalog.weighted(ctx.table, rows=rows), catalog.weighted(ctx.table, "crowd", rows=rows)
s = evaluate.scores(pred, truth)
per_q = pd.DataFrame({"question": [q.label for q in tree.QUESTIONS],
                      "RMSE": list(s["per_question"].values())})
per_a = pd.DataFrame({"answer": [tree.answer_label(c) for c in tree.COLUMNS],
                      "RMSE": list(s["per_answer"].values())})
tab_q, tab_a = st.tabs(["RMSE per question", "RMSE per answer"])
tab_q.plotly_chart(charts.scores(per_q, "question", "RMSE"), key="eval_per_q")
tab_a.plotly_chart(charts.scores(per_a, "answer", "RMSE"), key="eval_per_a")

st.subheader("Predicted vs crowd, one answer")
answer = st.selectbox("Answer", tree.COLUMNS, key="eval_answer",
                      format_func=lambda c: f"{tree.answer_label(c)}: {tree.ANSWER_BY_COLUMN[c].long}")
k = tree.COLUMN_INDEX[answer]
left, right = st.columns(2)
left.plotly_chart(charts.density(pred[:, k], truth[:, k], "weighted fraction"), key="eval_density")
right.plotly_chart(charts.residuals(pred[:, k], truth[:, k], "weighted fraction"), key="eval_residuals")

st.subheader("Top answer: crowd vs model")
question = st.selectbox("Question", [q.number for q in tree.QUESTIONS], key="eval_q",
                        format_func=lambda n: tree.QUESTION_BY_NUMBER[n].title)
st.caption(f"All {len(ctx.table):,} galaxies whose question was reached by at least {catalog.LOW_REACH:.0%} "
           f"of the crowd; right: only those whose top crowd answer has at least {catalog.CONFIDENT:.0%} "
           f"of the votes. Pick a cell below to see its galaxies in the gallery.")
answers = [a.short for a in tree.QUESTION_BY_NUMBER[question].answers]
for confident, cell in zip((False, True), st.columns(2)):
    with cell:
        st.markdown("**Crowd-confident galaxies**" if confident else "**All galaxies**")
        st.plotly_chart(charts.confusion(catalog.confusion(ctx.table, question, confident=confident)),
                        key=f"eval_confusion_{confident}")
        a, b, button = st.columns([2, 2, 1], vertical_alignment="bottom")
        crowd = a.selectbox("Crowd said", range(len(answers)), format_func=answers.__getitem__,
                            key=f"eval_crowd_{confident}")
        model = b.selectbox("Model said", range(len(answers)), format_func=answers.__getitem__,
                            key=f"eval_model_{confident}")
        if button.button("Browse", key=f"eval_browse_{confident}", help="Open these galaxies in the gallery"):
            st.session_state.browse_ranges = catalog.confusion_ranges(question, crowd, model, confident)
            st.session_state.browse_page = 1
            st.switch_page(navigation.BROWSE.script)

st.download_button("Download all predictions (CSV)", lambda: catalog.export(ctx.table).to_csv(index=False),
                   file_name=f"predictions-{ctx.ckpt_path.stem}.csv", mime="text/csv",
                   icon=":material/download:")
