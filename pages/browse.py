"""Browse: a paged gallery with filters on any answer (or target), error, spread or reach, and sorting
(least certain first: `uncertainty`)."""
import math

import streamlit as st

from gzcore import catalog
from gzcore.dashboard import navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

PER_PAGE, PER_ROW = 24, 6

st.title("Browse")
ctx = state.context()
labels = catalog.column_labels(ctx.table, ctx.task)
ranges = st.session_state.setdefault("browse_ranges", [])
ranges[:] = [r for r in ranges if r.column in ctx.table]  # another model's filters do not apply
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
    lo, hi, step = catalog.bounds(ctx.table[column].to_numpy())
    mid.slider("Range", lo, hi, (lo, hi), step=step, key=f"browse_range_{column}",
               format=f"%.{max(2, -math.floor(math.log10(step)))}f")
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
line = "the model's most likely path through the tree" if ctx.task.kind == "tree" else \
    "the model's prediction (± its spread) and the true value"
st.caption(f"{len(rows):,} of {len(ctx.table):,} galaxies match · sorted by {labels.get(sort_by, sort_by)}"
           f" · one line per galaxy: {line}")

visible = rows[(page - 1) * PER_PAGE: page * PER_PAGE]
lines = catalog.summaries(ctx.table, ctx.task, visible)
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
            st.caption(f"{value}{lines[k]}")
