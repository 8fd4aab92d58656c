"""The dashboard's caches and session state: what is loaded, where it came from, which galaxy is
open, and this server's one training run. Pages call `context()` and render; the science lives in
gzcore.

Choices (gzcore.dashboard.choices, re-exported here) live in session state under plain keys:
widgets write to them through callbacks, so they survive page switches.
Slow results are memoised with `memo` rather than st.cache_*: they report progress to a bar on the
page, and Streamlit cannot replay elements a cached function drew into a bar created outside it.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from gzcore import (atlas, catalog, checkpoint, compare, computed, data, evaluate, explain, explain_checks, large_catalog,
                    neighbours, oddballs, runs, shipped, synthetic, targets, tree, upload)
from gzcore.dashboard import access, choices, navigation, pictures
from gzcore.dashboard.choices import (checkpoint_path, choose, data_dir, images_dir, labels_path, predictions_path,
                                     runs_dir, universe_dir)

ERRORS = (data.DataError, checkpoint.CheckpointError)
log = logging.getLogger("gzcore.dashboard")


def error(message: str) -> None:
    """Show an error as a visitor may see it (access.shown: no server paths in public mode); the
    server's log keeps it whole."""
    log.warning("shown to a visitor: %s", message)
    st.error(access.shown(message))


# ------------------------------------------------------------------ memo, and jobs in the background


@st.cache_resource
def _memo_stores() -> tuple[defaultdict, threading.Lock]:
    return defaultdict(OrderedDict), threading.Lock()


def memoised(key: tuple) -> bool:
    return key in _memo_stores()[0][key[0]]


def memo(key: tuple, compute, label: str | None = None, max_entries: int = 256):
    """compute(progress) once per key, server-wide, for results of seconds at most (longer ones are
    `job`s). key[0] names the kind of result; each kind keeps its `max_entries` most recently used.
    `progress(done, total)` drives a bar titled `label`, shown only while computing."""
    stores, lock = _memo_stores()
    store = stores[key[0]]
    with lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    slot = st.empty()

    def progress(done, total):
        slot.progress(done / max(total, 1), f"{label}: {done:,} / {total:,}" if label else None)
    value = compute(progress)
    slot.empty()
    with lock:
        store[key] = value
        while len(store) > max_entries:
            store.popitem(last=False)
    return value


@dataclass(eq=False)
class Job:
    """A long computation (crops, a catalogue, embeddings, a map…) run in a thread of this server,
    once per key for every visitor; on disk through gzcore.computed, so once for every server process
    sharing the cache too. Pages either `wait` for it, showing its progress, or show what is usable
    meanwhile (`pending`)."""
    label: str
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    value: object = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    urgent: bool = False  # a page waits for it (`wait`), rather than showing what it can meanwhile

    def report(self, done: int, total: int) -> None:
        """The computation's progress callback, between its batches: a background job lets the
        pages' own torch work go first (`PAGES`); every job ends when the server stops."""
        if _STOPPING.is_set():
            raise SystemExit("the server stops")
        self.done, self.total, self.updated = int(done), int(total), time.time()
        if not self.urgent:
            PAGES.wait_for_pages()

    def describe(self) -> str:
        if not self.total:
            return f"{self.label}: starting…"
        return computed.Progress(self.done, self.total, self.started, self.updated).describe(self.label)


class _PageWork:
    """Torch work that a page does while a visitor waits (a preview, an attribution map, an upload).
    Background jobs pause between their batches while there is some (Job.report): two computations
    at once, each with its own OpenMP team on the same cores, would both crawl."""

    def __init__(self):
        self._lock = threading.Lock()
        self.running = 0

    @contextlib.contextmanager
    def running_now(self):
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1

    def wait_for_pages(self) -> None:
        """A background job's pause while pages compute (at most a minute)."""
        deadline = time.time() + 60
        while self.running and time.time() < deadline:
            time.sleep(0.02)


PAGES = _PageWork()
_STOPPING = threading.Event()


@atexit.register
def _stop_jobs() -> None:
    """At exit, end the running jobs at their next progress report (a computation cut short is
    resumed by whoever asks next: gzcore.computed) rather than killing torch mid-call."""
    _STOPPING.set()
    deadline = time.time() + 30
    for j in list(_jobs()[0].values()):
        if j.thread is not None:
            j.thread.join(max(0.0, deadline - time.time()))


MAX_JOBS = 48  # finished jobs kept in memory (each holds its result), the least recently asked dropped first


@st.cache_resource
def _jobs() -> tuple[OrderedDict, threading.Lock]:
    return OrderedDict(), threading.Lock()


def job(key: tuple, label: str, compute, urgent: bool = False) -> Job:
    """The server's job `key`: started in a thread (compute(report) -> value) unless it runs or ran;
    `urgent`: a page waits for it (it does not pause for other pages). A failed one is started again
    when asked for after its error was shown."""
    jobs, lock = _jobs()
    with lock:
        found = jobs.get(key)
        if found is not None:
            jobs.move_to_end(key)
            return found
        found = jobs[key] = Job(label, urgent=urgent)
        done = [k for k, j in jobs.items() if j.finished.is_set()]
        for k in done[:max(0, len(jobs) - MAX_JOBS)]:
            del jobs[k]

    def run():
        try:
            found.value = compute(found.report)
        except BaseException as e:  # shown to the page that asks (`wait`), then forgotten
            if not _STOPPING.is_set():
                log.exception("job %s failed", key[0])
            found.error = e
        finally:
            found.finished.set()
    found.thread = threading.Thread(target=run, name=f"gz-job-{key[0]}", daemon=True)
    found.thread.start()
    return found


def _result(key: tuple, found: Job):
    if found.error is not None:
        jobs, lock = _jobs()
        with lock:
            if jobs.get(key) is found:
                del jobs[key]
        raise found.error
    return found.value


def wait(key: tuple, label: str, compute):
    """`job`'s value, waiting for it with a progress bar (done / total, time left)."""
    found = job(key, label, compute, urgent=True)
    if not found.finished.wait(GRACE):
        slot = st.empty()
        while not found.finished.wait(0.5):
            with slot.container():
                st.progress(found.done / max(found.total, 1), found.describe())
                st.caption("Computed once for every visitor and kept on disk: leaving this page does not stop "
                           "it. Browse and Galaxy show a preview meanwhile.")
        slot.empty()
    return _result(key, found)


GRACE = 0.3  # seconds a new job is waited for: enough to read most results from the cache


def pending(key: tuple, label: str, compute):
    """`job`'s value when it is finished (a new job: within GRACE seconds, as when it reads its
    result from the cache), else None: it goes on in the background, and `watch` shows it."""
    new = key not in _jobs()[0]
    found = job(key, label, compute)
    return _result(key, found) if found.finished.wait(GRACE if new else 0) else None


@st.fragment(run_every=1.0)
def watch(keys: list[tuple], usable: str) -> None:
    """The progress of the jobs `keys` and what the page offers meanwhile (`usable`), refreshed
    every second; the whole page runs again when they are all finished."""
    jobs = _jobs()[0]
    running = [j for j in (jobs.get(k) for k in keys) if j is not None and not j.finished.is_set()]
    if not running:
        st.rerun(scope="app")
    for j in running:
        st.progress(j.done / max(j.total, 1), j.describe())
    st.caption(usable)


# ------------------------------------------------------------------ what is loaded


def ensure_universe() -> Path:
    """Render the default synthetic universe on first start, once for the server and for every
    process sharing the cache (computed.once; a half-written one is never used)."""
    target = universe_dir()
    if (target / data.LABELS_FILE).is_file():
        return target
    bar = st.progress(0.0, "Rendering the synthetic universe (first start only)")

    def render(progress):
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(tmp, ignore_errors=True)
        synthetic.generate(tmp, choices.UNIVERSE_N, choices.UNIVERSE_SEED, progress=progress)
        shutil.rmtree(target, ignore_errors=True)  # a folder without its labels file is unfinished
        tmp.rename(target)
        return target

    def show(done, total):
        bar.progress(done / max(total, 1), f"Rendering the synthetic universe (first start only): galaxy "
                                           f"{done} of {total}")
    computed.once(target.with_name(f"{target.name}.rendered"), render, lambda path: target,
                  lambda folder, f: f.write(b"rendered\n"), show)
    bar.empty()
    return target


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def load_model(path: str, key: str):
    """(model in eval mode, checkpoint dict); `key` (computed.file_key) reloads a rewritten file.
    A loaded copy, never the instance a training run is updating."""
    return checkpoint.load(path)


def model_for(path) -> tuple:
    """`load_model` of a checkpoint file; CheckpointError when it is not there (a model named in the
    URL or a widget that does not exist)."""
    if not Path(path).is_file():
        raise checkpoint.CheckpointError(f"{path}: checkpoint not found")
    return load_model(str(path), computed.file_key(path))


def _folder_key(folder: Path) -> str:
    labels = folder / data.LABELS_FILE
    return computed.file_key(labels) if labels.is_file() else str(data.find_images(folder).stat().st_mtime_ns)


def _labels_key(labels: Path | None) -> str | None:
    return (computed.file_key(labels) if labels.is_file() else "missing") if labels else None


def listed_for(folder: Path, task: targets.Task, labels: Path | None = None) -> data.GalaxySet:
    """targets.open_for once per folder, task and labels (a second or so for 60,000 galaxies)."""
    key = ("listed", str(folder), _folder_key(folder), task.kind, task.label_columns, str(labels),
           _labels_key(labels))
    return memo(key, lambda progress: targets.open_for(folder, task, labels), max_entries=8)


def _crops_key(folder: Path, ckpt: dict, labels: Path | None) -> tuple:
    task = targets.of_checkpoint(ckpt)
    return ("crops", str(data.default_cache_dir()), str(folder), _folder_key(folder), checkpoint.preprocess_of(ckpt),
            checkpoint.framing_of(ckpt), task.kind, task.label_columns, str(labels), _labels_key(labels))


def _crops_job(folder: Path, ckpt: dict, labels: Path | None):
    """(key, label, compute) of the job that decodes the crops of `listed_for`'s galaxies as `ckpt`
    crops and frames them (unreadable images skipped and listed): (crops, the galaxies that have them)."""
    listed = listed_for(folder, targets.of_checkpoint(ckpt), labels)
    pp, target = checkpoint.preprocess_of(ckpt), checkpoint.framing_of(ckpt)
    return (_crops_key(folder, ckpt, labels), "Decoding every galaxy's image (once; cached on disk)",
            lambda report: data.load_crops(listed, pp, skip_bad=True, progress=report, target=target))


def subject_for(ckpt_path: Path, folder: Path, labels: Path | None = None) -> tuple:
    """(model, computed.Subject: this model over the folder's galaxies, their crops), waiting for
    the crops with a progress bar."""
    model, ckpt = model_for(ckpt_path)
    crops, galaxies = wait(*_crops_job(folder, ckpt, labels))
    key = ("subject", _crops_key(folder, ckpt, labels), computed.file_key(ckpt_path))
    subject = memo(key, lambda progress: computed.Subject(galaxies, ckpt, Path(ckpt_path), data.default_cache_dir()),
                   max_entries=16)
    return model, subject, crops


def _table_job(ckpt_path: Path, folder: Path, labels: Path | None) -> tuple:
    model, subject, crops = subject_for(ckpt_path, folder, labels)
    return (("table", *subject.identity, str(labels), _labels_key(labels)),
            f"Predicting every galaxy with {Path(ckpt_path).name} (once; cached on disk)",
            lambda report: catalog.build(subject, crops, model, report))


def table_for(ckpt_path: Path, folder: Path | None = None, labels: Path | None = None) -> pd.DataFrame:
    """The catalogue of one model over a folder (catalog.build; on disk after the first time),
    beside `labels` (see `targets.open_for`); waits for it with a progress bar."""
    return wait(*_table_job(ckpt_path, folder or data_dir(), labels))


def table_if_ready(ckpt_path: Path, folder: Path, labels: Path | None = None,
                   wait_for_it: bool = False) -> tuple[pd.DataFrame | None, tuple]:
    """(`table_for` if it is computed, else None: it goes on in the background; the job's key for
    `watch`). `wait_for_it`: as `table_for` (for data that pages do not preview)."""
    key, label, compute = _table_job(ckpt_path, folder, labels)
    return (wait if wait_for_it else pending)(key, label, compute), key


def held_out_table(ckpt_path: Path, folder: Path, labels: Path | None = None) -> pd.DataFrame:
    """The catalogue of the checkpoint's held-out galaxies alone (catalog.held_out_table): a tenth of
    the work of `table_for`, and what the scores need."""
    model, subject, crops = subject_for(ckpt_path, folder, labels)
    return wait(("held-out table", *subject.identity, str(labels), _labels_key(labels)),
                f"Predicting the held-out galaxies with {Path(ckpt_path).name} (once; cached on disk)",
                lambda report: catalog.held_out_table(subject, crops, model, report)[0])


def embeddings_for(ctx: "Context") -> np.ndarray:
    """The model's unit feature vectors of every galaxy (catalog.embeddings; on disk after once)."""
    return wait(*_embeddings_job(ctx))


def _embeddings_job(ctx: "Context", after_table: bool = False) -> tuple:
    """The embeddings' job; `after_table`, for a page that shows what it can meanwhile: it starts
    after the catalogue's (one computation at a time runs faster than two at once)."""
    model, subject, crops = ctx.model, ctx.subject, ctx.crops
    table = job(*_table_job(ctx.ckpt_path, ctx.data_dir, ctx.labels_path)) if after_table else None

    def compute(report):
        if table is not None and not subject.file("embeddings").is_file():
            table.finished.wait()
        return catalog.embeddings(subject, crops, model, report)
    return ("embeddings", *subject.identity), "Embedding every galaxy (once; cached on disk)", compute


def embeddings_key(ctx: "Context") -> tuple:
    return _embeddings_job(ctx)[0]


def embeddings_if_ready(ctx: "Context") -> np.ndarray | None:
    """`embeddings_for` when ready (without waiting for the crops either), else None: it goes on."""
    if not ctx.previewed:
        return embeddings_for(ctx)
    if not ctx.crops_ready:
        return None
    return pending(*_embeddings_job(ctx, after_table=True))


def atlas_ready(ctx: "Context", method: str) -> bool:
    """Whether the `method` map of every galaxy is at hand: held by this server or on disk."""
    found = _jobs()[0].get(("atlas", method, *ctx.subject.identity))
    return (found is not None and found.finished.is_set()) or atlas.cache_file(ctx.subject, method).is_file()


def atlas_map(ctx: "Context", method: str) -> np.ndarray:
    """(N, 2) map positions of every galaxy by `method` (atlas.coordinates; on disk after once)."""
    embeddings = embeddings_for(ctx)
    return wait(("atlas", method, *ctx.subject.identity), f"Laying out the {method.upper()} map (once; cached on disk)",
                lambda report: atlas.coordinates(embeddings, method, ctx.subject, report))


def held_out_rows(folder: Path, ckpt_path: Path, labels: Path | None = None) -> np.ndarray:
    """Rows of the folder's catalogue in the checkpoint's held-out split."""
    _, subject, _ = subject_for(ckpt_path, folder, labels)
    return checkpoint.split(subject.galaxies, subject.ckpt)[1]


def oddness_for(ctx: "Context") -> np.ndarray:
    """oddballs.anomaly of every galaxy, from `embeddings_for` (on disk after once)."""
    embeddings = embeddings_for(ctx)
    return wait(("oddness", *ctx.subject.identity), "Scoring how odd every galaxy is (once; cached on disk)",
                lambda report: oddballs.anomaly_cached(embeddings, ctx.subject, report))


def more_like_for(ctx: "Context", positives: list[int], negatives: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """oddballs.more_like of these rows over every galaxy's embedding: the best `n` (rows, probability)."""
    embeddings = embeddings_for(ctx)
    return memo(("more like", *ctx.subject.identity, tuple(positives), tuple(negatives), n),
                lambda progress: oddballs.more_like(embeddings, positives, negatives, n), max_entries=32)


PREVIEW_FROM = 500  # galaxies: from this many, Browse and Galaxy preview while the catalogue is computed


@dataclass
class Context:
    """The loaded model and data. `listed` is ready at once; the crops, the galaxies that have them
    (`galaxies`) and the catalogue (`table`) are computed in the background, and reading them waits
    with a progress bar; `table_if_ready` and `crops_ready` do not wait."""
    data_dir: Path
    ckpt_path: Path
    model: object
    ckpt: dict
    listed: data.GalaxySet
    labels_path: Path | None = None

    @property
    def _crops(self) -> tuple:
        return _crops_job(self.data_dir, self.ckpt, self.labels_path)

    @property
    def crops_ready(self) -> bool:
        return pending(*self._crops) is not None

    @property
    def crops(self) -> np.ndarray:
        return self.subject_and_crops[2]

    @property
    def galaxies(self) -> data.GalaxySet:
        """The galaxies whose images could be decoded: the catalogue's rows."""
        return self.subject.galaxies

    @property
    def subject(self) -> computed.Subject:
        """This model over these galaxies: the identity of every result cached for them."""
        return self.subject_and_crops[1]

    @property
    def subject_and_crops(self) -> tuple:
        return subject_for(self.ckpt_path, self.data_dir, self.labels_path)

    @property
    def table(self) -> pd.DataFrame:
        """The catalogue: the model's predictions for every galaxy beside the labels (`table_for`)."""
        return table_for(self.ckpt_path, self.data_dir, self.labels_path)

    @property
    def previewed(self) -> bool:
        """Whether pages show a preview while the catalogue is computed: for PREVIEW_FROM galaxies or
        more; fewer take seconds, and pages wait for them."""
        return len(self.listed) >= PREVIEW_FROM

    def table_if_ready(self) -> pd.DataFrame | None:
        """The catalogue when it is computed, else None (the crops and the catalogue go on in the
        background; `watch(self.jobs(), …)` shows their progress)."""
        if not self.previewed:
            return self.table
        if not self.crops_ready:
            return None
        return table_if_ready(self.ckpt_path, self.data_dir, self.labels_path)[0]

    def jobs(self) -> list[tuple]:
        """The keys of the background jobs `table_if_ready` waits on."""
        keys = [self._crops[0]]
        if self.crops_ready:
            keys.append(_table_job(self.ckpt_path, self.data_dir, self.labels_path)[0])
        return keys

    @property
    def input_size(self) -> int:
        return self.ckpt["input_size"]

    @property
    def task(self) -> targets.Task:
        """What the model predicts: the tree's 37 answers, scalar targets or classes."""
        return targets.of_checkpoint(self.ckpt)

    def row_of(self, galaxy_id) -> int | None:
        hits = np.flatnonzero(self.galaxies.ids == int(galaxy_id))
        return int(hits[0]) if len(hits) else None


def context() -> Context:
    """Everything a page reads; on bad input shows the error with a way out, and stops the page.
    Starts the crops and the catalogue in the background: a page shows what it can meanwhile."""
    try:
        folder = ensure_universe() if data_dir() == universe_dir() else data_dir()
        path, labels = checkpoint_path(), labels_path()
        model, ckpt = model_for(path)
        listed = listed_for(folder, targets.of_checkpoint(ckpt), labels)
        if not len(listed):
            raise data.DataError(f"{folder}: none of its images has a label in {labels}" if labels else
                                 f"{folder}: no galaxies to show")
        ctx = Context(folder, path, model, ckpt, listed, labels)
        ctx.table_if_ready()  # starts the work behind the page
    except ERRORS as e:
        error(str(e))
        st.page_link(navigation.HOME.script, label="Choose another data folder, labels or model on Home",
                     icon=navigation.HOME.icon)
        st.stop()
    skipped = ctx.galaxies.skipped if ctx.crops_ready else listed.skipped
    if skipped:
        st.warning(access.shown(f"Skipped {len(skipped)} unreadable input(s), e.g. {skipped[0]}"))
    for message in ctx.galaxies.warned if ctx.crops_ready else ():  # read otherwise than given: stretched, framed
        st.warning(access.shown(message[:1].upper() + message[1:]))
    return ctx


@st.cache_resource(max_entries=2)
def _large_catalogue(path: str) -> large_catalog.Catalogue:
    return large_catalog.Catalogue(path)


def predictions_catalogue() -> large_catalog.Catalogue:
    """The chosen predictions table (`predictions_path`) as a catalogue read a column at a time,
    indexed once (large_catalog.build); on bad input shows the error with a way out and stops."""
    source = predictions_path()
    try:
        key = ("predictions", str(source), large_catalog.key(source))
        path = memo(key, lambda progress: large_catalog.build(source, data.default_cache_dir(), progress),
                    "Indexing the predictions (once; cached on disk)", max_entries=4)
    except data.DataError as e:
        error(str(e))
        st.page_link(navigation.HOME.script, label="Choose another predictions table on Home",
                     icon=navigation.HOME.icon)
        st.stop()
    return _large_catalogue(str(path))


def predictions_labels(table: large_catalog.Catalogue) -> dict[str, str]:
    """catalog.column_labels of a predictions catalogue, once (it would read every column)."""
    return memo(("predictions labels", str(table.path)), lambda progress: catalog.column_labels(table))


def predictions_image(galaxy_id: int, size: int | None = None) -> np.ndarray | None:
    """A predictions table's galaxy image from `images_dir` (thumbnail if `size`), or None with a
    caption: no folder chosen, no file for the id, or one that cannot be decoded."""
    folder = images_dir()
    if folder is None:
        return None
    try:
        path = large_catalog.image_of(folder, galaxy_id)
        if path is None:
            st.caption(f"no image {galaxy_id}.* in the images folder")
            return None
        return pictures.decoded(path, size)
    except data.DataError as e:
        st.caption(f":red[{access.shown(str(e))}]")
        return None


def with_split(ctx: Context, table: pd.DataFrame) -> pd.DataFrame:
    """The catalogue with its `catalog.HELD_OUT` column (1: in the checkpoint's held-out split)."""
    key = ("with split", *ctx.subject.identity, str(ctx.labels_path), _labels_key(ctx.labels_path))
    return memo(key, lambda progress: table.assign(**{catalog.HELD_OUT: checkpoint.held_out(
        table.GalaxyID.to_numpy(), ctx.ckpt).astype(np.float32)}), max_entries=4)


def split_of_galaxy(ctx: Context, galaxy_id: int) -> str:
    """'held out' or 'in the training split' for the loaded model, as the Galaxy page marks it."""
    return "held out" if checkpoint.held_out([galaxy_id], ctx.ckpt)[0] else "in the training split"


SPLITS = {"all": "All galaxies", "held out": "Held out", "training": "Training split"}  # a page's split filter


def split_note(ctx: Context) -> str | None:
    """None when the model's split applies to these galaxies; else why it does not, in words: the
    checkpoint records no validation split, or these images carry no labels and the model learnt from
    labelled galaxies alone (not distilled), so they are not its training data."""
    cfg = ctx.ckpt.get("train_config") or {}
    name = ctx.ckpt_path.name
    if "val_fraction" not in cfg:
        return f"`{name}` records no validation split: which of these galaxies it trained on is unknown."
    if ctx.listed.labels is None and not cfg.get("teacher"):
        return (f"These images carry no labels and `{name}` learnt from labelled galaxies alone (it was not "
                f"distilled): they are not its training data, so none is held out or in its training split.")
    return None


def split_choice(ctx: Context, key: str, counts: dict[str, int] | None = None, label: str = "Galaxies",
                 meaning: str | None = None) -> str:
    """The visitor's split filter, one of SPLITS ('all' by default), from a segmented control
    (`counts` per option shown beside its name, `meaning`: what the options mean when not the
    model's split). When the split does not apply (`split_note`) a caption says why and there is no
    control: 'all'."""
    note = split_note(ctx)
    if note is not None:
        st.caption(f"No split: {note}")
        return "all"
    shown = {k: f"{v} ({counts[k]:,})" if counts else v for k, v in SPLITS.items()}
    return st.segmented_control(label, list(SPLITS), format_func=shown.get, default="all", key=key,
                                help=meaning or "Held out: the checkpoint's validation split, galaxies the model "
                                             "never trained on. Training split: the galaxies it learnt from "
                                             "(fitted: its scores there are optimistic)") or "all"


def split_badge(words: str) -> str:
    """A galaxy's split in words (`split_labels`, `split_of_compared`) as a badge, as the Galaxy page
    marks it: green when held out, orange when a model trained on it ('' stays '')."""
    return f":{'green' if words.startswith('held out') else 'orange'}-badge[{words}]" if words else ""


def held_mask(ctx: Context, ids) -> np.ndarray | None:
    """Whether each GalaxyID is held out by the model, or None when its split does not apply."""
    return None if split_note(ctx) is not None else checkpoint.held_out(np.asarray(ids), ctx.ckpt)


def split_rows(held: np.ndarray | None, choice: str, n: int) -> np.ndarray:
    """Positions of the `n` galaxies (split `held`) in the `choice` split: every one for 'all' or
    without a split."""
    if held is None or choice == "all":
        return np.arange(n)
    return np.flatnonzero(held if choice == "held out" else ~held)


def split_words(held: np.ndarray | None, choice: str, n: int | None = None) -> str:
    """Which galaxies a figure counts, in words, e.g. 'the 57 held-out galaxies (never trained on)';
    `held`: the split of every galaxy on the page (None without a split), `n` their number then."""
    if held is None:
        return f"all {n:,} galaxies (no split: see above)"
    h = int(held.sum())
    if choice == "held out":
        return f"the {h:,} held-out galaxies (never trained on)"
    if choice == "training":
        return f"the {len(held) - h:,} galaxies of the training split (trained on: fitted, optimistic)"
    return f"all {len(held):,} galaxies ({h:,} held out, {len(held) - h:,} in the training split)"


def split_labels(held: np.ndarray | None, n: int) -> np.ndarray:
    """'held out' or 'training split' for each galaxy ('' without a split)."""
    return np.full(n, "") if held is None else np.where(held, "held out", "training split")


def split_of_compared(ctx: Context, other: Path, ids) -> tuple[np.ndarray, np.ndarray]:
    """(held out by both the model (A) and `other` (B), each galaxy's split in words: 'held out by
    both', 'in A's training split', 'in B's training split' or 'in both training splits')."""
    a, b = (checkpoint.held_out(np.asarray(ids), ckpt) for ckpt in (ctx.ckpt, model_for(other)[1]))
    words = np.select([a & b, b, a], ["held out by both", "in A's training split", "in B's training split"],
                      "in both training splits")
    return a & b, words


def baselines_over(ctx: Context, rows: np.ndarray) -> dict[str, float]:
    """evaluate.baselines fitted on the checkpoint's training split and scored on `rows` (catalogue
    positions): `baselines` on any galaxies a page counts."""
    train_rows = checkpoint.split(ctx.galaxies, ctx.ckpt)[0]
    rows = np.asarray(rows, np.int64)
    key = ("baselines over", *ctx.subject.identity, str(ctx.labels_path), _labels_key(ctx.labels_path),
           hashlib.sha1(rows.tobytes()).hexdigest())
    return memo(key, lambda progress: evaluate.baselines(ctx.crops, ctx.task.comparable(ctx.galaxies.labels),
                                                         train_rows, rows, ctx.task), max_entries=8)


def labelled(ctx: Context) -> None:
    """Stop a page that needs labels when there are none."""
    if ctx.listed.labels is not None:  # the catalogue's crowd columns come from them
        return
    if ctx.task.kind == "tree":
        st.info(f"`{access.named(ctx.data_dir)}` has no labels ({data.LABELS_FILE}): this page compares the model "
                f"with the crowd. Choose a labelled folder, or a labels CSV, on Home.")
    else:
        st.info(f"No labels for this model's {', '.join(ctx.task.label_columns)}: this page compares "
                f"its predictions with the truth. Choose a labels CSV (first column: the image id) on Home.")
    st.stop()


def tree_only(ctx: Context) -> None:
    """Stop a page made for Galaxy Zoo tree models when the model predicts something else."""
    if ctx.task.kind != "tree":
        st.info(f"This page is for Galaxy Zoo decision-tree models; `{ctx.ckpt_path.name}` predicts "
                f"{describe_task(ctx.task)}. Browse, Galaxy, Explain and Evaluate follow this model.")
        st.stop()


def prediction_kind(ctx: Context) -> str:
    """How the catalogue's predictions were made (catalog.predict), in a few words."""
    single = len(ctx.ckpt["model_config"].get("members") or [None]) == 1
    return "8-view TTA" if single and ctx.task.kind != "classification" else "no TTA"


def spread_source(ctx: Context) -> str:
    """Where the catalogue's spread comes from (catalog.predict), in words."""
    members = len(ctx.ckpt["model_config"].get("members") or [None])
    if members > 1:
        return f"the standard deviation of the ensemble's {members} members (no test-time augmentation)"
    return ("the standard deviation of the model's 8 test-time views (flips and rotations; the values are "
            "their mean)")


def describe_task(task: targets.Task) -> str:
    """What a model predicts, in words."""
    if task.kind == "tree":
        return "the 37 answer fractions of the Galaxy Zoo 2 decision tree (11 questions)"
    if task.kind == "regression":
        named = [c + (f" (in {task.unit(c)})" if task.unit(c) else "") for c in task.columns]
        return f"the target{'s' if len(task.columns) > 1 else ''} {', '.join(named)} (regression)"
    return f"the class of `{task.target}`: one of {', '.join(task.columns)} (a classifier)"


def known_checkpoints() -> list[Path]:
    """Shipped checkpoints, this server's training runs (in public mode this visitor's only) and
    GZ_CHECKPOINT, newest first."""
    found = runs.checkpoints(runs_dir(), shipped.folder())
    if access.public():
        mine = set(st.session_state.get(MY_RUNS, []))
        found = [p for p in found if p.parent != runs_dir() or str(p) in mine]
    extra = [Path(p) for p in (os.environ.get("GZ_CHECKPOINT"), st.session_state.get("model")) if p]
    return list(dict.fromkeys(found + [p for p in extra if p.is_file()]))


@st.cache_data(show_spinner=False, max_entries=64)
def _describe(path: str, key: str) -> dict | None:
    try:
        return runs.describe(path)
    except checkpoint.CheckpointError:
        return None


def checkpoint_info(path) -> dict | None:
    """runs.describe of a checkpoint file, or None when it is missing or not a checkpoint."""
    return _describe(str(path), computed.file_key(path)) if Path(path).is_file() else None


# ------------------------------------------------------------------ galaxies and runs


def galaxy_row(ctx: Context) -> int:
    """Row of the open galaxy (?galaxy=ID) in the catalogue, the first one when none is open or it is
    not here."""
    chosen = choices.galaxy_id(st.session_state.get("galaxy") or "")
    row = ctx.row_of(chosen) if chosen is not None else None
    if chosen is not None and row is None:
        not_here(chosen, ctx)
    return 0 if row is None else row


def not_here(galaxy_id: int, ctx: Context) -> None:
    """Say that the galaxy asked for is not in the loaded data (named as a visitor may see it)."""
    st.warning(f"GalaxyID {galaxy_id} is not in the loaded galaxies (`{access.named(ctx.data_dir)}`); showing "
               f"the first galaxy instead.")


def preview_table(ctx: Context, rows) -> pd.DataFrame:
    """The catalogue's rows of these listed galaxies (positions in `ctx.listed`), predicted now from
    their images: what Browse and Galaxy show before the catalogue is ready (a page of 24 takes under
    a second). Images that cannot be decoded are left out."""
    rows = tuple(int(r) for r in rows)
    pp = data.Preprocess(**ctx.ckpt["preprocess"])

    def compute(progress):
        decoded = {}
        for r in rows:
            try:
                decoded[r] = data.decode(ctx.listed.paths[r], pp, checkpoint.framing_of(ctx.ckpt))
            except data.DataError:
                continue
        crops = np.stack(list(decoded.values())) if decoded else np.zeros((0, pp.size, pp.size, pp.channels),
                                                                           np.uint8)
        with PAGES.running_now():
            frame = catalog.outputs(ctx.model, crops, ctx.ckpt)
        return catalog.table(ctx.listed.subset(np.array(list(decoded), int)), frame, ctx.task)
    key = ("preview", str(ctx.data_dir), _folder_key(ctx.data_dir), computed.file_key(ctx.ckpt_path),
           str(ctx.labels_path), _labels_key(ctx.labels_path), rows)
    return memo(key, compute, max_entries=64)


@dataclass(frozen=True)
class Open:
    """The galaxy a page shows: its row of `table` (the catalogue, or its preview) and image file."""
    table: pd.DataFrame
    row: int
    path: Path
    preview: bool  # True: the catalogue is not ready; `table` holds this galaxy alone


def open_galaxy_view(ctx: Context) -> Open:
    """The open galaxy (?galaxy=ID; the first when none is open or it is not here) from the catalogue,
    or, before it is ready, predicted alone now (`preview_table`)."""
    table = ctx.table_if_ready()
    if table is not None:
        row = galaxy_row(ctx)
        return Open(table, row, ctx.galaxies.paths[row], False)
    chosen = choices.galaxy_id(st.session_state.get("galaxy") or "")
    hits = np.flatnonzero(ctx.listed.ids == chosen) if chosen is not None else []
    if chosen is not None and not len(hits):
        not_here(chosen, ctx)
    listed_row = int(hits[0]) if len(hits) else 0
    preview = preview_table(ctx, [listed_row])
    if not len(preview):
        error(f"{ctx.listed.paths[listed_row]}: cannot decode this galaxy's image")
        st.stop()
    return Open(preview, 0, ctx.listed.paths[listed_row], True)


def open_galaxy(galaxy_id, page: navigation.Page = navigation.GALAXY) -> None:
    choose("galaxy", int(galaxy_id))
    st.switch_page(page.script)


BROWSE_IDS = "browse_ids"  # session state: {"ids": [GalaxyID, ...], "why": str} that Browse shows alone


def show_in_browse(galaxy_ids, why: str) -> None:
    """Open Browse on these galaxies only, in this order (an Atlas selection, an Oddballs ranking);
    Browse says `why` and offers a way back to every galaxy."""
    st.session_state[BROWSE_IDS] = {"ids": [int(i) for i in galaxy_ids], "why": why}
    st.switch_page(navigation.BROWSE.script)


COMPARE_WITH = "compare_with"  # session state: the checkpoint Compare and Galaxy show beside the model


def comparison_path() -> Path | None:
    """The checkpoint chosen on Compare to show beside the model, or None."""
    chosen = st.session_state.get(COMPARE_WITH)
    return Path(chosen) if chosen else None


def compare_with(path) -> None:
    """Show `path` beside the model (None or '': stop); only a checkpoint that choices.parse lets
    through, as for the model (a refusal is shown on the next run, as choices.choose's are)."""
    if path in (None, ""):
        st.session_state[COMPARE_WITH] = None
        return
    try:
        st.session_state[COMPARE_WITH] = choices.parse("model", str(path)) or None
    except access.Refused as e:
        st.session_state.setdefault(choices.REFUSED, []).append(str(e))


def comparison(ctx: Context, other: Path) -> compare.Comparison:
    """compare.of_tables of the model and `other` over the galaxies both hold out: only those are
    predicted (`held_out_table` of each). When they share none, every galaxy is (`table_for`) and
    compare.held_out falls back to one model's split with a warning. CheckpointError when the two
    predict different outputs."""
    task = compare.same_task(ctx.ckpt, model_for(other)[1], ctx.ckpt_path, other)
    names = compare.names_of(ctx.ckpt_path, other)
    tables = [held_out_table(path, ctx.data_dir, ctx.labels_path) for path in (ctx.ckpt_path, other)]
    key = ("comparison", *ctx.subject.identity, computed.file_key(other), str(ctx.labels_path),
           _labels_key(ctx.labels_path))
    if np.isin(tables[0].GalaxyID.to_numpy(), tables[1].GalaxyID.to_numpy()).any():
        return memo(key, lambda progress: compare.of_tables(*tables, np.arange(len(tables[0])),
                                                            np.arange(len(tables[1])), task, names), max_entries=8)
    table = table_for(other, ctx.data_dir, ctx.labels_path)
    held = [held_out_rows(ctx.data_dir, path, ctx.labels_path) for path in (ctx.ckpt_path, other)]
    return memo(key, lambda progress: compare.of_tables(ctx.table, table, *held, task, names), max_entries=8)


def baselines(ctx: Context) -> dict[str, float]:
    """evaluate.baselines fitted on the checkpoint's training split, scored on its held-out one."""
    train_rows, held = checkpoint.split(ctx.galaxies, ctx.ckpt)
    key = ("baselines", *ctx.subject.identity, str(ctx.labels_path), _labels_key(ctx.labels_path))
    return memo(key, lambda progress: evaluate.baselines(ctx.crops, ctx.task.comparable(ctx.galaxies.labels),
                                                         train_rows, held, ctx.task))


def mean_image(ctx: Context) -> np.ndarray:
    key = ("mean image", str(ctx.data_dir), _folder_key(ctx.data_dir), ctx.crops.shape)
    return memo(key, lambda progress: catalog.mean_image(ctx.crops))


def input_pixels(ctx: Context, path: Path) -> np.ndarray:
    """The pixels the model sees of the image `path` (its central input_size crop of the crop the
    catalogue is made of) as uint8 (s, s, C)."""
    key = ("input pixels", str(path), computed.file_key(path), computed.file_key(ctx.ckpt_path))
    return memo(key, lambda progress: _input_pixels(data.decode(path, data.Preprocess(**ctx.ckpt["preprocess"]),
                                                                checkpoint.framing_of(ctx.ckpt)),
                                                    ctx.input_size), max_entries=64)


def _input_pixels(crop: np.ndarray, input_size: int) -> np.ndarray:
    x = explain.model_input(crop, input_size)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def input_box(ctx: Context, path: Path) -> tuple[float, float, float, float]:
    """Where the pixels `input_pixels` gives lie in the image `path`: explain.input_box, (left, top,
    right, bottom) as fractions of its width and height."""
    pp = data.Preprocess(**ctx.ckpt["preprocess"])
    key = ("input box", str(path), computed.file_key(path), computed.file_key(ctx.ckpt_path))
    return memo(key, lambda progress: explain.input_box(data.read_rgb(path, pp, target=checkpoint.framing_of(ctx.ckpt)),
                                                        pp, ctx.input_size),
                max_entries=64)


def cutout(path: Path, size: int) -> np.ndarray:
    """The whole image `path` as uint8 (H, W, 3), shrunk to at most `size` a side: the file as Pillow
    reads it (`picture`), or else as gzcore decodes it (data.read_rgb: a FITS cube rendered to
    colour). Raises DataError when neither can."""
    try:
        return pictures.decoded(path, size)
    except data.DataError:
        pass

    def render(progress):
        image = data.read_rgb(Path(path), data.Preprocess())
        image.thumbnail((size, size))
        return np.asarray(image)
    return memo(("cutout", str(path), computed.file_key(path), size), render, max_entries=16)


@dataclass(frozen=True, eq=False)
class Brought:
    """An image a visitor brings, through the loaded model."""
    image: upload.Upload
    pixels: np.ndarray              # the model's input, uint8 (s, s, C)
    table: pd.DataFrame             # the model's one-row catalogue (catalog.predict: as the data's rows)
    embedding: np.ndarray           # its unit feature vector (neighbours.embed)
    saliency: explain.Attribution   # of Q1's top answer, or of the top class, or of the first target


def brought(ctx: Context, blob: bytes, name: str, pixel_scale: float | None = None) -> Brought:
    """An uploaded file (upload.read_bytes, within this server's limits, framed as the model expects;
    a JPEG or PNG by its `pixel_scale` when given) through the loaded model: its answers, embedding
    and saliency map, once per file content, pixel scale and model. Bad files raise DataError
    naming them."""
    def compute(progress):
        image = upload.read_bytes(blob, name, data.Preprocess(**ctx.ckpt["preprocess"]), access.public(),
                                  pixel_scale, checkpoint.framing_of(ctx.ckpt))
        pred, spread = catalog.predict(ctx.model, image.crop[None], ctx.ckpt)
        columns = list(ctx.task.columns)
        table = evaluate.predictions_table([0], pred, None, columns)
        if spread is not None:
            table[[catalog.col(c, "spread") for c in columns]] = spread
        pixels = _input_pixels(image.crop, ctx.input_size)
        if ctx.task.kind == "tree":
            saliency = explain.explain(ctx.model, pixels, 1)
        else:
            saliency = explain.explain_output(ctx.model, pixels, int(pred[0].argmax())
                                              if ctx.task.kind == "classification" else 0)
        return Brought(image, pixels, catalog.enrich(table, ctx.task),
                       neighbours.embed(ctx.model, image.crop[None], ctx.input_size)[0], saliency)
    key = ("brought", hashlib.sha1(blob).hexdigest(), name, computed.file_key(ctx.ckpt_path), access.public(),
           pixel_scale)
    return memo(key, _as_page_work(compute), max_entries=8)


@dataclass(frozen=True, eq=False)
class Known:
    """A loaded galaxy that an upload is (the same pixels after decoding)."""
    galaxy_id: int
    table: pd.DataFrame  # the catalogue (or its preview) that holds it: the crowd's answers beside the model's
    row: int


def known_upload(ctx: Context, mine: Brought) -> Known | None:
    """The loaded galaxy the upload is (upload.known_galaxy over the data's crops, once per upload and
    data) and the table row that shows it; None when it is none of them, or while the crops of a
    large folder are still decoded (`ctx.previewed`)."""
    if ctx.previewed and not ctx.crops_ready:
        return None
    key = ("known upload", hashlib.sha1(mine.image.crop.tobytes()).hexdigest(), *ctx.subject.identity)
    found = memo(key, lambda progress: upload.known_galaxy(mine.image.crop, ctx.crops, ctx.galaxies.ids),
                 max_entries=16)
    if found is None:
        return None
    table = ctx.table_if_ready()
    if table is not None:
        return Known(found, table, ctx.row_of(found))
    return Known(found, preview_table(ctx, [int(np.flatnonzero(ctx.listed.ids == found)[0])]), 0)


def _as_page_work(compute):
    """A page's compute(progress), counted as pages' torch work (`PAGES`)."""
    def run(progress):
        with PAGES.running_now():
            return compute(progress)
    return run


def attribution_key(ctx: Context, galaxy_id: int, question: int | None, answer: str, method: str,
                    conditional: bool, kind: str = "attribution") -> tuple:
    """The memo key of a map (`kind` "attribution") or of its checks ("attribution check")."""
    return (kind, computed.file_key(ctx.ckpt_path), str(ctx.data_dir), int(galaxy_id), question, answer,
            method, conditional)


def attribution(ctx: Context, galaxy_id: int, pixels: np.ndarray, question: int | None, answer: str,
                method: str, conditional: bool = True) -> explain.Attribution:
    """explain.explain on the open galaxy, once per model/galaxy/answer/method, with a progress bar.
    For a model of other targets `answer` is one of its outputs (a target or a class; question None):
    explain.explain_output."""
    if ctx.task.kind == "tree":
        def compute(progress):
            return explain.explain(ctx.model, pixels, question, answer, method, conditional,
                                   progress=progress)
        name = tree.ANSWER_BY_COLUMN[answer].long
    else:
        def compute(progress):
            return explain.explain_output(ctx.model, pixels, ctx.task.columns.index(answer), method,
                                          progress=progress)
        name = answer
    return memo(attribution_key(ctx, galaxy_id, question, answer, method, conditional), _as_page_work(compute),
                f"{method} for {name}: images through the model")


CHECKED_DEPTHS = 9  # the Explain page's randomisation maps: head (0 %) to input (100 %), evenly spaced


def attribution_check(ctx: Context, galaxy_id: int, pixels: np.ndarray, question: int | None, answer: str,
                      method: str, conditional: bool = True) -> explain_checks.Check:
    """explain_checks.check of the map `attribution` shows, once per model/galaxy/answer/method."""
    tree_model = ctx.task.kind == "tree"

    def compute(progress):
        depths = explain_checks.cascade_steps(ctx.model)
        return explain_checks.check(ctx.model, pixels, question, answer if tree_model else None, method,
                                    conditional, None if tree_model else ctx.task.columns.index(answer),
                                    at=np.unique(np.linspace(0, depths, CHECKED_DEPTHS).round().astype(int)),
                                    progress=progress)
    return memo(attribution_key(ctx, galaxy_id, question, answer, method, conditional, "attribution check"),
                _as_page_work(compute),
                f"Checking the {method} map: maps of randomised models, then the removal tests", max_entries=32)


@st.cache_resource
def run_slot() -> dict:
    """This server's training run: {'run': runs.Run or None, 'owner': the session that started it,
    'baseline': the model it is compared with}. One at a time for everyone (`start_run`)."""
    return {"run": None, "lock": threading.Lock()}


MY_RUNS = choices.MY_RUNS  # session state: the checkpoints of this visitor's runs


def session_id() -> str:
    """This browser session's own id (kept in its session state)."""
    return st.session_state.setdefault("_visitor", uuid.uuid4().hex)


def may_stop(slot: dict) -> bool:
    """Whether this session may stop the server's run: anyone locally, its starter in public mode."""
    return not access.public() or slot.get("owner") == session_id()


def my_run(slot: dict) -> runs.Run | None:
    """The server's run as this session may see it: locally any run; in public mode only the one this
    session started: another visitor's curves, results, errors and checkpoint stay theirs."""
    return slot.get("run") if may_stop(slot) else None


def busy_elsewhere(slot: dict) -> float | None:
    """Minutes left (an estimate, at least 1) of the run another visitor is running, which this
    session may not see (`my_run`); None when there is none."""
    run = slot.get("run")
    if run is None or not run.running or my_run(slot) is not None:
        return None
    left = run.seconds_left()
    return max(1.0, float(np.ceil((left if left is not None else 60 * (run.config.minutes or 1)) / 60)))


def start_run(slot: dict, run: runs.Run, baseline: Path) -> bool:
    """Start `run` as this session's and the server's one run; False (nothing started) when a run
    is in progress already (another visitor pressed Start first)."""
    with slot["lock"]:
        if slot.get("run") is not None and slot["run"].running:
            return False
        slot.update(run=run.start(), baseline=baseline, owner=session_id())
    st.session_state.setdefault(MY_RUNS, []).append(str(run.out))
    return True


def picture(path, size: int | None = None) -> np.ndarray | None:
    """An image file (thumbnail if `size`), or None with a caption when it cannot be decoded."""
    try:
        return pictures.decoded(path, size)
    except data.DataError as e:
        st.caption(f":red[{access.shown(str(e))}]")
        return None


def image_for(ctx: Context, row: int, size: int | None = None) -> np.ndarray | None:
    """A galaxy's image by its catalogue row (`picture`)."""
    return picture(ctx.galaxies.paths[row], size)
