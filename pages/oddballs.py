"""Oddballs: the galaxies least like the others in the model's feature space (gzcore.oddballs), and
"more like these": pick seeds, mark what is shown interesting or not, and the ranking follows."""
import streamlit as st

from gzcore import catalog, data, oddballs
from gzcore.dashboard import navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

PER_ROW, ODDEST, SHOWN, TO_BROWSE = 6, 24, 12, 96
MARKS = "odd_marks"  # session state: {GalaxyID: mark} of the search (oddballs.MARKS), in the order made

ctx = state.context()
table, task = ctx.table, ctx.task
odd = catalog.col("Class6.1", "crowd")
st.title("Oddballs")
crowd_odd = " Crowd odd: the volunteers' share answering yes to Q6, “Is there anything odd?”"
st.caption(f"The galaxies least like the others: oddness is the mean cosine distance to their {oddballs.K} "
           f"nearest neighbours in the model's feature space (its embedding).{crowd_odd if odd in table else ''}")
marks = st.session_state.setdefault(MARKS, {})


def _start(picked):
    st.session_state[MARKS] = {gid: "seed" for gid in picked}


def _mark(gid, mark):
    st.session_state[MARKS][gid] = mark


def _buttons(gid):
    for label, icon, mark in (("Interesting", ":material/thumb_up:", "interesting"),
                              ("Not interesting", ":material/thumb_down:", "not interesting")):
        st.button(label, icon=icon, key=f"like_{mark}_{gid}", on_click=_mark, args=(gid, mark), width="stretch")


def _grid(rows, values, prefix, render):
    """Thumbnails of `rows` with `values` ("oddness 0.31"), the crowd's Q6, the model's summary and
    `render(gid)`'s widgets."""
    lines = catalog.summaries(table, task, rows)
    for start in range(0, len(rows), PER_ROW):
        for cell, k in zip(st.columns(PER_ROW), range(start, min(start + PER_ROW, len(rows)))):
            row, gid = int(rows[k]), int(table.GalaxyID.iat[int(rows[k])])
            with cell:
                image = state.image_for(ctx, row, size=160)
                if image is not None:
                    st.image(image, width="stretch")
                if st.button(f"Open {gid}", key=f"{prefix}_open_{gid}", width="stretch"):
                    state.open_galaxy(gid)
                render(gid)
                crowd = f" · crowd odd {table[odd].iat[row]:.0%}" if odd in table else ""
                st.caption(f"{values[k]}{crowd} · {lines[k]}")


held = st.toggle("Held-out galaxies only", key="odd_held",
                 help="The checkpoint's held-out split: galaxies the model never trained on")
score = state.oddness_for(ctx)
oddest = oddballs.most_anomalous(score, ODDEST, state.held_out_rows(ctx.data_dir, ctx.ckpt_path, ctx.labels_path)
                                 if held else None)
st.subheader(f"The {len(oddest)} oddest" + (" held-out galaxies" if held else ""))
_grid(oddest, [f"oddness {score[r]:.3f}" for r in oddest], "odd",
      lambda gid: st.checkbox("Seed", key=f"odd_pick_{gid}"))
picked = [gid for gid in table.GalaxyID.to_numpy()[oddest].tolist() if st.session_state.get(f"odd_pick_{gid}")]
left, right = st.columns([1, 2], vertical_alignment="bottom")
left.button(f"More like these ({len(picked)} picked)", on_click=_start, args=(picked,), disabled=not picked,
            type="primary", key="odd_more")
upload = right.file_uploader("Or continue from a marks CSV", type="csv", key="odd_upload")
if upload is not None and st.session_state.get("odd_loaded") != upload.file_id:
    try:
        marks = st.session_state[MARKS] = oddballs.read_marks(upload, upload.name)
        st.session_state.odd_loaded = upload.file_id
    except data.DataError as e:
        state.error(str(e))

positives, negatives = oddballs.split_marks(marks, ctx.row_of)
if not positives:
    st.info("Tick **Seed** under galaxies that interest you, then press **More like these**.")
    st.stop()
st.subheader("More like these")
seeds = sum(m == "seed" for m in marks.values())
st.caption(f"{seeds} seed(s), {len(positives) - seeds} marked interesting, {len(negatives)} not · a logistic "
           f"regression on the embeddings (seeds and interesting against the not interesting and "
           f"{oddballs.BACKGROUND} random galaxies), refitted after every mark; marked galaxies are not shown again")
ranked, p = state.more_like_for(ctx, positives, negatives, TO_BROWSE)
_grid(ranked[:SHOWN], [f"match {v:.0%}" for v in p[:SHOWN]], "like", _buttons)
left, mid, right = st.columns(3)
left.download_button("Download the marks (CSV)", oddballs.marks_table(marks).to_csv(index=False),
                     file_name="oddballs-marks.csv", mime="text/csv", icon=":material/download:")
if mid.button("Open all in Browse", icon=navigation.BROWSE.icon, key="odd_browse"):
    ids = [gid for gid, m in marks.items() if m != "not interesting"] + table.GalaxyID.to_numpy()[ranked].tolist()
    state.show_in_browse(ids, f"Oddballs: the seeds and the galaxies marked interesting, then the {len(ranked)} "
                              f"ranked most like them")
right.button("Start over", on_click=_start, args=([],), key="odd_clear")
