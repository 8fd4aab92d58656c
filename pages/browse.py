"""Browse: a paged gallery with filters on any answer (or target), error, spread or reach, and sorting
(least certain first: `uncertainty`; oddest first: the data folder's anomaly score, gzcore.oddballs):
of the data folder's catalogue, or of a predictions table of any size chosen on Home
(`?predictions=X.parquet`), read a column at a time. Another page may list the galaxies to show, in
its order (state.show_in_browse: an Atlas selection, an Oddballs ranking); filters narrow them."""
import math

import numpy as np
import pandas as pd
import streamlit as st

from gzcore import catalog, oddballs, targets, tree
from gzcore.dashboard import access, charts, navigation, pictures, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

PER_PAGE, PER_ROW = 24, 6

st.title("Browse")


def _gallery(cells) -> None:
    """The grid: `cells` of (GalaxyID, image or a function giving it, caption, on_open), PER_ROW a row."""
    cells = list(cells)
    for start in range(0, len(cells), PER_ROW):
        for column, (gid, image, caption, on_open) in zip(st.columns(PER_ROW), cells[start:start + PER_ROW]):
            with column:
                image = image() if callable(image) else image
                if image is not None:
                    st.image(image, width="stretch")
                if st.button(f"Open {gid}", key=f"open_{gid}", width="stretch"):
                    on_open()
                st.caption(caption)


def _preview(ctx: state.Context) -> None:
    """Browse before the catalogue is ready: every galaxy in file order, each page predicted as it is
    shown, and the progress of the whole catalogue, which brings filters and sorting."""
    listed = ctx.listed
    pages = max(1, math.ceil(len(listed) / PER_PAGE))
    st.session_state.browse_page = min(st.session_state.get("browse_page", 1), pages)
    state.watch(ctx.jobs(), "Meanwhile: every galaxy in file order, each page predicted as you open it. Filters, "
                            "sorting and the confident-disagreement order need every galaxy's prediction: they "
                            "appear here by themselves when it is done.")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    right.number_input(f"Page (of {pages:,})", 1, pages, key="browse_page")
    start = (st.session_state.browse_page - 1) * PER_PAGE
    rows = range(start, min(start + PER_PAGE, len(listed)))
    part = state.preview_table(ctx, rows)
    line = "the model's most likely path through the tree" if ctx.task.kind == "tree" else \
        "the model's prediction (± its spread) and the true value"
    left.caption(f"{len(listed):,} galaxies in file order (preview) · one line per galaxy: {line}")
    shown = dict(zip(part.GalaxyID.to_numpy().tolist(), catalog.summaries(part, ctx.task)))
    _gallery((int(listed.ids[r]), (lambda r=r: pictures.shown(listed.paths[r], size=160)),
              shown.get(int(listed.ids[r]), ":red[cannot decode this image]"),
              (lambda gid=int(listed.ids[r]): state.open_galaxy(gid))) for r in rows)
predictions = state.predictions_path()
if predictions:
    table, task = state.predictions_catalogue(), targets.TREE
    labels = state.predictions_labels(table)
    folder = state.images_dir()
    st.caption(access.shown(f"Predictions `{predictions}` · " + (f"images from `{folder}`" if folder else
               "no images folder (choose one on Home for thumbnails)")))
else:
    ctx = state.context()
    table, task = ctx.table_if_ready(), ctx.task
    if table is None:  # a cold cache: the galaxies in file order, a page at a time, while the rest is computed
        _preview(ctx)
        st.stop()
    labels = catalog.column_labels(table, task)
sort_labels = {**labels, "GalaxyID": "GalaxyID"}
if not predictions:  # the anomaly score needs the model's embeddings, which a predictions table lacks
    sort_labels[oddballs.COLUMN] = "oddness (anomaly score; descending: oddest first)"
ranges = st.session_state.setdefault("browse_ranges", [])
ranges[:] = [r for r in ranges if r.column in table]  # another model's filters do not apply
for key, options in (("browse_column", labels), ("browse_sort", sort_labels)):
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
if st.session_state.get("browse_sort") == oddballs.COLUMN:
    table = table.assign(**{oddballs.COLUMN: state.oddness_for(ctx)})

listed = st.session_state.get(state.BROWSE_IDS)  # {"ids": [...], "why": ...}: show those alone, in order
if st.session_state.get("browse_listed") != listed:  # a new list, or none: from the first page
    st.session_state.browse_listed, st.session_state.browse_page = listed, 1
listed_rows = None
if listed:
    left, right = st.columns([4, 1], vertical_alignment="center")
    rows = pd.Index(table.GalaxyID.to_numpy()).get_indexer_for(listed["ids"])
    listed_rows = rows[rows >= 0]
    missing = f" ({(rows < 0).sum():,} of them not in this catalogue)" if (rows < 0).any() else ""
    left.info(f"{listed['why']} · {len(listed['ids']):,} galaxies{missing}", icon=":material/filter_list:")
    right.button("Show every galaxy", key="browse_all", on_click=st.session_state.pop, args=(state.BROWSE_IDS,))


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

left, mid, right = st.columns([3, 1, 2], vertical_alignment="bottom")
sort_by = left.selectbox("Sort by", list(sort_labels), format_func=sort_labels.get, key="browse_sort",
                         disabled=bool(listed), help="A list is shown in its order" if listed else None)
descending = mid.toggle("Descending", value=True, key="browse_descending", disabled=bool(listed))
sort_by = None if listed else sort_by
held_only = False  # an error sort ranks the held-out galaxies alone: a fitted galaxy's error says little
if not predictions and sort_by in catalog.error_columns(table):
    held_only = not st.toggle("Rank the training split's galaxies too", key="browse_fitted",
                              help="By default an error sort ranks only the galaxies the model never trained on")
    if held_only:
        table = state.with_split(ctx, table)
shown_ranges = ranges + [catalog.Range(catalog.HELD_OUT, 1, 1)] * held_only


def _page(number: int) -> tuple[int, np.ndarray]:
    """(galaxies matching, the rows of page `number`)."""
    start = (number - 1) * PER_PAGE
    if not listed:
        return catalog.page(table, shown_ranges, sort_by, descending, start, PER_PAGE)
    rows = listed_rows[np.isin(listed_rows, catalog.select(table, shown_ranges))]
    return len(rows), rows[start:start + PER_PAGE]


pages = max(1, math.ceil(len(table) / PER_PAGE))
st.session_state.browse_page = min(st.session_state.get("browse_page", 1), pages)
matching, visible = _page(st.session_state.browse_page)
pages = max(1, math.ceil(matching / PER_PAGE))
if st.session_state.browse_page > pages:  # fewer matches than the page asked for: the last page
    st.session_state.browse_page = pages
    matching, visible = _page(pages)
right.number_input(f"Page (of {pages:,})", 1, pages, key="browse_page")
line = "the model's most likely path through the tree" if task.kind == "tree" else \
    "the model's prediction (± its spread) and the true value"
order = f"sorted by {sort_labels[sort_by]}" if sort_by else "in the order listed"
among = ", held out (never trained on)" if held_only else ""
st.caption(f"{matching:,} of {len(table) if listed_rows is None else len(listed_rows):,} galaxies match{among} · "
           f"{order} · one line per galaxy: {line}")


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
paths = None if predictions else ctx.galaxies.paths  # once: each ctx.galaxies looks the model and data up


def _cell(k: int) -> tuple:
    row = int(visible[k])
    gid = int(table.GalaxyID.iat[row])
    image = (lambda: state.predictions_image(gid, size=160)) if predictions else \
        (lambda: pictures.shown(paths[row], size=160))  # JPEG bytes, encoded once per server
    value = "" if sort_by in (None, "GalaxyID") else \
        f"{targets.value_text(np.float64(table[sort_by].iat[row]), unit=catalog.unit_of(sort_by, task))} · "
    return gid, image, f"{value}{lines[k]}", (lambda: _details(row)) if predictions else (lambda: state.open_galaxy(gid))


_gallery(_cell(k) for k in range(len(visible)))
