"""The dashboard's caches and session state: what is loaded, where it came from, which galaxy is
open, and this server's one training run. Pages call `context()` and render; the science lives in
gzcore.

Choices (gzcore.dashboard.choices, re-exported here) live in session state under plain keys:
widgets write to them through callbacks, so they survive page switches.
Slow results are memoised with `memo` rather than st.cache_*: they report progress to a bar on the
page, and Streamlit cannot replay elements a cached function drew into a bar created outside it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from gzcore import (atlas, catalog, checkpoint, compare, data, evaluate, explain, explain_checks, large_catalog,
                    neighbours, oddballs, runs, shipped, synthetic, targets, tree, upload)
from gzcore.dashboard import access, choices, navigation
from gzcore.dashboard.choices import (checkpoint_path, choose, data_dir, images_dir, labels_path, predictions_path,
                                     runs_dir, universe_dir)

ERRORS = (data.DataError, checkpoint.CheckpointError)
log = logging.getLogger("gzcore.dashboard")


def error(message: str) -> None:
    """Show an error as a visitor may see it (access.shown: no server paths in public mode); the
    server's log keeps it whole."""
    log.warning("shown to a visitor: %s", message)
    st.error(access.shown(message))


# ------------------------------------------------------------------ memo with progress bars


@st.cache_resource
def _memo_stores() -> tuple[defaultdict, threading.Lock]:
    return defaultdict(OrderedDict), threading.Lock()


def memoised(key: tuple) -> bool:
    return key in _memo_stores()[0][key[0]]


def memo(key: tuple, compute, label: str | None = None, max_entries: int = 256):
    """compute(progress) once per key, server-wide. key[0] names the kind of result; each kind keeps
    its `max_entries` most recently used. `progress(done, total)` drives a bar titled `label`, shown
    only while computing."""
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


# ------------------------------------------------------------------ what is loaded


def ensure_universe() -> Path:
    """Render the default synthetic universe on first start (atomically: a half-written one is
    never used)."""
    target = universe_dir()
    if (target / data.LABELS_FILE).is_file():
        return target
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}-{threading.get_ident()}")
    bar = st.progress(0.0, "Rendering the synthetic universe (first start only)")
    synthetic.generate(tmp, choices.UNIVERSE_N, choices.UNIVERSE_SEED, progress=lambda d, n: bar.progress(
        d / n, f"Rendering the synthetic universe (first start only): galaxy {d} of {n}"))
    bar.empty()
    try:
        tmp.rename(target)
    except OSError:  # another session finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def load_model(path: str, key: str):
    """(model in eval mode, checkpoint dict); `key` (catalog.file_key) reloads a rewritten file.
    A loaded copy, never the instance a training run is updating."""
    return checkpoint.load(path)


def model_for(path) -> tuple:
    return load_model(str(path), catalog.file_key(path))


def _folder_key(folder: Path) -> str:
    labels = folder / data.LABELS_FILE
    return catalog.file_key(labels) if labels.is_file() else str(data.find_images(folder).stat().st_mtime_ns)


def _labels_key(labels: Path | None) -> str | None:
    return (catalog.file_key(labels) if labels.is_file() else "missing") if labels else None


def open_galaxies(folder: Path, task: targets.Task, labels: Path | None = None) -> data.GalaxySet:
    """The galaxies a page shows, with the labels that are the truth for a model of `task`: the
    rows of the CSV `labels` (the task's columns, or Kaggle answers for a tree model), else the
    folder's own Kaggle answers for a tree model, else none (predictions only). Rows whose image
    is missing are skipped and listed."""
    if labels is not None:
        return targets.open_labelled(folder, labels, task=task, skip_bad=True)[0]
    return data.open_folder(folder, labels=None if task.kind == "tree" else False, skip_bad=True)


def crops_for(folder: Path, preprocess: dict, task: targets.Task = targets.TREE,
              labels: Path | None = None) -> tuple[np.ndarray, data.GalaxySet]:
    """Decoded crops and the galaxies that have them (`open_galaxies`; unreadable images skipped
    and listed)."""
    pp = data.Preprocess(**preprocess)
    key = ("crops", str(folder), _folder_key(folder), pp, task.kind, task.label_columns, str(labels),
           _labels_key(labels))
    return memo(key, lambda progress: data.load_crops(open_galaxies(folder, task, labels), pp, skip_bad=True,
                                                      progress=progress),
                "Decoding crops (once; cached on disk)", max_entries=4)


def table_for(ckpt_path: Path, folder: Path | None = None, labels: Path | None = None) -> pd.DataFrame:
    """The catalogue of one model over a folder (catalog.build; on disk after the first time),
    beside `labels` (see `open_galaxies`)."""
    folder = folder or data_dir()
    model, ckpt = model_for(ckpt_path)
    crops, galaxies = crops_for(folder, ckpt["preprocess"], targets.of_checkpoint(ckpt), labels)
    key = ("table", str(folder), _folder_key(folder), catalog.file_key(ckpt_path), str(labels),
           _labels_key(labels))
    return memo(key, lambda progress: catalog.build(galaxies, crops, model, ckpt, ckpt_path,
                                                    data.default_cache_dir(), progress),
                "Predicting every galaxy (once; cached on disk)", max_entries=4)


def _model_key(ctx: "Context") -> tuple:
    """What a result of the loaded data and model is keyed by: the folder, its files, the checkpoint file."""
    return str(ctx.data_dir), _folder_key(ctx.data_dir), catalog.file_key(ctx.ckpt_path)


def embeddings_for(ctx: "Context") -> np.ndarray:
    """The model's unit feature vectors of every galaxy (catalog.embeddings; on disk after once)."""
    key = ("embeddings", *_model_key(ctx))
    return memo(key, lambda progress: catalog.embeddings(ctx.galaxies, ctx.crops, ctx.model, ctx.ckpt,
                                                         ctx.ckpt_path, data.default_cache_dir(), progress),
                "Embedding every galaxy (once; cached on disk)", max_entries=8)


def _atlas_key(ctx: "Context", method: str) -> tuple:
    return ("atlas", method, *_model_key(ctx))


def atlas_ready(ctx: "Context", method: str) -> bool:
    """Whether the `method` map of every galaxy is at hand: held by this server or on disk."""
    return memoised(_atlas_key(ctx, method)) or atlas.cache_file(
        ctx.galaxies, ctx.ckpt, ctx.ckpt_path, data.default_cache_dir(), method).is_file()


def atlas_map(ctx: "Context", method: str) -> np.ndarray:
    """(N, 2) map positions of every galaxy by `method` (atlas.coordinates; on disk after once)."""
    return memo(_atlas_key(ctx, method),
                lambda progress: atlas.coordinates(embeddings_for(ctx), method, ctx.galaxies, ctx.ckpt,
                                                   ctx.ckpt_path, data.default_cache_dir()), max_entries=8)


def held_out_rows(folder: Path, ckpt_path: Path, labels: Path | None = None) -> np.ndarray:
    """Rows of the folder's catalogue in the checkpoint's held-out split."""
    ckpt = model_for(ckpt_path)[1]
    galaxies = crops_for(folder, ckpt["preprocess"], targets.of_checkpoint(ckpt), labels)[1]
    return checkpoint.split(galaxies, ckpt)[1]


def oddness_for(ctx: "Context") -> np.ndarray:
    """oddballs.anomaly of every galaxy, from `embeddings_for` (on disk after once)."""
    embeddings = embeddings_for(ctx)
    return memo(("oddness", *_model_key(ctx)),
                lambda progress: oddballs.anomaly_cached(embeddings, data.default_cache_dir(), progress),
                "Scoring how odd every galaxy is (once; cached on disk)", max_entries=8)


def more_like_for(ctx: "Context", positives: list[int], negatives: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """oddballs.more_like of these rows over every galaxy's embedding: the best `n` (rows, probability)."""
    embeddings = embeddings_for(ctx)
    return memo(("more like", *_model_key(ctx), tuple(positives), tuple(negatives), n),
                lambda progress: oddballs.more_like(embeddings, positives, negatives, n), max_entries=32)


@dataclass
class Context:
    data_dir: Path
    ckpt_path: Path
    model: object
    ckpt: dict
    crops: np.ndarray
    galaxies: data.GalaxySet
    labels_path: Path | None = None

    @property
    def table(self) -> pd.DataFrame:
        """The catalogue: the model's predictions for every galaxy beside the labels (`table_for`;
        computed when a page first reads it, so Home shows without waiting for it)."""
        return table_for(self.ckpt_path, self.data_dir, self.labels_path)

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
    """Everything a page reads; on bad input shows the error with a way out, and stops the page."""
    try:
        folder = ensure_universe() if data_dir() == universe_dir() else data_dir()
        path, labels = checkpoint_path(), labels_path()
        model, ckpt = model_for(path)
        crops, galaxies = crops_for(folder, ckpt["preprocess"], targets.of_checkpoint(ckpt), labels)
        if not len(galaxies):
            raise data.DataError(f"{folder}: none of its images has a label in {labels}" if labels else
                                 f"{folder}: no galaxies to show")
    except ERRORS as e:
        error(str(e))
        st.page_link(navigation.HOME.script, label="Choose another data folder, labels or model on Home",
                     icon=navigation.HOME.icon)
        st.stop()
    if galaxies.skipped:
        st.warning(access.shown(f"Skipped {len(galaxies.skipped)} unreadable input(s), e.g. {galaxies.skipped[0]}"))
    return Context(folder, path, model, ckpt, crops, galaxies, labels)


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
        return _image(str(path), catalog.file_key(path), size)
    except data.DataError as e:
        st.caption(f":red[{access.shown(str(e))}]")
        return None


def labelled(ctx: Context) -> None:
    """Stop a page that needs labels when there are none."""
    if catalog.has_crowd(ctx.table):
        return
    if ctx.task.kind == "tree":
        st.info(f"{ctx.data_dir} has no labels ({data.LABELS_FILE}): this page compares the model "
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
        return f"the target{'s' if len(task.columns) > 1 else ''} {', '.join(task.columns)} (regression)"
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
    return _describe(str(path), catalog.file_key(path)) if Path(path).is_file() else None


# ------------------------------------------------------------------ galaxies and runs


def galaxy_row(ctx: Context) -> int:
    """Row of the open galaxy (?galaxy=ID), the first one when none is open or it is not here."""
    chosen = st.session_state.get("galaxy")
    row = ctx.row_of(chosen) if chosen and str(chosen).isdigit() else None
    if chosen and row is None:
        st.warning(f"GalaxyID {chosen} is not in {ctx.data_dir}; showing the first galaxy instead.")
    return 0 if row is None else row


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
    """Show `path` beside the model (None or '': stop); in public mode only a checkpoint that
    access.admit lets through (a refusal is shown on the next run, as choices.choose's are)."""
    if path in (None, ""):
        st.session_state[COMPARE_WITH] = None
        return
    try:
        st.session_state[COMPARE_WITH] = access.admit("model", str(path))
    except access.Refused as e:
        st.session_state.setdefault(choices.REFUSED, []).append(str(e))


def comparison(ctx: Context, other: Path) -> compare.Comparison:
    """compare.of_tables of the model and `other` over the folder (both catalogues as `table_for`
    makes them); CheckpointError when the two predict different outputs."""
    task = compare.same_task(ctx.ckpt, model_for(other)[1], ctx.ckpt_path, other)
    table = table_for(other, ctx.data_dir, ctx.labels_path)
    key = ("comparison", *_model_key(ctx),
           catalog.file_key(other), str(ctx.labels_path), _labels_key(ctx.labels_path))
    held = [held_out_rows(ctx.data_dir, path, ctx.labels_path) for path in (ctx.ckpt_path, other)]
    return memo(key, lambda progress: compare.of_tables(ctx.table, table, *held, task,
                                                        compare.names_of(ctx.ckpt_path, other)),
                max_entries=8)


def baselines(ctx: Context) -> dict[str, float]:
    """evaluate.baselines fitted on the checkpoint's training split, scored on its held-out one."""
    train_rows, held = checkpoint.split(ctx.galaxies, ctx.ckpt)
    key = ("baselines", *_model_key(ctx),
           str(ctx.labels_path), _labels_key(ctx.labels_path))
    return memo(key, lambda progress: evaluate.baselines(ctx.crops, ctx.task.comparable(ctx.galaxies.labels),
                                                         train_rows, held, ctx.task))


def mean_image(ctx: Context) -> np.ndarray:
    key = ("mean image", str(ctx.data_dir), _folder_key(ctx.data_dir), ctx.crops.shape)
    return memo(key, lambda progress: catalog.mean_image(ctx.crops))


def input_pixels(ctx: Context, row: int) -> np.ndarray:
    """The pixels the model sees (its central input_size crop) as uint8 (s, s, C)."""
    return _input_pixels(ctx.crops[row], ctx.input_size)


def _input_pixels(crop: np.ndarray, input_size: int) -> np.ndarray:
    x = explain.model_input(crop, input_size)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Brought:
    """An image a visitor brings, through the loaded model."""
    image: upload.Upload
    pixels: np.ndarray              # the model's input, uint8 (s, s, C)
    table: pd.DataFrame             # the model's one-row catalogue (catalog.predict: as the data's rows)
    embedding: np.ndarray           # its unit feature vector (neighbours.embed)
    saliency: explain.Attribution   # of Q1's top answer, or of the top class, or of the first target


def brought(ctx: Context, blob: bytes, name: str) -> Brought:
    """An uploaded file (upload.read_bytes, within this server's limits) through the loaded model:
    its answers, embedding and saliency map, once per file content and model. Bad files raise
    DataError naming them."""
    def compute(progress):
        image = upload.read_bytes(blob, name, data.Preprocess(**ctx.ckpt["preprocess"]), access.public())
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
    key = ("brought", hashlib.sha1(blob).hexdigest(), name, catalog.file_key(ctx.ckpt_path), access.public())
    return memo(key, compute, max_entries=8)


def attribution_key(ctx: Context, row: int, question: int | None, answer: str, method: str,
                    conditional: bool, kind: str = "attribution") -> tuple:
    """The memo key of a map (`kind` "attribution") or of its checks ("attribution check")."""
    return (kind, catalog.file_key(ctx.ckpt_path), int(ctx.galaxies.ids[row]), question, answer,
            method, conditional)


def attribution(ctx: Context, row: int, question: int | None, answer: str, method: str,
                conditional: bool = True) -> explain.Attribution:
    """explain.explain on the open galaxy, once per model/galaxy/answer/method, with a progress bar.
    For a model of other targets `answer` is one of its outputs (a target or a class; question None):
    explain.explain_output."""
    pixels = input_pixels(ctx, row)
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
    return memo(attribution_key(ctx, row, question, answer, method, conditional), compute,
                f"{method} for {name}: images through the model")


def attribution_check(ctx: Context, row: int, question: int | None, answer: str, method: str,
                      conditional: bool = True) -> explain_checks.Check:
    """explain_checks.check of the map `attribution` shows, once per model/galaxy/answer/method."""
    pixels = input_pixels(ctx, row)
    tree_model = ctx.task.kind == "tree"

    def compute(progress):
        return explain_checks.check(ctx.model, pixels, question, answer if tree_model else None, method,
                                    conditional, None if tree_model else ctx.task.columns.index(answer),
                                    progress=progress)
    return memo(attribution_key(ctx, row, question, answer, method, conditional, "attribution check"), compute,
                f"Checking the {method} map: maps of randomised models, then deletions", max_entries=32)


@st.cache_resource
def run_slot() -> dict:
    """This server's training run: {'run': runs.Run or None, 'owner': the session that started it}.
    One at a time for everyone."""
    return {"run": None}


MY_RUNS = "_my_runs"  # session state: the checkpoints of this visitor's runs


def session_id() -> str:
    """This browser session's own id (kept in its session state)."""
    return st.session_state.setdefault("_visitor", uuid.uuid4().hex)


def may_stop(slot: dict) -> bool:
    """Whether this session may stop the server's run: anyone locally, its starter in public mode."""
    return not access.public() or slot.get("owner") == session_id()


def start_run(slot: dict, run: runs.Run, baseline: Path) -> None:
    """Start `run` as this session's and the server's one run."""
    slot.update(run=run.start(), baseline=baseline, owner=session_id())
    st.session_state.setdefault(MY_RUNS, []).append(str(run.out))


@st.cache_data(show_spinner=False, max_entries=2000)
def _image(path: str, key: str, size: int | None) -> np.ndarray:
    return catalog.image(path, size)


def image_for(ctx: Context, row: int, size: int | None = None) -> np.ndarray | None:
    """A galaxy's image (thumbnail if `size`), or None with a caption when it cannot be decoded."""
    path = ctx.galaxies.paths[row]
    try:
        return _image(str(path), catalog.file_key(path), size)
    except data.DataError as e:
        st.caption(f":red[{access.shown(str(e))}]")
        return None
