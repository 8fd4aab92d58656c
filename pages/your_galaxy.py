"""Your galaxy: an image of your own (JPEG, PNG or FITS) through the loaded model: the crop it sees,
its answers as the Galaxy page shows them, a saliency map of its top answer and the most similar
galaxies of the loaded data."""
import streamlit as st

from gzcore import data, explain, fits, neighbours, tree, upload
from gzcore.dashboard import access, answers, charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

TYPES = ["jpg", "jpeg", "png", *(s.lstrip(".") for s in fits.SUFFIXES)]

ctx = state.context()
task = ctx.task
st.title("Your galaxy")
st.caption("Bring a galaxy image of your own, centred on the galaxy as Galaxy Zoo's cutouts are: the model "
           "crops it as it crops the loaded data, and answers.")
cap = upload.limits(access.public())
file = st.file_uploader(f"A JPEG, PNG or FITS image (.fits.gz too), at most {cap.bytes // upload.MB} MB and "
                        f"{cap.pixels / 1e6:g} million pixels", type=TYPES, key="your_galaxy_file",
                        max_upload_size=cap.bytes // upload.MB)
if file is None:
    st.info("Upload an image to see what the model makes of it.")
    st.stop()
try:
    mine = state.brought(ctx, file.getvalue(), file.name)
except data.DataError as e:
    state.error(str(e))
    st.stop()

saliency = mine.saliency
if task.kind == "tree":
    top = f"Q1's top answer, {tree.ANSWER_BY_COLUMN[saliency.answer].long}"
else:
    top = task.columns[saliency.output] + (" (its logit)" if task.kind == "classification" else "")
views = {"image": ("Your image", charts.image(mine.image.picture, 320),
                   "as decoded (a FITS file rendered as Galaxy Zoo renders DECaLS)"),
         "input": ("The model's input", charts.image(mine.pixels, 320), f"its crop of the image, {ctx.input_size} px"),
         "saliency": ("Saliency", charts.attribution(explain.overlay(mine.pixels, saliency.map, 0.6), "inferno",
                                                     False, 320),
                      f"pixels that drive {top}; Explain offers more methods for the data's galaxies")}
for cell, (key, (title, figure, caption)) in zip(st.columns(3), views.items()):
    with cell:
        st.markdown(f"**{title}**")
        st.plotly_chart(figure, key=f"your_{key}", config={"displaylogo": False})
        st.caption(caption)

st.markdown(f"**The model predicts** {state.describe_task(task)} ({state.prediction_kind(ctx)})")
kind = "conditional"
if task.kind == "tree":
    kind = st.segmented_control(
        "Values", ["conditional", "weighted"], default="conditional", key="your_kind",
        help="Conditional: fraction of those asked the question. Weighted: times the share of volunteers "
             "who would reach it.") or "conditional"  # the control can be cleared
    answers.paths(mine.table, 0)
answers.outputs(mine.table, 0, task, kind, ctx.table if task.kind == "regression" else None, key="your")

st.subheader("The most similar galaxies of the loaded data")
st.caption("Nearest in the model's feature space (cosine similarity of its embedding)")
near, sims = neighbours.nearest(state.embeddings_for(ctx), mine.embedding, k=8)
for cell, row, sim in zip(st.columns(8), near, sims):
    with cell:
        image = state.image_for(ctx, int(row), size=160)
        if image is not None:
            st.image(image, width="stretch")
        other = int(ctx.galaxies.ids[int(row)])
        if st.button("Open", key=f"your_near_{other}", width="stretch", help=f"Galaxy {other}"):
            state.open_galaxy(other)
        st.caption(f"{other} · similarity {sim:.3f}")
