"""Browse: a paged gallery with filters on any answer (or target), error, spread or reach, and sorting
(least certain first: `uncertainty`): of the data folder's catalogue, or of a predictions table of
any size chosen on Home (`?predictions=X.parquet`), read a column at a time."""
import math

import numpy as np
import streamlit as st

from gzcore import catalog, targets, tree
from gzcore.dashboard import access, charts, navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

PER_PAGE, PER_ROW = 24, 6

st.title("Browse")
predictions = state.predictions_path()
if predictions:
    table, task = state.predictions_catalogue(), targets.TREE
    labels = state.predictions_labels(table)
    folder = state.images_dir()
    st.caption(access.shown(f"Predictions `{predictions}` · " + (f"images from `{folder}`" if folder else
               "no images folder (choose one on Home for thumbnails)")))
else:
    ctx = state.context()
    table, task = ctx.table, ctx.task
    labels = catalog.column_labels(table, task)
ranges = st.session_state.setdefault("browse_ranges", [])
ranges[:] = [r for r in ranges if r.column in table]  # another model's filters do not apply
for key, options in (("browse_column", labels), ("browse_sort", [*labels, "GalaxyID"])):
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)


def _add_filter():
    column = st.session_state.browse_column
    lo, hi = st.session_state[f"browse_range_{column}"]
    ranges.append(catalog.Range(column, lo, hi))
    st.session_state.browse_page = 1


def _remove_filter(i):
    ranges.pop(i)
    st.session_state.browse_page = 1


with st.expander("Filters", expanded=True):
    left, mid, right = st.columns([3, 3, 1], vertical_alignment="bottom")
    column = left.selectbox("Filter on", list(labels), format_func=labels.get, key="browse_column",
                            help="Type to search, e.g. 'crowd conditional spiral'")
    lo, hi, step = catalog.bounds(table[column].to_numpy())
    mid.slider("Range", lo, hi, (lo, hi), step=step, key=f"browse_range_{column}",
               format=f"%.{max(2, -math.floor(math.log10(step)))}f")
    right.button("Add filter", on_click=_add_filter, type="primary")
    for i, r in enumerate(ranges):
        st.button(f"✕  {r.describe(labels)}", key=f"browse_remove_{i}", on_click=_remove_filter, args=(i,))

sort_options = list(labels) + ["GalaxyID"]
left, mid, right = st.columns([3, 1, 2], vertical_alignment="bottom")
sort_by = left.selectbox("Sort by", sort_options, format_func=lambda c: labels.get(c, c), key="browse_sort")
descending = mid.toggle("Descending", value=True, key="browse_descending")
pages = max(1, math.ceil(len(table) / PER_PAGE))
st.session_state.browse_page = min(st.session_state.get("browse_page", 1), pages)
matching, visible = catalog.page(table, ranges, sort_by, descending,
                                 (st.session_state.browse_page - 1) * PER_PAGE, PER_PAGE)
pages = max(1, math.ceil(matching / PER_PAGE))
if st.session_state.browse_page > pages:  # fewer matches than the page asked for: the last page
    st.session_state.browse_page = pages
    matching, visible = catalog.page(table, ranges, sort_by, descending, (pages - 1) * PER_PAGE, PER_PAGE)
right.number_input(f"Page (of {pages:,})", 1, pages, key="browse_page")
line = "the model's most likely path through the tree" if task.kind == "tree" else \
    "the model's prediction (± its spread) and the true value"
st.caption(f"{matching:,} of {len(table):,} galaxies match · sorted by {labels.get(sort_by, sort_by)}"
           f" · one line per galaxy: {line}")


@st.dialog("Galaxy", width="large")
def _details(row: int) -> None:
    """One galaxy of a predictions table: its image and the model's answers to the 11 questions."""
    galaxy = table.iloc[[row]]  # one row: a large catalogue reads no whole column for it
    gid = int(galaxy.GalaxyID.iat[0])
    st.subheader(f"Galaxy {gid}")
    left, right = st.columns([1, 2])
    image = state.predictions_image(gid)
    if image is not None:
        left.image(image, width="stretch")
    right.markdown("**Model's path:** " + " → ".join(f"Q{s.question} {s.answer.long} ({s.probability:.0%})"
                                                  for s in tree.most_likely_path(catalog.weighted(galaxy)[0])))
    spread = catalog.has_spread(table)
    for i, q in enumerate(tree.QUESTIONS):
        if i % 2 == 0:
            cells = st.columns(2)
        values = catalog.galaxy_values(galaxy, 0, [a.column for a in q.answers], "conditional")
        reach = float(galaxy[catalog.qcol("reach", q.number)].iat[0])
        cells[i % 2].markdown(f"**{q.title}** · reached by {reach:.0%}")
        cells[i % 2].plotly_chart(charts.answers([a.long for a in q.answers], None, values["model"],
                                       reach < catalog.LOW_REACH, values["spread"] if spread else None),
                        key=f"details_q{q.number}", config={"displayModeBar": False})


lines = catalog.summaries(table, task, visible)
for start in range(0, len(visible), PER_ROW):
    for cell, k in zip(st.columns(PER_ROW), range(start, min(start + PER_ROW, len(visible)))):
        row = int(visible[k])
        gid = int(table.GalaxyID.iat[row])
        with cell:
            image = state.predictions_image(gid, size=160) if predictions else state.image_for(ctx, row, size=160)
            if image is not None:
                st.image(image, width="stretch")
            if st.button(f"Open {gid}", key=f"open_{gid}", width="stretch"):
                if predictions:
                    _details(row)
                else:
                    state.open_galaxy(gid)
            value = "" if sort_by == "GalaxyID" else f"{np.float64(table[sort_by].iat[row]):.3g} · "
            st.caption(f"{value}{lines[k]}")
