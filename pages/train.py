"""Train: a short training run from the browser, in a background process, with live curves and a
before/after comparison. One run at a time per server; in public mode capped (access.TRAINING), on
the data folder in use, and stopped only by the visitor who started it."""
from pathlib import Path

import pandas as pd
import streamlit as st

from gzcore import catalog, models, runs, targets, train
from gzcore.dashboard import access, charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Train a model")
slot = state.run_slot()
run: runs.Run | None = slot["run"]
busy = run is not None and run.running
info = state.checkpoint_info(state.checkpoint_path())
task, labels = (info["task"] if info else targets.TREE), state.labels_path()
follows = task.kind != "tree" and labels is not None  # the loaded model's targets, from the labels CSV
predicts = ", ".join(task.label_columns)
if follows:
    st.caption(f"Trains {predicts} from `{labels}`, as the loaded model predicts")
else:
    st.caption("Trains a Galaxy Zoo tree model on the folder's crowd answers" + (
        f" (the loaded model predicts {predicts}: choose its labels CSV on Home to train one like it)"
        if task.kind != "tree" else ""))

public = access.public()
if public:
    st.caption(f"A public demo: runs last at most {access.TRAINING['minutes']:g} minute, "
               f"{access.TRAINING['epochs']} epochs and {access.TRAINING['subset']} galaxies, one at a time")
with st.form("train_form", border=True):
    cols = st.columns(5)
    name = cols[0].selectbox("Model", list(models.BACKBONES), key="train_model")
    epochs = cols[1].number_input("Epochs", 1, access.TRAINING["epochs"] if public else 100, 3, key="train_epochs")
    subset = cols[2].number_input("Training galaxies (0 = all)", 1 if public else 0,
                                  access.TRAINING["subset"] if public else None, 256, step=64, key="train_subset")
    lr = cols[3].number_input("Peak learning rate", 1e-5, 1.0, 2e-3, step=5e-4, format="%.4f", key="train_lr")
    folder = cols[4].text_input("Data folder", str(state.data_dir()), key="train_data", disabled=public,
                                help="The data folder in use (choose another on Home)" if public else None)
    teacher = state.checkpoint_path() if task.kind == "tree" else None
    distil = st.checkbox(f"Distil from the loaded model (`{teacher.name}`): learn its answers (8-view TTA) "
                         "on every image of the folder, labelled or not, with the crowd's where known; the "
                         "student keeps its crops and held-out galaxies", key="train_distil") if teacher else False
    started = st.form_submit_button("Start training", type="primary", disabled=busy,
                                    help="Another run is in progress on this server" if busy else None)
if started:
    cfg = train.TrainConfig(model=name, epochs=int(epochs), subset=int(subset) or None, lr=float(lr),
                            threads=1, tta=False,  # one thread: the dashboard stays responsive
                            labels=str(labels) if follows else None,
                            targets=task.label_columns if follows else (),
                            teacher=str(teacher) if distil else None,
                            minutes=access.TRAINING["minutes"] if public else None)
    run = runs.Run(state.data_dir() if public else Path(folder), cfg, runs.run_path(state.runs_dir(), cfg))
    state.start_run(slot, run, state.checkpoint_path())
    busy = True
if run is None:
    st.info("No run yet. Runs write their checkpoints under "
            f"`{access.shown(str(state.runs_dir()))}`; they then appear in "
            f"{'your' if public else 'every'} model picker.")
    st.stop()


@st.fragment(run_every=1.0 if busy else None)
def live():
    st.progress(run.progress, run.status())
    if run.running and state.may_stop(slot) and st.button("Stop", icon=":material/stop:", key="train_stop"):
        run.stop.set()
    st.plotly_chart(charts.curves(run.steps(), run.epochs()), key="train_curves")
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
try:
    held = state.held_out_rows(run.data_dir, run.out, run_labels)
    scores = {label: catalog.scores(state.table_for(path, run.data_dir, run_labels), held, new_task.columns)
              for label, path in (("before", baseline), ("after", run.out)) if same or label == "after"}
except state.ERRORS as e:
    state.error(str(e))
    st.stop()
if not same:
    st.caption(f"`{baseline.name}` predicts other outputs than the new model: no before to compare with")
tree_model = new_task.kind == "tree"
per_q = pd.DataFrame([{"model": label, "question": f"Q{n}" if tree_model else n, "RMSE": v}
                      for label, s in scores.items()
                      for n, v in (s["per_question"] if tree_model else s["per_answer"]).items()])
for col, (label, s) in zip(st.columns(2), scores.items()):
    change = s["rmse"] - scores["before"]["rmse"] if "before" in scores else None
    col.metric(f"{label.capitalize()}: RMSE on {len(held)} held-out galaxies", f"{s['rmse']:.4f}",
               delta=f"{change:+.4f}" if label == "after" and change is not None else None,
               delta_color="inverse")
if st.button("Use the new model everywhere", type="primary"):
    state.choose("model", run.out)
    st.rerun()
st.caption(access.shown(f"Before: `{baseline}` · after: `{run.out}` (validation RMSE in the checkpoint: "
                       f"{state.checkpoint_info(run.out)['val_rmse']:.4f})"))
st.plotly_chart(charts.scores(per_q, "question", "RMSE", color="model", colors=("#AAAAAA", charts.MODEL)),
                key="train_compare")
