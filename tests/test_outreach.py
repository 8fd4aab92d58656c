"""Outreach (issue 28): presenter mode hides Streamlit's chrome, Play's friendly results, and the
rooms an audience votes in from their phones — isolated, bounded, one vote per phone per question,
expiring, and 100 phones voting from threads while the presenter advances."""
import threading

import numpy as np
import pytest
from test_app import app, app_with, show, texts  # noqa: F401  (app: the fixture)

from gzcore import play, rooms, tree
from gzcore.dashboard import navigation, outreach, presenter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def opened(name="hall-a", owner="presenter", **bounds) -> rooms.Rooms:
    store = rooms.Rooms(**bounds)
    store.open(name, owner)
    store.show(name, owner, 42, None)
    return store


def test_room_names_are_validated():
    assert rooms.valid_name(" Hall-A ") == "hall-a"
    for bad in ("", "-a", "a b", "a/../b", "x" * 33, "<b>", "é", None):
        assert rooms.valid_name(bad) is None
    with pytest.raises(rooms.RoomError):
        rooms.Rooms().open("no good", "p")


def test_one_vote_per_phone_per_question_and_the_tally():
    store = opened()
    for phone in ("a", "b", "c"):
        store.join("hall-a", phone)
    assert store.vote("hall-a", "a", 1, 1, 0) and store.vote("hall-a", "b", 1, 1, 1)
    assert store.vote("hall-a", "a", 1, 1, 2)  # a second vote replaces the first
    store.vote("hall-a", "c", 1, 6, 1)
    seen = store.tally("hall-a", "presenter")
    assert seen.counts[1] == [0, 1, 1] and seen.counts[6] == [0, 1]
    assert (seen.phones, seen.voters, seen.galaxy_id) == (3, 3, 42)
    with pytest.raises(rooms.RoomError):
        store.vote("hall-a", "a", 1, 1, 3)  # Q1 has 3 answers
    with pytest.raises(rooms.RoomError):
        store.vote("hall-a", "stranger", 1, 1, 0)  # never joined


def test_the_presenter_moves_on_and_old_votes_are_dropped():
    store = opened()
    store.join("hall-a", "a")
    store.vote("hall-a", "a", 1, 1, 0)
    assert store.show("hall-a", "presenter", 43, "x.jpg") == 2
    assert not store.vote("hall-a", "a", 1, 1, 1)  # a vote on the last galaxy is not counted
    assert store.join("hall-a", "a") == rooms.Shown(2, 43, "x.jpg")
    assert sum(map(sum, store.tally("hall-a", "presenter").counts.values())) == 0


def test_rooms_are_apart():
    store = opened("hall-a", "p1")
    store.open("hall-b", "p2")
    store.show("hall-b", "p2", 7, None)
    store.join("hall-a", "phone")
    store.vote("hall-a", "phone", 1, 1, 0)
    assert sum(store.tally("hall-b", "p2").counts[1]) == 0
    for call in (lambda: store.tally("hall-a", "p2"), lambda: store.show("hall-a", "p2", 1, None),
                 lambda: store.close("hall-a", "p2"), lambda: store.open("hall-a", "p2")):
        with pytest.raises(rooms.RoomError):
            call()  # another presenter can neither read, change, end nor take the room
    assert store.tally("hall-a", "p1").counts[1] == [1, 0, 0]


def test_rooms_are_bounded():
    store = opened(max_phones=3, max_rooms=2)
    for phone in "abc":
        store.join("hall-a", phone)
    store.join("hall-a", "a")  # a phone asking again is not a new phone
    with pytest.raises(rooms.RoomError, match="full"):
        store.join("hall-a", "d")
    store.open("hall-b", "p")
    with pytest.raises(rooms.RoomError, match="2 rooms"):
        store.open("hall-c", "p")


def test_a_room_ends_and_nothing_is_kept():
    clock = Clock()
    store = opened(clock=clock, idle=60, takeover=10)
    store.join("hall-a", "a")
    clock.now = 30
    store.join("hall-a", "a")  # a call keeps it open
    clock.now = 85
    assert len(store) == 1
    clock.now = 200
    assert len(store) == 0  # idle for more than a minute: gone
    with pytest.raises(rooms.RoomError):
        store.join("hall-a", "a")
    store = opened(clock=clock)
    store.close("hall-a", "presenter")
    assert len(store) == 0 and not store._rooms


def test_a_reloaded_presenter_takes_the_room_back():
    clock = Clock()
    store = opened(clock=clock, takeover=10)
    with pytest.raises(rooms.RoomError):
        store.open("hall-a", "new session")  # the presenter is still there
    clock.now = 11
    store.open("hall-a", "new session")  # silent for 10 s: a reloaded page
    assert store.tally("hall-a", "new session").galaxy_id == 42


def test_100_phones_vote_from_threads_while_the_presenter_advances():
    store, phones, rounds = opened(), 100, 20
    errors, counted = [], [0] * phones
    done = threading.Event()

    def phone(i):
        try:
            name = f"phone-{i}"
            while not done.is_set():
                shown = store.join("hall-a", name)
                for number in (1, 2, 9, 6):
                    q = tree.QUESTION_BY_NUMBER[number]
                    counted[i] += store.vote("hall-a", name, shown.round, number, i % len(q.answers))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=phone, args=(i,)) for i in range(phones)]
    for t in threads:
        t.start()
    for r in range(rounds):
        seen = store.tally("hall-a", "presenter")
        assert all(sum(c) <= phones for c in seen.counts.values())
        assert seen.voters <= phones
        store.show("hall-a", "presenter", 100 + r, None)
    done.set()
    for t in threads:
        t.join()
    assert not errors and sum(counted) > 0
    seen = store.tally("hall-a", "presenter")
    assert seen.phones == phones and seen.galaxy_id == 100 + rounds - 1
    assert all(sum(seen.counts[n]) <= phones for n in (1, 2, 9, 6))


def test_the_crowd_that_wasnt_asked_is_said_so():
    crowd = np.zeros(tree.N_ANSWERS)
    crowd[tree.COLUMN_INDEX["Class1.1"]] = 1.0  # everybody said smooth: nobody reached Q2
    crowd[tree.COLUMN_INDEX["Class7.1"]] = 1.0
    crowd[tree.COLUMN_INDEX["Class6.2"]] = 1.0
    table = play.compare([(1, 1), (2, 1)], crowd[None], crowd[None])
    assert table["crowd answer"].iat[1] == "wasn't asked" and table["crowd agrees"].iat[1] is None
    assert outreach.shares(crowd)[2] is None
    html = outreach.vote_bars([{"question": 2, "mine": 1, "The crowd": None}], {"The crowd": "#000"})
    assert "The crowd wasn&#x27;t asked" in html and "Rounded (0%)" not in html


def css(at) -> str:
    return " ".join(str(h.proto.body) for h in at.get("html"))


def test_presenter_mode_hides_the_chrome(app):
    app.query_params["present"] = "1"
    at = show(app, navigation.GALAXY)
    assert not at.error
    assert '[data-testid="stSidebar"]' in css(at) and '[data-testid="stToolbar"]' in css(at)
    assert "display:none" in css(at) and "font-size:clamp" in css(at)
    at.button(key=presenter.EXIT).click().run()  # the corner's toggle
    assert '[data-testid="stSidebar"]' not in css(at)
    assert presenter.EXIT not in [b.key for b in at.button]


def test_the_sidebar_offers_presenter_mode(app):
    at = show(app, navigation.GALAXY)
    assert '[data-testid="stSidebar"]' not in css(at)
    at.sidebar.button(key="presenter_enter").click().run()
    assert at.session_state[presenter.KEY]  # the CSS and the exit button: the test above, and the browser test


def test_play_reads_as_a_summary_with_pictures(app):
    at = show(app, navigation.PLAY)
    assert at.image and len(at.image) >= 3  # the galaxy and an example galaxy for each answer of Q1
    for _ in range(12):
        answers = [b for b in at.button if (b.key or "").startswith("play_")]
        if not answers:
            break
        answers[0].click().run()
    assert not at.warning and not at.dataframe
    assert "How you compare" in texts(at.subheader) and "gzv" in css(at)
    assert at.toggle(key="view_invert")


@pytest.mark.parametrize("public", ["", "1"], ids=["local", "public"])
def test_a_room_presenter_and_phones(dashboard_env, monkeypatch, public):
    env, room = {**dashboard_env, "GZ_PUBLIC": public}, f"aula-{public or 0}"
    big = app_with(env, monkeypatch)
    big.query_params.update(present="1", room=room)
    big = show(big, navigation.PLAY)
    assert not big.error and len(big.image) == 2 and f"/vote?room={room}" in texts(big.markdown)
    shown = outreach.server_rooms().join(room, "probe")
    assert shown.galaxy_id is not None and shown.image
    phone = app_with(env, monkeypatch)
    phone.query_params["room"] = room
    phone = show(phone, navigation.VOTE)
    assert phone.image and "Is the galaxy simply smooth" in texts(phone.subheader)
    phone.button(key="vote_1_1").click().run()
    assert "vote_1_1" not in [b.key for b in phone.button]  # on to the next question
    big.run()
    assert "**1** voted on this galaxy" in texts(big.markdown)  # the tally, read by the big screen's fragment
    other = app_with(env, monkeypatch)
    other.query_params["room"] = "nowhere"
    assert "no room" in texts(show(other, navigation.VOTE).info)


def test_the_kiosk_shows_a_galaxy_of_the_minute(app):
    app.query_params["every"] = "30"
    at = show(app, navigation.KIOSK)
    assert not at.error and at.title[0].value == "Galaxy of the moment" and at.image
    assert "the next one in 30 s" in texts(at.caption) and "gzv" in css(at)
    assert '[data-testid="stSidebar"]' in css(at)  # bare, as in presenter mode
