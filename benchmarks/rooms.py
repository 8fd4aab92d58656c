"""Load test of the rooms an audience votes in (gzcore.rooms, issue 28): N phones, each a thread,
join one room and vote on the galaxy on screen question by question as fast as the lock lets them,
while the presenter reads the tally every 0.5 s and moves to the next galaxy every 2 s.

    python -m benchmarks.rooms [--phones 100] [--seconds 10] [--rooms 1]

Recorded: votes a second, each call's latency (p50 / p95 / max) for phones and presenter, votes
refused because the presenter had moved on, and whether every tally stayed within its phones.
A phone on the dashboard calls far less often (a tap every few seconds, its page's fragment once
every 1.5 s), so the figures are the ceiling the one lock allows."""
from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

from gzcore import rooms, tree

QUESTIONS = (1, 2, 9, 6, 8)


def run(phones: int = 100, seconds: float = 10.0, n_rooms: int = 1) -> dict:
    store = rooms.Rooms()
    names = [f"room-{r}" for r in range(n_rooms)]
    for name in names:
        store.open(name, "presenter")
        store.show(name, "presenter", 0, None)
    stop = threading.Event()
    phone_times, presenter_times, counted, stale, bad = [], [], [0], [0], []
    lock = threading.Lock()

    def phone(i: int) -> None:
        name, me, times, mine, late = names[i % n_rooms], f"phone-{i}", [], 0, 0
        while not stop.is_set():
            t = time.perf_counter()
            shown = store.join(name, me)
            times.append(time.perf_counter() - t)
            for number in QUESTIONS:
                t = time.perf_counter()
                ok = store.vote(name, me, shown.round, number, i % len(tree.QUESTION_BY_NUMBER[number].answers))
                times.append(time.perf_counter() - t)
                mine, late = mine + ok, late + (not ok)
        with lock:
            phone_times.extend(times)
            counted[0] += mine
            stale[0] += late

    threads = [threading.Thread(target=phone, args=(i,)) for i in range(phones)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    shown, galaxy = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for name in names:
            t = time.perf_counter()
            seen = store.tally(name, "presenter")
            presenter_times.append(time.perf_counter() - t)
            if any(sum(c) > phones for c in seen.counts.values()) or seen.voters > phones:
                bad.append(seen)
        if time.perf_counter() - shown >= 2:
            galaxy += 1
            for name in names:
                t = time.perf_counter()
                store.show(name, "presenter", galaxy, None)
                presenter_times.append(time.perf_counter() - t)
            shown = time.perf_counter()
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1e3, 3)  # noqa: E731
    return {"phones": phones, "rooms": n_rooms, "seconds": round(elapsed, 1), "galaxies shown": galaxy + 1,
            "votes counted": counted[0], "votes a second": round(counted[0] / elapsed),
            "votes refused (presenter moved on)": stale[0],
            "phone call ms p50/p95/max": [ms(phone_times, 50), ms(phone_times, 95), ms(phone_times, 100)],
            "presenter call ms p50/p95/max": [ms(presenter_times, 50), ms(presenter_times, 95),
                                              ms(presenter_times, 100)],
            "tallies within bounds": not bad, "rooms left after closing": _closed(store, names)}


def _closed(store: rooms.Rooms, names) -> int:
    for name in names:
        store.close(name, "presenter")
    return len(store)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rooms", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.phones, args.seconds, args.rooms), indent=1))


if __name__ == "__main__":
    main()
