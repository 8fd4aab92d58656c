"""Home: what is loaded, where to go next, and the data and model pickers."""
import math
import os

import streamlit as st

from gzcore.dashboard import navigation

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Galaxy Zoo 2 morphology")
st.write("A CNN answers the 11 questions Galaxy Zoo volunteers answered for each galaxy, and this "
         "dashboard sets its answers beside the crowd's: browse the galaxies, open one, ask the "
         "model why, score it, train a new one, or play the volunteers' game yourself.")
loaded = st.container()

from gzcore.dashboard import state  # noqa: E402  (torch loads here, after a cold start shows the text above)


def _set_data():
    state.choose("data", st.session_state.home_data.strip())
    state.choose("galaxy", None)  # galaxies are per folder


def _default_data():
    state.choose("data", None)
    state.choose("galaxy", None)
    st.session_state.home_data = str(state.data_dir())


def _set_model(key):
    state.choose("model", st.session_state[key].strip())


st.subheader("Data and model")
left, right = st.columns(2)
with left:
    st.session_state.setdefault("home_data", str(state.data_dir()))
    st.text_input("Data folder (Kaggle layout: images_training_rev1/ + training_solutions_rev1.csv)",
                  key="home_data", on_change=_set_data)
    st.button("Use the default data" + (" (GZ_DATA)" if os.environ.get("GZ_DATA") else
              " (synthetic universe)"), on_click=_default_data)
with right:
    current = str(state.checkpoint_path())
    options = list(dict.fromkeys([current] + [str(p) for p in state.known_checkpoints()]))

    def label(path):
        info = state.checkpoint_info(path)
        if info is None:
            return f"{os.path.basename(path)} (missing or unreadable)"
        return f"{info['name']} · {info['model']} · val RMSE {info['val_rmse']:.4f}"
    st.session_state.home_model = current
    st.selectbox("Model checkpoint", options, key="home_model", format_func=label,
                 on_change=_set_model, args=("home_model",))
    st.text_input("…or another checkpoint file", key="home_model_path", on_change=_set_model,
                  args=("home_model_path",), placeholder="/path/to/model.pt")

with loaded:
    ctx = state.context()
    metrics = ctx.ckpt.get("metrics") or {}
    cols = st.columns(4)
    cols[0].metric("Galaxies", f"{len(ctx.galaxies):,}", help=str(ctx.data_dir))
    cols[1].metric("Crowd labels", "yes" if ctx.galaxies.labels is not None else "no")
    members = ctx.ckpt["model_config"].get("members")  # an ensemble (gz ensemble)
    cols[2].metric("Model", f"ensemble of {len(members)}" if members else ctx.ckpt["model_config"]["name"],
                   help=str(ctx.ckpt_path))
    tta = f"; {metrics['val_rmse_tta']:.4f} with 8-view TTA" if "val_rmse_tta" in metrics else ""
    cols[3].metric("Validation RMSE", f"{metrics.get('val_rmse', math.nan):.4f}",
                   help=f"From the checkpoint: RMSE over the 37 answers on its held-out galaxies{tta}")
    how = f"{len(members)} models averaged" if members else f"{metrics.get('epochs', '?')} epoch(s)"
    st.caption(f"Data `{ctx.data_dir}` · model `{ctx.ckpt_path}` trained on "
               f"{metrics.get('train_images', '?')} galaxies, {how}")
    st.markdown("**Where next**")
    for cell, (page, label) in zip(st.columns(4), [(navigation.BROWSE, "Browse the gallery"),
                                                   (navigation.EVALUATE, "How good is the model?"),
                                                   (navigation.TRAIN, "Train a new model"),
                                                   (navigation.PLAY, "Classify a galaxy yourself")]):
        cell.page_link(page.script, label=label, icon=page.icon)
