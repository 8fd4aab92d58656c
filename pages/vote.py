"""Vote: a phone in a presenter's room (`/vote?room=NAME`, the QR code on Play's big screen).
No login: the phone answers the tree's questions about the galaxy on screen (buttons with our
drawings, a field guide), one vote per question, and follows when the presenter moves on. Nothing
here loads the model."""
import streamlit as st

from gzcore import play, rooms, tree
from gzcore.dashboard import field_guide, icons, navigation, outreach, presenter, state

navigation.through_app()  # app.py's set-up first, even when a fresh server's first request is this page
presenter.phone()

room = rooms.valid_name(st.query_params.get("room", ""))
if room is None:
    st.title("Vote")
    st.info("Scan the QR code on the presenter's screen, or open the link it shows (…/vote?room=NAME).")
    st.stop()
phone, store = state.session_id(), outreach.server_rooms()
try:
    shown = store.join(room, phone)
except rooms.RoomError as e:
    st.title("Vote")
    st.info(str(e))
    st.stop()
if st.session_state.get("vote_round") != (room, shown.round):  # a new galaxy on screen: start its tree
    st.session_state.vote_round, st.session_state.vote_walk = (room, shown.round), []
walk = st.session_state.vote_walk


@st.fragment(run_every=1.5)
def follow() -> None:
    """Follow the presenter: a new galaxy on screen reruns the page."""
    try:
        now = store.join(room, phone).round
    except rooms.RoomError:
        now = None
    if now != shown.round:
        st.rerun()


def answer(number: int, k: int) -> None:
    try:
        counted = store.vote(room, phone, shown.round, number, k)
    except rooms.RoomError:
        counted = False
    if counted and play.next_question(walk) == number:  # a second tap on an old question: ignored
        walk.append((number, k))


follow()
if shown.galaxy_id is None:
    st.title(f"Room {room}")
    st.info("The presenter has not shown a galaxy yet: this page follows the big screen.")
    st.stop()
st.caption(f"Room **{room}** · galaxy {shown.galaxy_id}")
image = state.picture(shown.image, size=360) if shown.image else None
if image is not None:
    st.image(image, width="stretch")
number = play.next_question(walk)
if number is None:
    st.success("Thank you! Your answers are on the big screen. The next galaxy appears here by itself.")
    st.stop()
q = tree.QUESTION_BY_NUMBER[number]
st.subheader(q.text)
st.html(icons.BUTTON_CSS)
for k, a in enumerate(q.answers):
    st.button(icons.label(a.column), key=f"vote_{number}_{k}", on_click=answer, args=(number, k), width="stretch")
with st.expander("Field guide", icon=":material/menu_book:"):
    st.html(field_guide.panel(q))
