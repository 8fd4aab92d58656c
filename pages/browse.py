"""Browse: a paged gallery with filters on any answer, error or reach, and sorting."""
import math

import numpy as np
import streamlit as st

from gzcore import catalog, tree
from gzcore.dashboard import navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

PER_PAGE, PER_ROW = 24, 6

st.title("Browse")
ctx = state.context()
labels = catalog.column_labels(ctx.table)
ranges = st.session_state.setdefault("browse_ranges", [])


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
    values = ctx.table[column].to_numpy(np.float64)
    finite = values[np.isfinite(values)]
    lo = math.floor(finite.min() * 100) / 100 if len(finite) else 0.0
    hi = max(math.ceil(finite.max() * 100) / 100, lo + 0.01) if len(finite) else 1.0
    mid.slider("Range", lo, hi, (lo, hi), step=0.01, key=f"browse_range_{column}")
    right.button("Add filter", on_click=_add_filter, type="primary")
    for i, r in enumerate(ranges):
        st.button(f"✕  {r.describe(labels)}", key=f"browse_remove_{i}", on_click=_remove_filter, args=(i,))

sort_options = list(labels) + ["GalaxyID"]
left, mid, right = st.columns([3, 1, 2], vertical_alignment="bottom")
sort_by = left.selectbox("Sort by", sort_options, format_func=lambda c: labels.get(c, c), key="browse_sort")
descending = mid.toggle("Descending", value=True, key="browse_descending")
rows = catalog.select(ctx.table, ranges, sort_by, descending)
pages = max(1, math.ceil(len(rows) / PER_PAGE))
st.session_state.browse_page = min(st.session_state.get("browse_page", 1), pages)
page = right.number_input(f"Page (of {pages})", 1, pages, key="browse_page")
st.caption(f"{len(rows):,} of {len(ctx.table):,} galaxies match · sorted by {labels.get(sort_by, sort_by)}"
           f" · one line per galaxy: the model's most likely path through the tree")

visible = rows[(page - 1) * PER_PAGE: page * PER_PAGE]
model_w = catalog.weighted(ctx.table, rows=visible)
for start in range(0, len(visible), PER_ROW):
    for cell, k in zip(st.columns(PER_ROW), range(start, min(start + PER_ROW, len(visible)))):
        row = int(visible[k])
        gid = int(ctx.table.GalaxyID.iat[row])
        with cell:
            image = state.image_for(ctx, row, size=160)
            if image is not None:
                st.image(image, width="stretch")
            if st.button(f"Open {gid}", key=f"open_{gid}", width="stretch"):
                state.open_galaxy(gid)
            value = "" if sort_by == "GalaxyID" else f"{ctx.table[sort_by].iat[row]:.3g} · "
            st.caption(f"{value}{tree.summary(model_w[k])}")
