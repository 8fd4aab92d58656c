"""Atlas: every galaxy a point on a 2-D map of the model's embedding (PCA at once, UMAP on request),
coloured by any answer, error or uncertainty. A box or lasso shows the galaxies inside and opens them
in Browse; a click shows a galaxy and its neighbours on the map; the outreach view draws real galaxies."""
import numpy as np
import streamlit as st

from gzcore import atlas, catalog
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

SHOWN, PER_ROW, NEAR, TILE_PX = 12, 6, 8, 96
METHODS = {"PCA": "pca", "UMAP": "umap"}

st.title("Atlas")
ctx = state.context()
table = ctx.table
labels = catalog.column_labels(table, ctx.task)
if st.session_state.get("atlas_colour") not in labels:
    st.session_state.atlas_colour = catalog.col(ctx.task.columns[0])  # Q1 smooth, or the first target

left, mid, right = st.columns([2, 5, 2], vertical_alignment="bottom")
name = left.segmented_control("Map", list(METHODS), default="PCA", key="atlas_method",
                              help="PCA: the embedding's two main axes, instant. UMAP: keeps neighbourhoods "
                                   "far better; computed once per model and data, then kept on disk") or "PCA"
colour = mid.selectbox("Colour by", list(labels), format_func=labels.get, key="atlas_colour",
                       help="Any answer (crowd or model), the crowd-vs-model error, or the model's uncertainty")
outreach = right.toggle("Outreach view", key="atlas_outreach", help="The map drawn with real galaxies, for a "
                        "museum screen")

method = METHODS[name]
if method == "umap" and not state.atlas_ready(ctx, "umap"):
    st.info("The UMAP map is computed once for this model and data, then kept on disk: a minute or more the "
            "first time the server computes one (numba compiles it), then ~10 s per 6,000 galaxies. The PCA map "
            "is shown until then.")
    if not st.button("Compute the UMAP map", key="atlas_umap", type="primary", icon=":material/scatter_plot:"):
        method = "pca"
with st.spinner(f"Mapping every galaxy ({method.upper()})…"):
    xy = state.atlas_map(ctx, method)
ids = table.GalaxyID.to_numpy()
st.caption(f"{len(xy):,} galaxies on the {method.upper()} map of {ctx.ckpt_path.name}'s embedding: galaxies the "
           f"model sees alike lie close together" + (" (UMAP cached on disk)" if method == "umap" else ""))

if outreach:
    tiles = atlas.mosaic(xy)
    images = [state.image_for(ctx, int(r), size=TILE_PX) for r in tiles.rows]
    st.plotly_chart(charts.atlas_mosaic(xy, tiles.centres, tiles.cell, images), key="atlas_mosaic",
                    config={"displaylogo": False})
    st.caption(f"{len(tiles.rows)} real galaxies, each the one nearest the centre of its patch of the map")
    st.stop()

values = table[colour].to_numpy(np.float32)
event = st.plotly_chart(charts.atlas(xy, values, labels[colour], ids), key="atlas_map", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
rows = np.asarray(event.selection.point_indices, np.int64)
if not len(rows):
    st.caption("Drag a lasso or box (the toolbar switches) to see the galaxies inside; click a point to see that "
               "galaxy and its neighbours on the map. Dark grey: no value (a question not reached, no label).")
    st.stop()


def thumbnails(chosen: np.ndarray) -> None:
    """Thumbnails of these rows with their GalaxyIDs, PER_ROW to a row."""
    for start in range(0, len(chosen), PER_ROW):
        for cell, r in zip(st.columns(PER_ROW), chosen[start:start + PER_ROW]):
            with cell:
                image = state.image_for(ctx, int(r), size=160)
                if image is not None:
                    st.image(image, width="stretch")
                st.caption(f"{ids[r]} · {values[r]:.3g}")


if len(rows) == 1:
    row = int(rows[0])
    near = atlas.nearest_on_map(xy, row, NEAR)
    st.subheader(f"Galaxy {ids[row]} and the {len(near)} nearest it on the map")
    thumbnails(np.r_[row, near])
    if st.button(f"Open galaxy {ids[row]}", key="atlas_open", type="primary", icon=":material/cyclone:"):
        state.open_galaxy(ids[row])
    st.stop()

st.subheader(f"{len(rows):,} galaxies selected")
st.caption(f"Mean {labels[colour]}: {np.nanmean(values[rows]):.3g} here, {np.nanmean(values):.3g} over all "
           f"galaxies · the first {min(SHOWN, len(rows))} shown")
thumbnails(rows[:SHOWN])
if st.button(f"Open {len(rows):,} in Browse", key="atlas_browse", type="primary", icon=":material/grid_view:"):
    state.show_in_browse(ids[rows], f"{len(rows):,} galaxies selected on the Atlas ({method.upper()} map)")
