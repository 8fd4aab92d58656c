"""Results computed once for every thread and process sharing a cache folder (gzcore.computed), and
the dashboard's background jobs built on it: exactly one computation however many ask at once, its
progress seen by those who wait, a crashed computer's work taken over, and a first view of Browse
and Galaxy before the catalogue is ready."""
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

from gzcore import catalog, checkpoint, computed, data, targets

from test_app import BROWSE, GALAXY, app_with, show


def _slow_count(counter, seconds=0.6, value=7):
    """A compute function that appends a line to `counter` per call, reports progress, and takes `seconds`."""
    def compute(progress):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        for done in range(1, 4):
            time.sleep(seconds / 3)
            progress(done, 3)
        return np.full(3, value)
    return compute


def test_threads_asking_at_once_compute_once_and_follow_progress(tmp_path):
    path, counter = tmp_path / "r" / "x.npy", tmp_path / "count"
    seen, results = [], []

    def ask():
        results.append(computed.once(path, _slow_count(counter), computed.npy, computed.save_npy,
                                     lambda d, t: seen.append((d, t))))
    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    during = computed.progress(path)
    for t in threads:
        t.join()
    assert counter.read_text().count("\n") == 1
    assert all((r == 7).all() for r in results) and len(results) == 3
    assert during is not None and during.total in (0, 3)
    assert (3, 3) in seen
    assert computed.progress(path) is None  # done: nobody computes it
    assert not path.with_name("x.npy.progress").exists()


def _ask_in_process(path, counter):
    computed.once(path, _slow_count(counter, 1.0), computed.npy, computed.save_npy)


@pytest.mark.slow
def test_processes_sharing_a_folder_compute_once(tmp_path):
    path, counter = tmp_path / "x.npy", tmp_path / "count"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ask_in_process, args=(path, counter)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text().count("\n") == 1
    assert (np.load(path) == 7).all()


def _hold_forever(path, counter):
    computed.once(path, _slow_count(counter, 600), computed.npy, computed.save_npy)


@pytest.mark.slow
def test_a_crashed_computer_is_taken_over(tmp_path):
    path, counter = tmp_path / "x.npy", tmp_path / "count"
    holder = multiprocessing.get_context("spawn").Process(target=_hold_forever, args=(path, counter))
    holder.start()
    while not counter.is_file():
        time.sleep(0.05)
    assert computed.progress(path) is not None
    finished = []
    waiter = threading.Thread(target=lambda: finished.append(
        computed.once(path, _slow_count(counter, 0.1, value=5), computed.npy, computed.save_npy)))
    waiter.start()
    time.sleep(0.5)
    assert not finished  # it waits for the holder
    os.kill(holder.pid, signal.SIGKILL)
    waiter.join(30)
    assert finished and (finished[0] == 5).all()
    assert counter.read_text().count("\n") == 2


def test_an_error_leaves_nothing_and_the_next_caller_computes(tmp_path):
    path = tmp_path / "x.npy"

    def broken(progress):
        raise data.DataError("a.jpg: cannot decode")
    with pytest.raises(data.DataError, match="a.jpg"):
        computed.once(path, broken, computed.npy, computed.save_npy)
    assert not path.exists() and computed.progress(path) is None
    assert (computed.once(path, lambda p: np.ones(2), computed.npy, computed.save_npy) == 1).all()


def test_progress_says_what_is_left():
    assert computed.Progress(0, 100, 0.0, 0.0).describe("Predicting") == \
        "Predicting: 0 / 100 (0%) · estimating the time left"
    assert computed.Progress(25, 100, 0.0, 10.0).describe("Predicting") == \
        "Predicting: 25 / 100 (25%) · about 30 s left"
    assert computed.duration(70) == "1 min 10 s" and computed.duration(7300) == "2 h 1 min"


@pytest.mark.slow
def test_the_full_catalogue_reuses_the_held_out_part(dashboard_env, tmp_path, monkeypatch):
    model, ckpt = checkpoint.load(dashboard_env["GZ_CHECKPOINT"])
    galaxies = targets.open_for(dashboard_env["GZ_DATA"], targets.TREE)
    crops, galaxies = data.load_crops(galaxies, data.Preprocess(**ckpt["preprocess"]), tmp_path)
    subject = computed.Subject(galaxies, ckpt, dashboard_env["GZ_CHECKPOINT"], tmp_path)
    predicted = []
    original = catalog.predict
    monkeypatch.setattr(catalog, "predict", lambda m, c, k, p=None: predicted.append(len(c)) or original(m, c, k, p))
    held_table, held = catalog.held_out_table(subject, crops, model)
    table = catalog.build(subject, crops, model)
    assert sum(predicted) == len(galaxies)  # the held-out galaxies were not predicted twice
    assert np.allclose(catalog.weighted(table, rows=held), catalog.weighted(held_table), atol=1e-6)
    assert (table.GalaxyID.to_numpy() == galaxies.ids).all()


@pytest.mark.slow
def test_three_sessions_opening_browse_at_once_make_one_prediction_pass(dashboard_env, monkeypatch, tmp_path):
    monkeypatch.setenv("GZ_CACHE", str(tmp_path / "cold"))
    predicted = []
    original = catalog.predict
    monkeypatch.setattr(catalog, "predict", lambda m, c, k, p=None: predicted.append(len(c)) or original(m, c, k, p))
    apps = [app_with(dashboard_env, monkeypatch) for _ in range(3)]
    errors = []

    def browse(at):
        try:
            show(at, BROWSE)
            assert "galaxies match" in " ".join(c.value for c in at.caption)
        except Exception as e:  # reported below, from the test's thread
            errors.append(e)
    threads = [threading.Thread(target=browse, args=(at,)) for at in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sum(predicted) == 96  # every galaxy once: one pass for the three sessions


@pytest.mark.slow
def test_browse_and_galaxy_preview_before_the_catalogue_is_ready(dashboard_env, monkeypatch, tmp_path):
    from gzcore.dashboard import state
    monkeypatch.setenv("GZ_CACHE", str(tmp_path / "cold"))
    monkeypatch.setattr(state, "PREVIEW_FROM", 1)
    release = threading.Event()
    original = catalog.all_outputs
    monkeypatch.setattr(catalog, "all_outputs", lambda *a, **k: release.wait(60) and original(*a, **k))
    try:
        at = show(app_with(dashboard_env, monkeypatch), BROWSE)
        captions = " ".join(c.value for c in at.caption)
        assert "96 galaxies in file order (preview)" in captions
        assert len([b for b in at.button if b.label.startswith("Open ")]) == 24
        assert "Filters" not in [e.label for e in at.expander]
        first = next(int(b.label.split()[1]) for b in at.button if b.label.startswith("Open "))
        at = show(at, GALAXY, galaxy=str(first))
        assert [h.value for h in at.title][0] == f"Galaxy {first}"
        assert "Look-alikes need every galaxy's embedding" in " ".join(c.value for c in at.caption)
        assert not at.exception
    finally:
        release.set()


@pytest.mark.slow
def test_gz_catalog_prepares_everything_the_dashboard_reads(dashboard_env, monkeypatch, tmp_path, capsys):
    from gzcore import cli
    monkeypatch.setenv("GZ_CACHE", str(tmp_path / "prepared"))
    assert cli.main(["catalog", "--data", dashboard_env["GZ_DATA"], "--checkpoint", dashboard_env["GZ_CHECKPOINT"],
                     "--maps", "pca"]) == 0
    out = capsys.readouterr().out
    for step in ("held-out predictions", "every galaxy's predictions", "embeddings", "oddness", "PCA map"):
        assert f"ready: {step}" in out
    cache = tmp_path / "prepared"
    assert len(list((cache / "predictions").glob("*.parquet"))) == 2
    for kind in ("embeddings", "oddballs", "atlas"):
        assert len(list((cache / kind).glob("*.npy"))) == 1, kind
    monkeypatch.setattr(catalog, "predict", lambda *a, **k: pytest.fail("the dashboard predicted again"))
    at = show(app_with(dashboard_env, monkeypatch), BROWSE)
    assert "of 96 galaxies match" in " ".join(c.value for c in at.caption)
    at = show(at, GALAXY)
    assert "Nearest in the model's feature space" in " ".join(c.value for c in at.caption)
