"""Galaxy: one galaxy's image, crowd vs model (± its spread) on all 11 questions, or predicted vs
true targets or class probabilities for a model of other targets; its path, neighbours and row.
With a second model chosen on Compare, its answers beside the model's (a toggle drops it)."""
import numpy as np
import streamlit as st

from gzcore import catalog, neighbours, targets
from gzcore.dashboard import answers, charts, navigation, pictures, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

ctx = state.context()
shown = state.open_galaxy_view(ctx)  # before the catalogue is ready: this galaxy alone, predicted now
table, row = shown.table, shown.row
gid = int(table.GalaxyID.iat[row])
crowd, spread, task = catalog.has_crowd(table), catalog.has_spread(table), ctx.task
other = state.comparison_path()
other_info = state.checkpoint_info(other) if other else None
if other_info is None or (other_info["task"].kind, other_info["task"].columns) != (task.kind, task.columns):
    other = None  # gone, unreadable, or predicting other outputs than this model
beside = None  # the second model's (table, row, name) for answers.paths / answers.outputs
other_table, other_job = (None, None) if other is None or shown.preview else \
    state.table_if_ready(other, ctx.data_dir, ctx.labels_path, wait_for_it=not ctx.previewed)
if other_table is not None:
    other_row = next(iter(np.flatnonzero(other_table.GalaxyID.to_numpy() == gid)), None)
    beside = None if other_row is None else (other_table, int(other_row), other.name)


def _goto():
    state.choose("galaxy", st.session_state.galaxy_id.strip())


st.session_state.galaxy_id = str(gid)  # text: SDSS objIDs (~1.2e18) are beyond a browser's exact integers
top = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
top[0].title(f"Galaxy {gid}")
top[1].text_input("GalaxyID", key="galaxy_id", on_change=_goto)
if top[2].button("Explain", icon=":material/visibility:"):
    st.switch_page(navigation.EXPLAIN.script)
top[3].download_button("Download this row (CSV)", table.iloc[[row]].to_csv(index=False),
                       file_name=f"galaxy-{gid}.csv", mime="text/csv", icon=":material/download:")

split = state.split_of_galaxy(ctx, gid)
st.markdown((":green-badge[held out] the model never trained on this galaxy" if split == "held out" else
             ":orange-badge[in the training split] the model trained on this galaxy's labels: its agreement "
             "with the crowd here is no test"))
left, right = st.columns([2, 3])
with left:
    invert = st.toggle("Invert colours", key="galaxy_invert",
                       help="Faint structure is easier to see dark on light")
    pixels = state.picture(shown.path)
    if pixels is not None:
        st.plotly_chart(charts.image(255 - pixels if invert else pixels), key="galaxy_image",
                        config={"scrollZoom": True, "displaylogo": False})
        st.caption("Drag to zoom, double-click to reset.")
with right:
    st.markdown(f"**The model predicts** {state.describe_task(task)}")
    if other is not None:
        st.toggle(f"Beside `{other.name}` (chosen on Compare)", value=True, key="galaxy_compare",
                  on_change=state.compare_with, args=(None,), help="Switch off to drop the second model")
        if other_table is None:
            st.caption(f"`{other.name}`'s answers appear here once its catalogue is computed")
            state.watch([other_job] if other_job else ctx.jobs(), "The rest of this page is ready.")
        elif beside is None:
            st.caption(f"`{other.name}` has no prediction for this galaxy")
    if task.kind == "tree":
        kind = st.segmented_control(
            "Values", ["conditional", "weighted"], default="conditional", key="galaxy_kind",
            help="Conditional: fraction of those asked the question. Weighted: times the share of volunteers "
                 "who reached it (the Kaggle labels).")
        kind = kind or "conditional"  # the control can be cleared
        answers.paths(table, row, beside)
    if crowd:
        worst = f" · confident disagreement {table.disagreement.iat[row]:.2f} (largest at " \
                f"Q{table['disagreement Q'].iat[row]})" if task.kind == "tree" else ""
        unit = catalog.unit_of("rmse", task)
        st.caption(f"Per-galaxy RMSE {table.rmse.iat[row]:.3f}{' ' + unit if unit else ''}{worst}")
    if spread:
        st.caption(f"± spread: {state.spread_source(ctx)} (uncertainty "
                   f"{targets.value_text(table.uncertainty.iat[row], unit=catalog.unit_of('uncertainty', task))})")
    if task.kind == "tree":
        second = f" :green-background[{other.name}]" if beside else ""
        st.markdown(f":orange-background[crowd] :blue-background[model]{second} · questions reached by fewer "
                    f"than {catalog.LOW_REACH:.0%} of the volunteers are greyed")

answers.outputs(table, row, task, kind if task.kind == "tree" else "conditional", beside=beside)

st.subheader("Galaxies like this one")
embeddings = state.embeddings_if_ready(ctx)
if embeddings is None or shown.preview:
    st.caption("Look-alikes need every galaxy's embedding, computed once in the background; the rest of "
               "this page is ready.")
    state.watch(ctx.jobs() + ([state.embeddings_key(ctx)] if ctx.crops_ready else []),
                "They appear here by themselves when it is done.")
    st.stop()
st.caption("Nearest in the model's feature space (cosine similarity of its embedding)")
near, sims = neighbours.nearest(embeddings, row, k=8)
paths = ctx.galaxies.paths  # once: each ctx.galaxies looks up the loaded model and data again
for cell, r, sim in zip(st.columns(8), near, sims):
    with cell:
        image = pictures.shown(paths[int(r)], size=160)  # JPEG bytes, encoded once per server
        if image is not None:
            st.image(image, width="stretch")
        neighbour = int(table.GalaxyID.iat[int(r)])
        if st.button(str(neighbour), key=f"near_{neighbour}", width="stretch"):
            state.open_galaxy(neighbour)
        st.caption(f"similarity {sim:.3f}")
