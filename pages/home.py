"""Home: what is loaded, where to go next, and the data and model pickers."""
import math
import os

import streamlit as st

from gzcore.dashboard import access, navigation

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Galaxy Zoo 2 morphology")
st.write("A CNN answers the 11 questions Galaxy Zoo volunteers answered for each galaxy (or predicts "
         "your own targets from a labels CSV), and this dashboard sets its answers beside the crowd's: "
         "browse the galaxies, open one, ask the model why, score it, train a new one, or play the "
         "volunteers' game yourself.")
loaded = st.container()

from gzcore import tree  # noqa: E402
from gzcore.dashboard import state  # noqa: E402  (torch loads here, after a cold start shows the text above)


def _new_folder():
    for key in ("galaxy", "labels"):  # galaxies and their labels are per folder
        state.choose(key, None)
    st.session_state.home_labels = ""


def _set_data():
    state.choose("data", st.session_state.home_data.strip())
    _new_folder()


def _default_data():
    state.choose("data", None)
    _new_folder()
    st.session_state.home_data = access.named(state.data_dir())


def _set_labels():
    state.choose("labels", st.session_state.home_labels.strip())


def _set_model(key):
    state.choose("model", st.session_state[key].strip())


st.subheader("Data and model")
left, right = st.columns(2)
with left:
    st.session_state.setdefault("home_data", access.named(state.data_dir()))  # public mode: its name alone
    st.text_input("Data folder (Kaggle layout: images_training_rev1/ + training_solutions_rev1.csv)",
                  key="home_data", on_change=_set_data)
    st.button("Use the default data" + (" (GZ_DATA)" if os.environ.get("GZ_DATA") else
              " (synthetic universe)"), on_click=_default_data)
    st.session_state.setdefault("home_labels", access.named(state.labels_path()) if state.labels_path() else "")
    st.text_input("Labels CSV (optional; first column: the image id): the truth for a model of other "
                  "targets, or Kaggle answers for the folder", key="home_labels", on_change=_set_labels,
                  placeholder="/path/to/labels.csv")
with right:
    current = str(state.checkpoint_path())
    options = list(dict.fromkeys([current] + [str(p) for p in state.known_checkpoints()]))

    def label(path):
        info = state.checkpoint_info(path)
        if info is None:
            return f"{os.path.basename(path)} (missing or unreadable)"
        task = info["task"]
        what = "" if task.kind == "tree" else f" · predicts {', '.join(task.label_columns)}"
        return f"{info['name']} · {info['model']}{what} · val RMSE {info['val_rmse']:.4f}"
    st.session_state.home_model = current
    st.selectbox("Model checkpoint", options, key="home_model", format_func=label,
                 on_change=_set_model, args=("home_model",))
    st.text_input("…or another checkpoint file", key="home_model_path", on_change=_set_model,
                  args=("home_model_path",), placeholder="/path/to/model.pt")

def _set_predictions(key):
    state.choose(key, st.session_state[f"home_{key}"].strip())
    st.session_state.browse_ranges = []  # filters of another table do not apply


with st.expander("Browse a predictions table of any size (`gz predict --out X.parquet`)",
                 expanded=bool(state.predictions_path())):
    st.caption("Browse then shows this table instead of the data folder's catalogue, read a column at a "
               "time (a million galaxies stay fluid); thumbnails come from the images folder, found by "
               "GalaxyID. Leave it empty to browse the data folder. Also `?predictions=…&images=…` or "
               "GZ_PREDICTIONS / GZ_IMAGES.")
    left, right = st.columns(2)
    for key, chosen in (("predictions", state.predictions_path()), ("images", state.images_dir())):
        st.session_state.setdefault(f"home_{key}", access.named(chosen) if chosen else "")
    left.text_input("Predictions (a .parquet folder or file, or a .csv)", key="home_predictions",
                    on_change=_set_predictions, args=("predictions",), placeholder="/path/to/predictions.parquet")
    right.text_input("Their images (optional: a folder of <GalaxyID>.jpg)", key="home_images",
                     on_change=_set_predictions, args=("images",), placeholder="/path/to/images")
    if state.predictions_path():
        st.page_link(navigation.BROWSE.script, label="Browse the predictions", icon=navigation.BROWSE.icon)

with loaded:
    ctx = state.context()
    metrics, task = ctx.ckpt.get("metrics") or {}, ctx.task
    st.markdown(f"**The model predicts** {state.describe_task(task)}.")
    cols = st.columns(4)
    decoded = not ctx.previewed or ctx.crops_ready  # then unreadable images are left out of the count
    cols[0].metric("Galaxies", f"{len(ctx.galaxies if decoded else ctx.listed):,}",
                   help=access.shown(str(ctx.data_dir)))
    labels = ctx.listed.labels
    counts = tree.answered(labels) if task.kind == "tree" and labels is not None else {}
    known = [n for n, c in counts.items() if c]
    partial = " (partial)" if labels is not None and len(known) < len(counts) else ""
    cols[1].metric("Crowd labels" if task.kind == "tree" else "Labels",
                   ("yes" + partial) if labels is not None else "no",
                   help=access.shown(str(ctx.labels_path or ctx.data_dir)))
    members = ctx.ckpt["model_config"].get("members")  # an ensemble (gz ensemble)
    cols[2].metric("Model", f"ensemble of {len(members)}" if members else ctx.ckpt["model_config"]["name"],
                   help=access.shown(str(ctx.ckpt_path)))
    tta = f"; {metrics['val_rmse_tta']:.4f} with 8-view TTA" if "val_rmse_tta" in metrics else ""
    accuracy = f"; accuracy {metrics['val_accuracy']:.1%}" if "val_accuracy" in metrics else ""
    cols[3].metric("Validation RMSE", f"{metrics.get('val_rmse', math.nan):.4f}" +
                   (f" {task.shared_unit}" if task.shared_unit else ""),
                   help=f"From the checkpoint: {task.unit_name} over its {len(task.columns)} outputs (in "
                        f"the labels' units) on its held-out galaxies{tta}{accuracy}")
    how = f"{len(members)} models averaged" if members else f"{metrics.get('epochs', '?')} epoch(s)"
    teacher = (ctx.ckpt.get("train_config") or {}).get("teacher")
    how += f", distilled from `{os.path.basename(teacher)}`" if teacher else ""
    trained = metrics.get("train_images")
    st.caption(access.shown(f"Data `{ctx.data_dir}` · model `{ctx.ckpt_path}` trained on "
                            f"{f'{trained:,}' if isinstance(trained, int) else '?'} galaxies, {how}"))
    if partial:
        st.caption("Crowd labels for " + ", ".join(f"Q{n} ({counts[n]:,} galaxies)" for n in known) +
                   f"; none for the other questions ({len(counts) - len(known)} of {len(counts)})")
    if task.kind != "tree" and ctx.listed.labels is None:
        st.info("No labels for this model's targets: the pages show its predictions only. A labels CSV "
                "above (first column: the image id) gives the truth to compare with.")
    if ctx.previewed and ctx.table_if_ready() is None:
        state.watch(ctx.jobs(), "Browse and Galaxy show a preview meanwhile; the other pages wait for it.")
    with st.expander("Preparing a server before visitors come"):
        st.markdown("Everything the pages compute for a data folder and a model (crops, predictions, "
                    "embeddings, oddness, Atlas maps) is computed once, kept in the cache folder and shared "
                    "by every visitor and every server process using that folder. To compute it all before "
                    "anyone visits:")
        st.code(access.shown(f"gz catalog --data {ctx.data_dir} --checkpoint {ctx.ckpt_path}" +
                             (f" --labels {ctx.labels_path}" if ctx.labels_path else "")), language="bash")
    st.markdown("**Where next**")
    links = [(navigation.BROWSE, "Browse the gallery"), (navigation.EVALUATE, "How good is the model?"),
             (navigation.TRAIN, "Train a new model")]
    if task.kind == "tree":
        links.append((navigation.PLAY, "Classify a galaxy yourself"))
    for cell, (page, label) in zip(st.columns(4), links):
        cell.page_link(page.script, label=label, icon=page.icon)
