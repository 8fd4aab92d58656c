"""Play: answer the volunteers' questions about a galaxy, then see how the crowd and the model
answered and where you parted ways."""
import numpy as np
import streamlit as st

from gzcore import catalog, play, tree
from gzcore.dashboard import navigation, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

st.title("Play: classify a galaxy")
ctx = state.context()
state.tree_only(ctx)
state.labelled(ctx)


def _new_galaxy():
    st.session_state.play_row = int(np.random.default_rng().integers(len(ctx.table)))
    st.session_state.play_walk = []


def _answer(number, k):
    if play.next_question(st.session_state.play_walk) == number:  # ignore a second click on an old question
        st.session_state.play_walk.append((number, k))


if st.session_state.get("play_row", len(ctx.table)) >= len(ctx.table):
    _new_galaxy()
row, walk = st.session_state.play_row, st.session_state.play_walk
st.caption("Galaxy Zoo volunteers answered these questions for each galaxy; "
           "your answer decides the next question.")
left, right = st.columns([2, 3])
with left:
    image = state.image_for(ctx, row)
    if image is not None:
        st.image(image, width="stretch")
    buttons = st.columns(2)
    buttons[0].button("Another galaxy", on_click=_new_galaxy, icon=":material/casino:", width="stretch")
    buttons[1].button("Start again", on_click=st.session_state.play_walk.clear, icon=":material/undo:",
                      width="stretch", disabled=not walk)
with right:
    number = play.next_question(walk)
    if number is not None:
        q = tree.QUESTION_BY_NUMBER[number]
        st.caption(f"Question {len(walk) + 1}")
        st.subheader(q.text)
        for k, a in enumerate(q.answers):
            st.button(a.long, key=f"play_{number}_{k}", on_click=_answer, args=(number, k), width="stretch")
        st.stop()
    comparison = play.compare(walk, catalog.weighted(ctx.table, "crowd", rows=[row]),
                              catalog.weighted(ctx.table, rows=[row]))
    for source in ("crowd", "model"):
        parted = play.parted_ways(comparison, source)
        if parted is None:
            known = int(comparison[f"{source} agrees"].notna().sum())  # partial labels: fewer for the crowd
            st.success(f"The {source}'s top answer matched yours on all {known} questions" +
                       (" it has labels for." if known < len(walk) else "."))
        else:
            r = comparison.iloc[parted]
            st.warning(f"You parted ways with the {source} at {r.question.split('.')[0]}: you said "
                       f"**{r.you}**, the {source} said **{r[f'{source} answer']}**.")
    if st.button("Open this galaxy", icon=":material/cyclone:"):
        state.open_galaxy(int(ctx.table.GalaxyID.iat[row]))
shares = [f"{s} share of your answer" for s in ("crowd", "model")]
table = comparison.drop(columns=["crowd agrees", "model agrees"])
table[shares] *= 100  # percent, for the progress bars
st.dataframe(table, hide_index=True, column_config={
    "question": st.column_config.TextColumn(width="large"),
    **{c: st.column_config.ProgressColumn(c.replace(" of your answer", ""), min_value=0, max_value=100,
                                          format="%.0f%%", width="small") for c in shares}})
