"""Results computed once and shared by every thread and process that uses one cache folder.

`Subject` is "this model over this data": the identity every cached result of a model (catalogue,
embeddings, map, oddness) is filed under. `once` is the one way such a result is made: read it when
it is there; wait for whoever is computing it (a thread of this process or another process) while
reporting that computation's progress; else take the entry's lock, compute, and write the result
atomically. The lock is an flock on a file beside the result, so the system releases it when its
holder dies and a waiting process takes the work over. While it computes, the holder writes its
progress (`Progress`) beside the result, which `progress` reads for pages that do not wait.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from . import atomic, data

POLL = 0.25          # seconds between looks at another computation's progress
REPORT_EVERY = 0.5   # seconds between progress writes of the computing side


def file_key(path) -> str:
    """Identity of a file's current contents for cache keys: path, size and modification time."""
    path = Path(path).resolve()
    st = path.stat()
    return hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class Subject:
    """One model (a checkpoint file) over one set of galaxies, and the cache folder its results go to."""
    galaxies: data.GalaxySet
    ckpt: dict
    ckpt_path: Path
    cache_dir: Path

    @cached_property
    def key(self) -> str:
        """The data's fingerprint (files and preprocessing) and the checkpoint file's key."""
        fp = data.fingerprint(self.galaxies, data.Preprocess(**self.ckpt["preprocess"]))
        return f"{fp}-{file_key(self.ckpt_path)}"

    @property
    def identity(self) -> tuple[str, str]:
        """What tells the subject's results apart in a process's memory: the cache folder and `key`."""
        return str(self.cache_dir), self.key

    def file(self, kind: str, suffix: str = ".npy") -> Path:
        """Where the result `kind` (a folder of the cache: predictions, embeddings, atlas…) is kept."""
        return Path(self.cache_dir) / kind / f"{self.key}{suffix}"


def rows_key(rows) -> str:
    """A short name of a set of row positions, for a result of some galaxies only."""
    return hashlib.sha1(np.asarray(rows, np.int64).tobytes()).hexdigest()[:10]


@dataclass(frozen=True)
class Progress:
    """What a computation in progress last reported: `done` of `total` since `started` (epoch s)."""
    done: int
    total: int
    started: float
    updated: float

    @property
    def remaining(self) -> float | None:
        """Seconds left at the rate so far, or None before a rate is known."""
        if self.done <= 0 or self.updated <= self.started:
            return None
        return (self.total - self.done) * (self.updated - self.started) / self.done

    def describe(self, label: str) -> str:
        """e.g. 'Predicting every galaxy: 1,200 / 6,000 (20%) · about 1 min 10 s left'."""
        part = f"{label}: {self.done:,} / {self.total:,} ({self.done / max(self.total, 1):.0%})"
        left = self.remaining
        return part + (" · estimating the time left" if left is None else f" · about {duration(left)} left")


def duration(seconds: float) -> str:
    """A time span as people say it: '8 s', '1 min 10 s', '2 h 5 min'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    return f"{s // 3600} h {s % 3600 // 60} min"


def _sidecar(path: Path, what: str) -> Path:
    return path.with_name(f"{path.name}.{what}")


def progress(path) -> Progress | None:
    """The progress reported by whoever is computing `path` now (any process), or None when nobody is
    (done, never started, or its computer died)."""
    path = Path(path)
    lock = _sidecar(path, "lock")
    if path.is_file() or not lock.is_file() or _free(lock):
        return None
    try:
        return Progress(**json.loads(_sidecar(path, "progress").read_text()))
    except (OSError, ValueError, TypeError):
        return Progress(0, 0, time.time(), time.time())  # locked, nothing reported yet


def _free(lock: Path) -> bool:
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def once(path, compute: Callable, load: Callable, save: Callable | None, progress_to=None):
    """The result kept at `path`: `load(path)` when it is there; else computed once for every thread
    and process sharing the folder. `compute(progress)` makes it (calling progress(done, total)) and
    `save(value, file)` writes it (atomically, through gzcore.atomic); with `save=None`, `compute`
    writes `path` itself, atomically. Callers that find it being computed wait, and their
    `progress_to(done, total)` follows the computation; if its process dies, one of them takes over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock, report = _sidecar(path, "lock"), _sidecar(path, "progress")
    while True:
        if path.is_file():
            return load(path)
        with open(lock, "a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _follow(held, report, progress_to)  # returns holding the lock: done, or its holder died
            try:
                if path.is_file():
                    continue
                value = compute(_reporter(report, progress_to))
                if save is not None:
                    with atomic.write(path) as f:
                        save(value, f)
                return value
            finally:
                report.unlink(missing_ok=True)
                fcntl.flock(held, fcntl.LOCK_UN)


def _follow(held, report: Path, progress_to) -> None:
    """Wait for the lock on `held`, passing the holder's reports on to `progress_to`."""
    while True:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if progress_to is not None:
            try:
                seen = json.loads(report.read_text())
                progress_to(seen["done"], seen["total"])
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(POLL)


def _reporter(report: Path, progress_to):
    """progress(done, total) that writes `report` (at most every REPORT_EVERY s, and the last) and
    calls `progress_to`."""
    started, last = time.time(), 0.0

    def write(done, total):
        with atomic.write(report) as f:
            f.write(json.dumps({"done": int(done), "total": int(total), "started": started,
                                "updated": time.time()}).encode())

    def progress(done, total):
        nonlocal last
        if time.time() - last >= REPORT_EVERY or done >= total:
            last = time.time()
            write(done, total)
        if progress_to is not None:
            progress_to(done, total)
    write(0, 0)  # started: nothing done yet
    return progress


def npy(path) -> np.ndarray:
    """`once`'s load for arrays."""
    return np.load(path)


def save_npy(value: np.ndarray, f) -> None:
    """`once`'s save for arrays."""
    np.save(f, value)
