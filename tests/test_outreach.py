"""Outreach (issue 28): presenter mode hides Streamlit's chrome, Play's friendly results, the
answers' drawn icons and field guide, and the rooms an audience votes in from their phones —
isolated, bounded, one vote per phone per question, expiring, and 100 phones voting from threads
while the presenter advances."""
import base64
import re
import threading
from html import escape
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest
from test_app import app, app_with, show, texts  # noqa: F401  (app: the fixture)

from gzcore import catalog, data, evaluate, play, rooms, tree
from gzcore.dashboard import field_guide, icons, navigation, outreach, presenter

SVG = "{http://www.w3.org/2000/svg}"


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


def test_every_answer_has_its_own_drawn_icon_and_a_field_guide_text():
    assert list(icons.ICONS) == list(tree.COLUMNS) and list(field_guide.GUIDE) == list(tree.COLUMNS)
    ids = []
    for column, svg in icons.ICONS.items():
        root = ElementTree.fromstring(svg)  # well-formed XML
        assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 100 100"
        assert root.get("aria-label") == tree.ANSWER_BY_COLUMN[column].long
        shapes = [e for e in root.iter() if e.tag.removeprefix(SVG) in ("ellipse", "circle", "polygon", "path", "rect")]
        assert len(shapes) >= 2, column  # the square and a drawing on it
        defined = {e.get("id") for e in root.iter() if e.get("id")}
        assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= defined, column  # every gradient it uses is its own
        ids += defined
        assert base64.b64decode(icons.uri(column).split(",", 1)[1]).decode() == svg
        text = field_guide.GUIDE[column]
        assert 20 <= len(text) <= 200 and text.endswith("."), column  # a sentence or two
    assert len(ids) == len(set(ids))  # icons sharing a page never borrow each other's gradients
    assert len(set(icons.DRAWINGS.values())) == tree.N_ANSWERS  # no two answers drawn alike
    assert len(set(field_guide.GUIDE.values())) == tree.N_ANSWERS


def test_the_crowds_surest_galaxies_of_an_answer():
    crowd = np.zeros((5, tree.N_ANSWERS))
    crowd[:, tree.COLUMN_INDEX["Class1.1"]] = [0.2, 0.9, np.nan, 0.5, 0.0]
    table = catalog.enrich(evaluate.predictions_table(np.arange(5), crowd, crowd))
    assert catalog.surest(table, "Class1.1") == [1, 3, 0] and catalog.surest(table, "Class1.1", k=1) == [1]
    assert catalog.surest(table, "Class1.3") == []  # nobody said so: no example
    found = {"Class1.1": [("data:image/jpeg;base64,AAAA", "Galaxy 1")], "Class1.2": [], "Class1.3": []}
    html = field_guide.panel(tree.QUESTION_BY_NUMBER[1], found)
    assert html.count("data:image/jpeg") == 1 and html.count("No galaxy in this data") == 2
    assert all(escape(field_guide.GUIDE[c]) in html and icons.uri(c) in html for c in found)


def css(at) -> str:
    return " ".join(str(h.proto.body) for h in at.get("html"))


def html_of(block) -> str:
    return " ".join(str(h.proto.body) for h in block.get("html"))


def test_play_draws_each_answer_and_guides_the_visitor(app, dashboard_env):
    at = show(app, navigation.PLAY)
    q = tree.QUESTION_BY_NUMBER[1]
    body = html_of(next(e for e in at.expander if e.label == "Field guide"))
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")
    for k, (entry, a) in enumerate(zip(body.split('class="gzf-a"')[1:], q.answers)):
        assert icons.uri(a.column) in entry and escape(field_guide.GUIDE[a.column]) in entry
        examples = re.findall(r'src="(data:image/jpeg[^"]+)"', entry)
        assert len(examples) == min(3, (crowd[a.column] > 0).sum())  # the data's surest galaxies
        assert at.button(key=f"play_1_{k}").label == icons.label(a.column, examples[0])  # our drawing, the surest
    assert "How to play" in texts(at.markdown)
    at.button(key="how_to_play_seen").click().run()
    assert "How to play" not in texts(at.markdown)
    at.button(key="play_1_1").click().run()  # features or disk: on to Q2, and its guide
    assert "How to play" not in texts(at.markdown)
    body = html_of(next(e for e in at.expander if e.label == "Field guide"))
    assert escape(field_guide.GUIDE["Class2.1"]) in body and escape(field_guide.GUIDE["Class1.1"]) not in body


def test_an_answer_no_galaxy_got_shows_its_icon_alone(dashboard_env, partial_dir, monkeypatch):
    at = show(app_with({**dashboard_env, "GZ_DATA": str(partial_dir)}, monkeypatch), navigation.PLAY)
    for key in ("play_1_1", "play_2_1"):  # features, not edge-on: Q3, which these labels lack
        at.button(key=key).click().run()
    assert "bar feature" in texts(at.subheader)
    assert [at.button(key=f"play_3_{k}").label for k in range(2)] == [icons.label("Class3.1"), icons.label("Class3.2")]
    assert html_of(at).count("No galaxy in this data got this answer") == 2


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
    assert at.image  # the galaxy (each answer's example galaxy is in its button: the test above)
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
    assert [phone.button(key=f"vote_1_{k}").label for k in range(3)] == [icons.label(c) for c in tree.COLUMNS[:3]]
    guide = html_of(next(e for e in phone.expander if e.label == "Field guide"))  # icons and words, no galaxies
    assert icons.uri("Class1.3") in guide and escape(field_guide.GUIDE["Class1.3"]) in guide
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
