"""Train: a short training run from the browser, in a background process, with live curves and a
before/after comparison. One run at a time per server; in public mode capped (access.TRAINING), on
the data folder in use, and stopped only by the visitor who started it."""
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from gzcore import catalog, runs, targets
from gzcore.dashboard import access, charts, navigation, state
from gzcore.dashboard import learn as learning

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Train a model")
slot = state.run_slot()
run: runs.Run | None = state.my_run(slot)  # in public mode another visitor's run stays theirs
busy = slot["run"] is not None and slot["run"].running  # anyone's: one run at a time
info = state.checkpoint_info(state.checkpoint_path())
task = info["task"] if info else targets.TREE
in_use = state.ensure_universe() if state.data_dir() == state.universe_dir() else state.data_dir()
learn = learning.choose(task, state.labels_path(), in_use)
public = access.public()
teacher = state.checkpoint_path() if task.kind == "tree" else None  # a tree model may teach a student
if (left := state.busy_elsewhere(slot)) is not None:
    st.info(f"The server is busy with another visitor's run (about {left:.0f} minute{'s' * (left > 1)} left): "
            "start yours when it ends.", icon=":material/hourglass_top:")
cfg = learning.settings(learn, teacher, busy)  # the run's TrainConfig once "Start training" is pressed
if cfg is not None:
    run = runs.Run(learn.folder, cfg, runs.run_path(state.runs_dir(), cfg))
    if not state.start_run(slot, run, state.checkpoint_path()):
        st.warning("Another run started first: the server trains one at a time.")
        st.stop()
    busy = True
if run is None:
    st.info("No run yet. Runs write their checkpoints under "
            f"`{access.shown(str(state.runs_dir()))}`; they then appear in "
            f"{'your' if public else 'every'} model picker.")
    st.stop()


@st.fragment(run_every=1.0 if busy else None)
def live():
    if not run.error:  # a failure is said once, below
        st.progress(run.progress, run.status())
    if run.running and state.may_stop(slot) and st.button("Stop", icon=":material/stop:", key="train_stop"):
        run.stop.set()
    if len(run.steps()):  # no empty chart while the data is prepared, or for a run that failed before
        st.plotly_chart(charts.curves(run.steps(), run.epochs(), run.task), key="train_curves")
    if busy and not run.running:
        st.rerun()  # finished: redraw the page with the results below


live()
if run.error:
    state.error(run.error)
if run.running or not run.out.is_file():
    st.stop()

st.subheader("Before and after")
baseline = Path(slot.get("baseline") or state.checkpoint_path())
new_task, run_labels = state.checkpoint_info(run.out)["task"], run.config.labels and Path(run.config.labels)
same = state.checkpoint_info(baseline) and state.checkpoint_info(baseline)["task"].columns == new_task.columns
try:  # the new model predicts its held-out galaxies alone: a tenth of the work, and all the scores need
    after = state.held_out_table(run.out, run.data_dir, run_labels)
    tables = {"after": (after, None)}
    if same:  # the model in use, on the same galaxies (its catalogue of this data is usually computed already)
        before = state.table_for(baseline, run.data_dir, run_labels)
        tables = {"before": (before, np.flatnonzero(before.GalaxyID.isin(after.GalaxyID))), **tables}
    scores = {label: catalog.scores(table, rows, new_task.columns) for label, (table, rows) in tables.items()}
except state.ERRORS as e:
    state.error(str(e))
    st.stop()
if not same:
    st.caption(f"`{baseline.name}` predicts other outputs than the new model: no before to compare with")
tree_model = new_task.kind == "tree"
per_q = pd.DataFrame([{"model": label, "question": f"Q{n}" if tree_model else new_task.named(n), "RMSE": v}
                      for label, s in scores.items()
                      for n, v in (s["per_question"] if tree_model else s["per_answer"]).items()])
for col, (label, s) in zip(st.columns(2), scores.items()):
    change = s["rmse"] - scores["before"]["rmse"] if "before" in scores else None
    unit = f" {new_task.shared_unit}" if new_task.shared_unit else ""
    col.metric(f"{label.capitalize()}: RMSE on {len(after)} held-out galaxies", f"{s['rmse']:.4f}{unit}",
               delta=f"{change:+.4f}{unit}" if label == "after" and change is not None else None,
               delta_color="inverse")
if st.button("Use the new model everywhere", type="primary",
             help="With its data folder and labels CSV, so that every page shows its predictions beside the truth"):
    state.choose("model", run.out)
    if not public:  # a visitor's run trains on the data in use
        state.choose("data", run.data_dir)
        state.choose("labels", run_labels or None)
    st.rerun()
st.caption(access.shown(f"Before: `{baseline}` · after: `{run.out}` (validation RMSE in the checkpoint: "
                       f"{state.checkpoint_info(run.out)['val_rmse']:.4f})"))
st.plotly_chart(charts.scores(per_q, "question", "RMSE", color="model", colors=("#AAAAAA", charts.MODEL),
                              unit=new_task.shared_unit), key="train_compare")
