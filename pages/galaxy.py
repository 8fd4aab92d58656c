"""Galaxy: one galaxy's image, crowd vs model (± its spread) on all 11 questions, or predicted vs
true targets or class probabilities for a model of other targets; its path, neighbours and row."""
import numpy as np
import streamlit as st

from gzcore import catalog, neighbours, tree
from gzcore.dashboard import charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

ctx = state.context()
row = state.galaxy_row(ctx)
gid = int(ctx.table.GalaxyID.iat[row])
crowd, spread, task = catalog.has_crowd(ctx.table), catalog.has_spread(ctx.table), ctx.task
sources = ("crowd", "model") if crowd else ("model",)


def _goto():
    state.choose("galaxy", st.session_state.galaxy_id.strip())


st.session_state.galaxy_id = str(gid)  # text: SDSS objIDs (~1.2e18) are beyond a browser's exact integers
top = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
top[0].title(f"Galaxy {gid}")
top[1].text_input("GalaxyID", key="galaxy_id", on_change=_goto)
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
    st.markdown(f"**The model predicts** {state.describe_task(task)}")
    if task.kind == "tree":
        kind = st.segmented_control(
            "Values", ["conditional", "weighted"], default="conditional", key="galaxy_kind",
            help="Conditional: fraction of those asked the question. Weighted: times the share of volunteers "
                 "who reached it (the Kaggle labels).")
        kind = kind or "conditional"  # the control can be cleared
        for source in sources:
            w = catalog.weighted(ctx.table, source, rows=[row])[0]
            steps = tree.most_likely_path(w)
            known = [s for s in steps if not np.isnan(w[tree.SLICES[s.question]]).any()]  # partial labels
            st.markdown(f"**{source.capitalize()}'s path:** " + " → ".join(
                f"Q{s.question} {s.answer.long} ({s.probability:.0%})" for s in known) +
                (" (questions without crowd labels left out)" if len(known) < len(steps) else ""))
    if crowd:
        worst = f" · confident disagreement {ctx.table.disagreement.iat[row]:.2f} (largest at " \
                f"Q{ctx.table['disagreement Q'].iat[row]})" if task.kind == "tree" else ""
        st.caption(f"Per-galaxy RMSE {ctx.table.rmse.iat[row]:.3f}{worst}")
    if spread:
        st.caption(f"± spread: {state.spread_source(ctx)} (uncertainty "
                   f"{ctx.table.uncertainty.iat[row]:.3g})")
    if task.kind == "tree":
        st.markdown(f":orange-background[crowd] :blue-background[model] · questions reached by fewer than "
                    f"{catalog.LOW_REACH:.0%} of the volunteers are greyed")

if task.kind == "tree":
    st.subheader("The 11 questions")
    crowd_w = catalog.weighted(ctx.table, "crowd", rows=[row])[0] if crowd else None
    for i, q in enumerate(tree.QUESTIONS):
        if i % 2 == 0:
            cells = st.columns(2)
        values = catalog.galaxy_values(ctx.table, row, [a.column for a in q.answers], kind)
        labelled = crowd and not np.isnan(crowd_w[tree.SLICES[q.number]]).any()  # partial labels: not all
        reach_source = "crowd" if labelled else "model"
        reach = float(ctx.table[catalog.qcol("reach", q.number, reach_source)].iat[row])
        greyed = reach < catalog.LOW_REACH
        with cells[i % 2]:
            title = f"**{q.title}**"
            st.markdown(f":gray[{title}]" if greyed else title)
            st.caption(f"Reached by {reach:.0%} of the {reach_source}" + (" (few: greyed)" if greyed else "")
                       + ("" if labelled or not crowd else " · no crowd labels for this question"))
            st.plotly_chart(charts.answers([a.long for a in q.answers], values["crowd"], values["model"],
                                           greyed, values["spread"] if spread else None),
                            key=f"galaxy_q{q.number}", config={"displayModeBar": False})
elif task.kind == "regression":
    st.subheader("Predicted vs true" if crowd else "Predicted")
    st.caption(":blue[●] model ± spread · :orange[◆] true value · the axis spans the model's and the true "
               "values of all galaxies")
    values = catalog.galaxy_values(ctx.table, row, task.columns)
    for i, c in enumerate(task.columns):
        everything = ctx.table[[catalog.col(c, s) for s in sources]].to_numpy(np.float64)
        span = (np.nanmin(everything), np.nanmax(everything))
        model, truth, error = values["model"][i], values["crowd"][i], values["spread"][i]
        metric, chart = st.columns([1, 3], vertical_alignment="center")
        metric.metric(c, f"{model:.3g}" + ("" if np.isnan(error) else f" ± {error:.2g}"), delta_color="off",
                      delta=None if np.isnan(truth) else f"{model - truth:+.3g} vs true {truth:.3g}")
        chart.plotly_chart(charts.target(c, model, error, truth, span), key=f"galaxy_target_{i}",
                           config={"displayModeBar": False})
else:
    st.subheader("Class probabilities")
    st.markdown(":orange-background[true class] :blue-background[model]")
    values = catalog.galaxy_values(ctx.table, row, task.columns)
    st.plotly_chart(charts.answers(list(task.columns), values["crowd"], values["model"], False),
                    key="galaxy_classes", config={"displayModeBar": False})

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
