"""Galaxy: one galaxy's image, crowd vs model on all 11 questions, its path, neighbours and row."""
import streamlit as st

from gzcore import catalog, neighbours, tree
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

ctx = state.context()
row = state.galaxy_row(ctx)
gid = int(ctx.table.GalaxyID.iat[row])
crowd = catalog.has_crowd(ctx.table)


def _goto():
    state.choose("galaxy", st.session_state.galaxy_id)


st.session_state.galaxy_id = gid
top = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
top[0].title(f"Galaxy {gid}")
top[1].number_input("GalaxyID", step=1, key="galaxy_id", on_change=_goto)
if top[2].button("Explain", icon=":material/visibility:"):
    st.switch_page(navigation.EXPLAIN.script)
top[3].download_button("Download this row (CSV)", ctx.table.iloc[[row]].to_csv(index=False),
                       file_name=f"galaxy-{gid}.csv", mime="text/csv", icon=":material/download:")

left, right = st.columns([2, 3])
with left:
    invert = st.toggle("Invert colours", key="galaxy_invert",
                       help="Faint structure is easier to see dark on light")
    pixels = state.image_for(ctx, row)
    if pixels is not None:
        st.plotly_chart(charts.image(255 - pixels if invert else pixels), key="galaxy_image",
                        config={"scrollZoom": True, "displaylogo": False})
        st.caption("Drag to zoom, double-click to reset.")
with right:
    kind = st.segmented_control("Values", ["conditional", "weighted"], default="conditional",
                                key="galaxy_kind", help="Conditional: fraction of those asked the question. "
                                "Weighted: times the share of volunteers who reached it (the Kaggle labels).")
    kind = kind or "conditional"  # the control can be cleared
    sources = ("crowd", "model") if crowd else ("model",)
    for source in sources:
        steps = tree.most_likely_path(catalog.weighted(ctx.table, source, rows=[row]))
        st.markdown(f"**{source.capitalize()}'s path:** " + " → ".join(
            f"Q{s.question} {s.answer.long} ({s.probability:.0%})" for s in steps))
    if crowd:
        worst = ctx.table["disagreement Q"].iat[row]
        st.caption(f"Per-galaxy RMSE {ctx.table.rmse.iat[row]:.3f} · confident disagreement "
                   f"{ctx.table.disagreement.iat[row]:.2f} (largest at Q{worst})")
    st.markdown(f":orange-background[crowd] :blue-background[model] · questions reached by fewer than "
                f"{catalog.LOW_REACH:.0%} of the volunteers are greyed")

st.subheader("The 11 questions")
reach_source = "crowd" if crowd else "model"
for i, q in enumerate(tree.QUESTIONS):
    if i % 2 == 0:
        cells = st.columns(2)
    values = {s: ctx.table[[catalog.col(a.column, s, kind) for a in q.answers]].iloc[row].to_numpy(float)
              for s in sources}
    reach = float(ctx.table[catalog.qcol("reach", q.number, reach_source)].iat[row])
    greyed = reach < catalog.LOW_REACH
    with cells[i % 2]:
        title = f"**{q.title}**"
        st.markdown(f":gray[{title}]" if greyed else title)
        st.caption(f"Reached by {reach:.0%} of the {reach_source}" + (" (few: greyed)" if greyed else ""))
        st.plotly_chart(charts.answers(q, values.get("crowd"), values["model"], greyed),
                        key=f"galaxy_q{q.number}", config={"displayModeBar": False})

st.subheader("Galaxies like this one")
st.caption("Nearest in the model's feature space (cosine similarity of its embedding)")
near, sims = neighbours.nearest(state.embeddings_for(ctx), row, k=8)
for cell, r, sim in zip(st.columns(8), near, sims):
    with cell:
        image = state.image_for(ctx, int(r), size=160)
        if image is not None:
            st.image(image, width="stretch")
        other = int(ctx.table.GalaxyID.iat[int(r)])
        if st.button(str(other), key=f"near_{other}", width="stretch"):
            state.open_galaxy(other)
        st.caption(f"similarity {sim:.3f}")
