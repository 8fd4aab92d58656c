"""Oddballs: the galaxies least like the others in the model's feature space (gzcore.oddballs), and
"more like these": pick seeds, mark what is shown interesting or not, and the ranking follows."""
import numpy as np
import pandas as pd
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


ids = table.GalaxyID.to_numpy()
held = state.held_mask(ctx, ids)  # None: the model's split does not apply here
split_of = state.split_labels(held, len(ids))  # 'held out' or 'training split' ('' without a split)
tag = (lambda r: f" · {state.split_badge(split_of[r])}") if held is not None else (lambda r: "")
split = state.split_choice(ctx, "odd_split")
inside, counted = state.split_rows(held, split, len(ids)), state.split_words(held, split, len(ids))
score = state.oddness_for(ctx)
oddest = oddballs.most_anomalous(score, ODDEST, inside)
st.subheader(f"The {len(oddest)} oddest" + {"held out": " held-out galaxies", "training": " of the training split"}
             .get(split, ""))
st.caption(f"Ranked among {counted}; oddness is measured against all {len(ids):,}")
_grid(oddest, [f"oddness {score[r]:.3f}{tag(r)}" for r in oddest], "odd",
      lambda gid: st.checkbox("Seed", key=f"odd_pick_{gid}"))
with st.expander(f"The {len(oddest)} as a table"):
    st.dataframe(pd.DataFrame({"GalaxyID": ids[oddest], "oddness": score[oddest],
                               **({"split": split_of[oddest]} if held is not None else {}),
                               **({"crowd odd": table[odd].to_numpy()[oddest]} if odd in table else {}),
                               "model": catalog.summaries(table, task, oddest)}), hide_index=True, key="odd_table",
                 column_config={"oddness": st.column_config.NumberColumn(format="%.3f"),
                                "crowd odd": st.column_config.NumberColumn(format="percent")})
picked = [gid for gid in ids[oddest].tolist() if st.session_state.get(f"odd_pick_{gid}")]
left, mid, right = st.columns([1, 1, 3], vertical_alignment="bottom")  # drawn before anything the marks may break
left.button(f"More like these ({len(picked)} picked)", on_click=_start, args=(picked,), disabled=not picked,
            type="primary", key="odd_more")
mid.button("Start over", on_click=_start, args=([],), key="odd_clear")
upload = right.file_uploader(f"Or continue from a marks CSV (GalaxyID, mark; at most {oddballs.MAX_MARKS:,} rows)",
                             type="csv", key="odd_upload", max_upload_size=oddballs.MAX_MARKS_BYTES // 2 ** 20)
if upload is not None and st.session_state.get("odd_loaded") != upload.file_id:
    try:
        marks = st.session_state[MARKS] = oddballs.read_marks(upload, upload.name)
        st.session_state.odd_loaded = upload.file_id
    except data.DataError as e:
        state.error(str(e))

row_of = dict(zip(ids.tolist(), range(len(ids)))).get  # one lookup per mark, however many
positives, negatives = oddballs.split_marks(marks, row_of)
unknown = sum(row_of(gid) is None for gid in marks)
if unknown:
    st.warning(f"{unknown:,} of the {len(marks):,} marked galaxies are not among the loaded galaxies: left out.")
if not positives:
    st.info("Tick **Seed** under galaxies that interest you, then press **More like these**.")
    st.stop()
st.subheader("More like these")
seeds = sum(m == "seed" and row_of(gid) is not None for gid, m in marks.items())
st.caption(f"{seeds} seed(s), {len(positives) - seeds} marked interesting, {len(negatives)} not · a logistic "
           f"regression on the embeddings (seeds and interesting against the not interesting and "
           f"{oddballs.BACKGROUND} random galaxies), refitted after every mark; marked galaxies are not shown "
           f"again · ranked among {counted}")
ranked, p = state.more_like_for(ctx, positives, negatives, len(ids))
keep = np.isin(ranked, inside)
ranked, p = ranked[keep][:TO_BROWSE], p[keep][:TO_BROWSE]
_grid(ranked[:SHOWN], [f"match {v:.0%}{tag(r)}" for r, v in zip(ranked[:SHOWN], p[:SHOWN])], "like", _buttons)
left, right = st.columns(2)
left.download_button("Download the marks (CSV)", oddballs.marks_table(marks).to_csv(index=False),
                     file_name="oddballs-marks.csv", mime="text/csv", icon=":material/download:")
if right.button("Open all in Browse", icon=navigation.BROWSE.icon, key="odd_browse"):
    chosen = [gid for gid, m in marks.items() if m != "not interesting"] + ids[ranked].tolist()
    state.show_in_browse(chosen, f"Oddballs: the seeds and the galaxies marked interesting, then the {len(ranked)} "
                              f"ranked most like them among {counted}")
