"""Atlas: every galaxy a point on a 2-D map of the model's embedding (PCA at once, UMAP on request),
coloured by any answer, error or uncertainty. A box or lasso shows the galaxies inside and opens them
in Browse; a click shows a galaxy and its neighbours on the map; the wall view (?wall=1) draws the map with
real galaxies for a screen in a planetarium, its regions named from the crowd's answers."""
import numpy as np
import streamlit as st

from gzcore import atlas, catalog
from gzcore.dashboard import charts, navigation, state, wall

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

SHOWN, PER_ROW, NEAR = 12, 6, 8
METHODS = {"PCA": "pca", "UMAP": "umap"}

ctx = state.context()
if wall_method := wall.opened(ctx):  # the page's button, or ?wall=1
    wall.show(ctx, state.atlas_map(ctx, wall_method), wall_method)
    st.stop()
st.title("Atlas")
table = ctx.table
ids = table.GalaxyID.to_numpy()
held = state.held_mask(ctx, ids)  # None: the model's split does not apply here
labels = ({catalog.HELD_OUT: "split: held out or training split"} if held is not None else {}) | \
    catalog.column_labels(table, ctx.task)
if st.session_state.get("atlas_colour") not in labels:
    st.session_state.atlas_colour = catalog.col(ctx.task.columns[0])  # Q1 smooth, or the first target

left, mid, right = st.columns([2, 5, 2], vertical_alignment="bottom")
name = left.segmented_control("Map", list(METHODS), default="PCA", key="atlas_method",
                              help="PCA: the embedding's two main axes, instant. UMAP: keeps neighbourhoods "
                                   "far better; computed once per model and data, then kept on disk") or "PCA"
colour = mid.selectbox("Colour by", list(labels), format_func=labels.get, key="atlas_colour",
                       help="Any answer (crowd or model), the crowd-vs-model error, or the model's uncertainty")
split = state.split_choice(ctx, "atlas_split")
shown = state.split_rows(held, split, len(ids))  # the rows drawn
counted = state.split_words(held, split, len(ids))

method = METHODS[name]
if method == "umap" and not state.atlas_ready(ctx, "umap"):
    st.info("The UMAP map is computed once for this model and data, then kept on disk: a minute or more the "
            "first time the server computes one (numba compiles it), then ~10 s per 6,000 galaxies. The PCA map "
            "is shown until then.")
    if not st.button("Compute the UMAP map", key="atlas_umap", type="primary", icon=":material/scatter_plot:"):
        method = "pca"
with st.spinner(f"Mapping every galaxy ({method.upper()})…"):
    xy = state.atlas_map(ctx, method)
st.caption(f"{len(shown):,} galaxies on the {method.upper()} map of {ctx.ckpt_path.name}'s embedding · drawn: "
           f"{counted} · the map is laid out from every galaxy's: galaxies the model sees alike lie close together"
           + (" (UMAP cached on disk)" if method == "umap" else ""))

right.button("Wall view", key="atlas_wall", icon=":material/fullscreen:", on_click=wall.open_wall, args=(method,),
             help="The map drawn with real galaxies, filling the screen, its regions named from the crowd's answers: "
                  "for a planetarium or museum wall (?wall=1; with presenter mode, ?present=1, no menus)")

by_split = colour == catalog.HELD_OUT
values = held.astype(np.float32) if by_split else table[colour].to_numpy(np.float32)
where = state.split_labels(held, len(ids))  # each galaxy's split, in words
figure = charts.atlas_split(xy[shown], values[shown], labels[colour], ids[shown],
                            None if held is None else where[shown], by_split, unit=atlas.colour_unit(colour, ctx.task))
event = st.plotly_chart(figure, key=f"{split.replace(' ', '_')}_atlas_map" if split != "all" else "atlas_map",
                        on_select="rerun", selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
picked = np.asarray(event.selection.point_indices, np.int64)
rows = shown[picked[picked < len(shown)]]  # positions on the map drawn -> catalogue rows
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
                st.caption(" · ".join(filter(None, [str(ids[r]), "" if by_split else f"{values[r]:.3g}",
                                                    state.split_badge(where[r])])))


if len(rows) == 1:
    row = int(rows[0])
    near = shown[atlas.nearest_on_map(xy[shown], int(np.flatnonzero(shown == row)[0]), NEAR)]
    st.subheader(f"Galaxy {ids[row]} and the {len(near)} nearest it on the map")
    thumbnails(np.r_[row, near])
    if st.button(f"Open galaxy {ids[row]}", key="atlas_open", type="primary", icon=":material/cyclone:"):
        state.open_galaxy(ids[row])
    st.stop()

st.subheader(f"{len(rows):,} galaxies selected")
mean = "Share held out" if by_split else f"Mean {labels[colour]}"
st.caption(f"{mean}: {np.nanmean(values[rows]):.3g} here, {np.nanmean(values[shown]):.3g} over {counted}"
           + (f" · {int(held[rows].sum()):,} of the selected held out" if held is not None else "")
           + f" · the first {min(SHOWN, len(rows))} shown")
thumbnails(rows[:SHOWN])
if st.button(f"Open {len(rows):,} in Browse", key="atlas_browse", type="primary", icon=":material/grid_view:"):
    state.show_in_browse(ids[rows], f"{len(rows):,} galaxies selected on the Atlas ({method.upper()} map"
                                    + (f" of {counted})" if split != "all" else ")"))
