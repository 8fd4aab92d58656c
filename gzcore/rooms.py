"""Rooms: an audience votes from their phones on the galaxy a presenter shows.

A room is named by its presenter (`/play?present=1&room=NAME`); phones join it by that name
(`/vote?room=NAME`), answer the tree's questions about the galaxy on screen, and the presenter reads
the tally. Everything lives in one `Rooms` object in the server's memory behind one lock: nothing is
written anywhere, a room ends when its presenter ends it or after `idle` seconds without a call, and
then nothing of it is kept. Bounded: at most `max_rooms` rooms and `max_phones` phones a room; one
vote per phone per question (a second replaces the first), for the galaxy on screen only.

Streamlit-free and torch-free: the dashboard keeps one `Rooms` per server process, the tests and
`benchmarks/rooms.py` drive it from threads as phones would."""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from gzcore import tree

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # lower-case letters, digits and '-', at most 32
MAX_ROOMS = 50        # rooms open at once on one server process
MAX_PHONES = 200      # phones a room (a lecture hall)
IDLE_SECONDS = 30 * 60  # a room nobody has called for this long ends
TAKEOVER_SECONDS = 10   # a presenter silent this long (a reloaded page: a new session) may be replaced


class RoomError(ValueError):
    """A refusal a visitor may read: it names no other room and nothing of the server."""


def valid_name(value) -> str | None:
    """A room name from a URL or a widget, lower-cased; None when it is not one."""
    text = str(value or "").strip().lower()
    return text if NAME.fullmatch(text) else None


@dataclass(frozen=True)
class Shown:
    """What a phone needs: the round (one per galaxy shown), the galaxy and its image path."""
    round: int
    galaxy_id: int | None
    image: str | None


@dataclass(frozen=True)
class Tally:
    """The room's votes on the galaxy on screen: counts[question] is one count per answer."""
    round: int
    galaxy_id: int | None
    phones: int                    # phones that joined the room
    voters: int                    # phones that voted on this galaxy
    counts: dict[int, list[int]]


@dataclass
class _Room:
    owner: str
    seen: float                     # last call of anyone
    presenter_seen: float           # last call of the presenter
    round: int = 0
    galaxy_id: int | None = None
    image: str | None = None
    phones: set[str] = field(default_factory=set)
    votes: dict[tuple[str, int], int] = field(default_factory=dict)  # (phone, question) -> answer, this round


class Rooms:
    def __init__(self, max_rooms: int = MAX_ROOMS, max_phones: int = MAX_PHONES,
                 idle: float = IDLE_SECONDS, takeover: float = TAKEOVER_SECONDS, clock=time.monotonic):
        self.max_rooms, self.max_phones, self.idle, self.takeover, self.clock = (
            max_rooms, max_phones, idle, takeover, clock)
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._rooms)

    def _expire(self, now: float) -> None:
        for name in [n for n, r in self._rooms.items() if now - r.seen > self.idle]:
            del self._rooms[name]

    def _room(self, name: str, now: float) -> _Room:
        self._expire(now)
        room = self._rooms.get(valid_name(name) or "")
        if room is None:
            raise RoomError("There is no room of that name (it may have ended). Check the link on the big screen.")
        room.seen = now
        return room

    def _presenter(self, name: str, owner: str, now: float) -> _Room:
        room = self._room(name, now)
        if room.owner != owner:
            raise RoomError("Another presenter holds this room: choose another name.")
        room.presenter_seen = now
        return room

    def open(self, name: str, owner: str) -> None:
        """Open room `name` for presenter `owner`, or carry on with it: its presenter again, or a new
        session of a presenter silent for `takeover` seconds (a reloaded page). Raises RoomError for
        a bad name, a room held by a presenter still there, or a server with `max_rooms` open."""
        key, now = valid_name(name), self.clock()
        if key is None:
            raise RoomError("A room name is 1 to 32 lower-case letters, digits or '-', e.g. 'hall-a'.")
        with self._lock:
            self._expire(now)
            room = self._rooms.get(key)
            if room is None:
                if len(self._rooms) >= self.max_rooms:
                    raise RoomError(f"This server has {self.max_rooms} rooms open: try again later.")
                self._rooms[key] = _Room(owner, now, now)
            elif room.owner != owner:
                if now - room.presenter_seen <= self.takeover:
                    raise RoomError("Another presenter holds this room: choose another name.")
                room.owner = owner
            self._rooms[key].seen = self._rooms[key].presenter_seen = now

    def show(self, name: str, owner: str, galaxy_id: int, image: str | None) -> int:
        """The presenter shows another galaxy: a new round, the votes on the last one dropped.
        Returns the round's number."""
        with self._lock:
            room = self._presenter(name, owner, self.clock())
            room.round += 1
            room.galaxy_id, room.image, room.votes = int(galaxy_id), image, {}
            return room.round

    def close(self, name: str, owner: str) -> None:
        """The presenter ends the room: nothing of it is kept."""
        with self._lock:
            self._presenter(name, owner, self.clock())
            del self._rooms[valid_name(name)]

    def join(self, name: str, phone: str) -> Shown:
        """A phone joins (or asks again): the galaxy on screen. RoomError when the room is full."""
        with self._lock:
            room = self._room(name, self.clock())
            if phone not in room.phones:
                if len(room.phones) >= self.max_phones:
                    raise RoomError(f"This room is full ({self.max_phones} phones).")
                room.phones.add(phone)
            return Shown(room.round, room.galaxy_id, room.image)

    def vote(self, name: str, phone: str, round: int, question: int, answer: int) -> bool:
        """A phone's answer to `question` about round `round`'s galaxy; it replaces its earlier
        answer to that question. False (nothing counted) when the presenter has moved on."""
        q = tree.QUESTION_BY_NUMBER.get(question)
        if q is None or not 0 <= answer < len(q.answers):
            raise RoomError("There is no such question or answer.")
        with self._lock:
            room = self._room(name, self.clock())
            if phone not in room.phones:
                raise RoomError("Open the room's link again to join it.")
            if round != room.round or room.galaxy_id is None:
                return False
            room.votes[(phone, question)] = answer
            return True

    def tally(self, name: str, owner: str) -> Tally:
        """The presenter's view of the votes on the galaxy on screen."""
        with self._lock:
            room = self._presenter(name, owner, self.clock())
            counts = {q.number: [0] * len(q.answers) for q in tree.QUESTIONS}
            for (_, question), answer in room.votes.items():
                counts[question][answer] += 1
            return Tally(room.round, room.galaxy_id, len(room.phones),
                         len({phone for phone, _ in room.votes}), counts)
