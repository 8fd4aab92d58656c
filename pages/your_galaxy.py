"""Your galaxy: an image of your own (JPEG, PNG or FITS) through the loaded model, framed as its
training pictures were (gzcore.framing: what was applied is shown, and a warning where it could not
be): the crop it sees, its answers as the Galaxy page shows them, a saliency map of its top answer and
the most similar galaxies of the loaded data."""
import streamlit as st

from gzcore import catalog, data, explain, fits, neighbours, tree, upload
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
scale = st.number_input("Pixel scale of a JPEG or PNG (″ per pixel), if you know it", min_value=0.0, value=None,
                        step=0.01, format="%.3f", key="your_pixel_scale", placeholder="unknown",
                        help="A survey cutout's arcseconds per pixel: the picture is then rescaled by its "
                             "galaxy's measured size to the framing the model learnt. Unknown: cropped as "
                             "it is. A FITS file gives its own (its WCS).") or None
if file is None:
    st.info("Upload an image to see what the model makes of it.")
    st.stop()
try:
    mine = state.brought(ctx, file.getvalue(), file.name, scale)
except data.DataError as e:
    state.error(str(e))
    st.stop()
known = state.known_upload(ctx, mine)  # one of the loaded galaxies: the same pixels after decoding
shown, shown_row = (known.table, known.row) if known else (mine.table, 0)
if known:
    note, link = st.columns([3, 1], vertical_alignment="center")
    crowd = "the truth" if task.kind != "tree" else "the crowd's answers"
    note.success(f"This is galaxy {known.galaxy_id} of the loaded data (the same pixels after decoding)" +
                 (f": {crowd} are shown beside the model's below." if catalog.has_crowd(shown) else "."))
    if link.button("Open its Galaxy page", key="your_known_open", icon=":material/cyclone:", width="stretch"):
        state.open_galaxy(known.galaxy_id)

saliency = mine.saliency
if task.kind == "tree":
    top = f"Q1's top answer, {tree.ANSWER_BY_COLUMN[saliency.answer].long}"
else:
    top = task.columns[saliency.output] + (" (its logit)" if task.kind == "classification" else "")
framed = mine.image.framing
if framed.warning():
    st.warning(f"{file.name}: {framed.warning()}.", icon=":material/crop_free:")
if mine.image.stretched():
    st.warning(f"{mine.image.stretched()}.", icon=":material/aspect_ratio:")
views = {"image": ("Your image", charts.image(upload.with_box(mine.image), 320),
                   ("framed as the model's training pictures" if framed.established else "as decoded") +
                   ", the model's crop in yellow"),
         "input": ("The model's input", charts.image(mine.pixels, 320), f"its crop of the image, {ctx.input_size} px"),
         "saliency": ("Saliency", charts.attribution(explain.overlay(mine.pixels, saliency.map, 0.6), "inferno",
                                                     False, 320),
                      f"pixels that drive {top}; Explain offers more methods for the data's galaxies")}
for cell, (key, (title, figure, caption)) in zip(st.columns(3), views.items()):
    with cell:
        st.markdown(f"**{title}**")
        st.plotly_chart(figure, key=f"your_{key}", config={"displaylogo": False})
        st.caption(caption)

st.markdown("**What was applied** · " + framed.target.label + "\n\n" +
            "\n".join(f"- {what}: {value}" for what, value in framed.lines()))

st.markdown(f"**The model predicts** {state.describe_task(task)} ({state.prediction_kind(ctx)})")
kind = "conditional"
if task.kind == "tree":
    kind = st.segmented_control(
        "Values", ["conditional", "weighted"], default="conditional", key="your_kind",
        help="Conditional: fraction of those asked the question. Weighted: times the share of volunteers "
             "who would reach it.") or "conditional"  # the control can be cleared
    answers.paths(shown, shown_row)
answers.outputs(shown, shown_row, task, kind, ctx.table if task.kind == "regression" else None, key="your")

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
