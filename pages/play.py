"""Play: answer the volunteers' questions about a galaxy, as on Galaxy Zoo's classify page (each
answer a button with our drawing and the data's galaxy the crowd was surest of; a field guide;
invert and zoom), then see your path beside the crowd's and the model's, with vote bars. With
`?room=NAME` (a presenter's screen) the audience votes from their phones (pages/vote.py), tallied live."""
import numpy as np
import streamlit as st

from gzcore import catalog, play, rooms, tree
from gzcore.dashboard import field_guide, icons, navigation, outreach, presenter, state
from gzcore.dashboard.charts import CROWD, MODEL

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page

room = rooms.valid_name(st.query_params.get("room", ""))
st.title("Vote from your phone" if room else "Play: classify a galaxy")
ctx = state.context()
state.tree_only(ctx)
state.labelled(ctx)
SOURCES = {"The room": outreach.ROOM_COLOUR, "The crowd": CROWD, "The model": MODEL}


def _new_galaxy():
    st.session_state.play_row = int(np.random.default_rng().integers(len(ctx.table)))
    st.session_state.play_walk = []


def _seen_how_to_play():
    st.session_state.play_how_seen = True


def _answer(number, k):
    if play.next_question(st.session_state.play_walk) == number:  # ignore a second click on an old question
        st.session_state.play_walk.append((number, k))


if st.session_state.get("play_row", len(ctx.table)) >= len(ctx.table):
    _new_galaxy()
row, walk = st.session_state.play_row, st.session_state.play_walk
crowd_w, model_w = (catalog.weighted(ctx.table, source, rows=[row]) for source in ("crowd", "model"))
crowd, model = outreach.shares(crowd_w), outreach.shares(model_w)


@st.fragment(run_every=1.5)
def tally(owner: str) -> None:
    """The room's votes on the galaxy on screen, question by question, beside the crowd and the model."""
    try:
        seen = outreach.server_rooms().tally(room, owner)
    except rooms.RoomError as e:
        st.info(str(e))
        return
    asked = [n for n, counts in seen.counts.items() if sum(counts)] or [1]
    st.markdown(f"**{seen.phones}** phone(s) in the room · **{seen.voters}** voted on this galaxy")
    st.html(outreach.vote_bars([{"question": n, "The crowd": crowd[n], "The model": model[n],
                                 "The room": np.array(seen.counts[n]) / max(sum(seen.counts[n]), 1) if sum(seen.counts[n]) else None,
                                 "The room counts": seen.counts[n]} for n in asked], SOURCES))


def room_panel() -> None:
    """The presenter's side of a room: the QR code and link of its vote page, and the live tally."""
    owner, store = state.session_id(), outreach.server_rooms()
    try:
        store.open(room, owner)
        if st.session_state.get("play_shown") != (room, row):  # a new galaxy: the phones follow
            store.show(room, owner, int(ctx.table.GalaxyID.iat[row]), str(ctx.galaxies.paths[row]))
            st.session_state.play_shown = (room, row)
    except rooms.RoomError as e:
        st.error(str(e), icon=":material/block:")
        st.stop()
    url = outreach.vote_url(room, st.context.url)
    code, words = st.columns([2, 3], vertical_alignment="center")
    code.image(outreach.qr_png(url), width="stretch", caption="Scan to vote")
    words.markdown(f"#### Vote on your phone\n**{url.split('://', 1)[-1]}**")
    tally(owner)


st.caption("Galaxy Zoo volunteers answered these questions for each galaxy; your answer decides the "
           "next question." if not room else "Scan the code: your phone asks you about the galaxy on screen.")
st.html(icons.BUTTON_CSS)
if not (room or presenter.active() or st.session_state.get("play_how_seen")):  # the first time: how to play
    with st.container(border=True):
        st.markdown(field_guide.HOW_TO_PLAY)
        st.button("Got it", key="how_to_play_seen", on_click=_seen_how_to_play, icon=":material/check:")
left, right = st.columns([11, 9], gap="large")
with left:
    image = state.image_for(ctx, row)
    if image is not None:
        st.image(outreach.view(image, st.session_state.get("view_invert", False),
                               st.session_state.get("view_zoom") or 1.0), width="stretch")
    tools = st.columns(2, vertical_alignment="center")
    tools[0].toggle("Invert", key="view_invert", help="Dark on light: faint arms and rings show better")
    tools[1].segmented_control("Zoom", outreach.ZOOMS, key="view_zoom", format_func=lambda z: f"{z:g}×",
                               label_visibility="collapsed")
    tools = st.columns(2)
    tools[0].button("Another galaxy" if not room else "Next galaxy", on_click=_new_galaxy,
                    icon=":material/casino:", width="stretch")
    tools[1].button("Start again", on_click=st.session_state.play_walk.clear, icon=":material/undo:",
                    width="stretch", disabled=not walk or bool(room))
with right:
    if room:
        room_panel()
        st.stop()
    number = play.next_question(walk)
    if number is not None:
        q = tree.QUESTION_BY_NUMBER[number]
        st.caption(f"Question {len(walk) + 1}")
        st.subheader(q.text)
        found = field_guide.examples(ctx.table, ctx.galaxies.paths, q)  # the crowd's surest galaxies, per answer
        for k, a in enumerate(q.answers):
            example = found[a.column][0][0] if found[a.column] else None  # no galaxy got this answer: the icon alone
            st.button(icons.label(a.column, example), key=f"play_{number}_{k}", on_click=_answer, args=(number, k),
                      width="stretch")
        st.caption("Beside each answer: the galaxy of this data the crowd was surest of.")
        with st.expander("Field guide", icon=":material/menu_book:"):
            st.html(field_guide.panel(q, found))
        st.stop()
    comparison = play.compare(walk, crowd_w, model_w)
    st.subheader("How you compare")
    said = {s: (int(comparison[f"{s} agrees"].eq(True).sum()), int(comparison[f"{s} agrees"].notna().sum()))
            for s in ("crowd", "model")}
    st.markdown(f"You gave the crowd's favourite answer to **{said['crowd'][0]} of the {said['crowd'][1]}** "
                f"questions it was asked, and the model's to **{said['model'][0]} of {said['model'][1]}**.")
    paths = st.columns(3)
    paths[0].markdown("**Your path**\n\n" + "\n".join(f"1. {tree.QUESTION_BY_NUMBER[n].answers[k].long}"
                                                     for n, k in walk))
    for cell, name, w in ((paths[1], "The crowd's path", crowd_w), (paths[2], "The model's path", model_w)):
        known = not np.isnan(w).all()
        cell.markdown(f"**{name}**\n\n" + ("\n".join(f"1. {s.answer.long} · {s.probability:.0%}"
                                                      for s in tree.most_likely_path(w)) if known else "unknown"))
    if st.button("Open this galaxy", icon=":material/cyclone:"):
        state.open_galaxy(int(ctx.table.GalaxyID.iat[row]))
st.html(outreach.vote_bars([{"question": n, "mine": k, "The crowd": crowd[n], "The model": model[n]}
                            for n, k in walk], {"The crowd": CROWD, "The model": MODEL}))
