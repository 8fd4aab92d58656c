"""The decoded-crop cache (`data.load_crops`): resumable, shared, and never trusted when damaged."""
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gzcore import data

PP = data.Preprocess(size=32)


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 8 galaxies, so that the 48 synthetic ones make 6."""
    monkeypatch.setattr(data, "PART", 8)


def _reference(galaxies, pp=PP):
    return np.stack([data.decode(p, pp) for p in galaxies.paths])


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("damage", ["truncated npy", "empty npy", "corrupt json", "half json",
                                    "other shape", "no json"])
def test_a_damaged_cache_is_built_again(synth_dir, tmp_path, damage):
    g = data.open_folder(synth_dir)
    crops, _ = data.load_crops(g, PP, cache_dir=tmp_path, workers=1)
    expected = np.array(crops)
    del crops
    npy, meta = tmp_path / f"{data.fingerprint(g, PP)}.npy", tmp_path / f"{data.fingerprint(g, PP)}.json"
    if damage == "truncated npy":
        npy.write_bytes(npy.read_bytes()[:-1000])
    elif damage == "empty npy":
        npy.write_bytes(b"")
    elif damage == "corrupt json":
        meta.write_text("{")
    elif damage == "half json":  # what a crash while writing it in place would leave
        meta.write_text(meta.read_text()[:len(meta.read_text()) // 2])
    elif damage == "other shape":
        np.save(npy, expected[:-1])
    else:
        meta.unlink()
    again, kept = data.load_crops(g, PP, cache_dir=tmp_path, workers=1)
    np.testing.assert_array_equal(again, expected)
    assert len(kept) == len(g) and not _leftovers(tmp_path)


def test_the_index_is_written_last_and_whole(synth_dir, tmp_path, monkeypatch):
    """A crash as the index is renamed into place leaves no index and no temporary file; the
    next call builds the cache."""
    g = data.open_folder(synth_dir)
    replace = os.replace

    def crash_at_index(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        replace(src, dst)
    monkeypatch.setattr(data.os, "replace", crash_at_index)
    with pytest.raises(KeyboardInterrupt):
        data.load_crops(g, PP, cache_dir=tmp_path, workers=1)
    assert not list(tmp_path.glob("*.json")) and not _leftovers(tmp_path)
    monkeypatch.setattr(data.os, "replace", replace)
    crops, _ = data.load_crops(g, PP, cache_dir=tmp_path, workers=1)
    np.testing.assert_array_equal(crops, _reference(g))


def test_the_cache_does_not_remember_skip_bad(synth_dir, tmp_path):
    from test_data import _copy_folder
    folder = _copy_folder(synth_dir, tmp_path / "f", n=10)
    victim = sorted((folder / data.IMAGE_DIRS[0]).iterdir())[4]
    victim.write_bytes(b"not a jpeg")
    g = data.open_folder(folder)
    crops, kept = data.load_crops(g, PP, cache_dir=tmp_path / "c", workers=1, skip_bad=True)
    assert len(crops) == len(kept) == 9 and victim.name in kept.skipped[0]
    with pytest.raises(data.DataError, match=victim.name):  # as without the cache
        data.load_crops(g, PP, cache_dir=tmp_path / "c", workers=1)


def test_an_interrupted_build_resumes_and_leaves_nothing_running(synth_dir, tmp_path, small_parts):
    g = data.open_folder(synth_dir)

    def interrupt(done, n):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        data.load_crops(g, PP, cache_dir=tmp_path, workers=2, progress=interrupt)
    assert not multiprocessing.active_children() and not _leftovers(tmp_path)
    seen = []
    crops, _ = data.load_crops(g, PP, cache_dir=tmp_path, workers=2, progress=lambda d, n: seen.append(d))
    assert seen == [16, 24, 32, 40, 48]  # the part finished before the interruption was kept
    np.testing.assert_array_equal(crops, _reference(g))


def test_a_damaged_part_is_decoded_again(synth_dir, tmp_path, small_parts):
    g = data.open_folder(synth_dir)

    def interrupt(done, n):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        data.load_crops(g, PP, cache_dir=tmp_path, workers=1, progress=interrupt)
    part = next((tmp_path / f"{data.fingerprint(g, PP)}.parts").glob("*.npz"))
    part.write_bytes(part.read_bytes()[:-100])
    crops, _ = data.load_crops(g, PP, cache_dir=tmp_path, workers=1)
    np.testing.assert_array_equal(crops, _reference(g))


BUILD = """
import sys, time
from gzcore import data
data.PART = 8
def report(done, n):
    if done >= 16:
        print("ready", flush=True)
        time.sleep(60)
data.load_crops(data.open_folder(sys.argv[1]), data.Preprocess(size=32), cache_dir=sys.argv[2], workers=2,
                progress=report)
"""


@pytest.mark.slow
def test_a_build_killed_with_sigkill_resumes_and_its_leftovers_go(synth_dir, tmp_path, small_parts):
    """SIGKILL cleans nothing up: its decode workers end with it, and the next build removes the
    temporary files of processes no longer running and keeps the parts already written."""
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(synth_dir), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    workers = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        workers = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                   and _parent(p) == proc.pid]
        assert len(workers) == 2
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, workers))
    finally:
        proc.kill()
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)
    g = data.open_folder(synth_dir)
    key, host = data.fingerprint(g, PP), socket.gethostname()
    parts = tmp_path / f"{key}.parts"
    dead = [parts / f"000005.npz.tmp.{host}.{proc.pid}", tmp_path / f"{key}.npy.tmp.{host}.{proc.pid}"]
    live = tmp_path / f"{key}.npy.tmp.{host}.{os.getppid()}"  # a running process's: left alone
    for path in [*dead, live]:
        path.write_bytes(b"partial")
    seen = []
    crops, _ = data.load_crops(g, PP, cache_dir=tmp_path, workers=2, progress=lambda d, n: seen.append(d))
    assert seen[0] == 24 and not any(p.exists() for p in dead) and live.exists()
    np.testing.assert_array_equal(crops, _reference(g))


def _parent(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None


def test_a_share_starts_with_its_own_parts(synth_dir, tmp_path, small_parts):
    g = data.open_folder(synth_dir)
    key = data.fingerprint(g, PP)

    def stop(done, n):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        data.load_crops(g, PP, cache_dir=tmp_path, workers=1, progress=stop, share=(1, 3))
    assert sorted(p.name for p in (tmp_path / f"{key}.parts").glob("*.npz")) == ["000001.npz"]


SHARE = """
import sys
import numpy as np
from gzcore import data
data.PART = 8
folder, cache, rank, out = sys.argv[1:]
crops, _ = data.load_crops(data.open_folder(folder), data.Preprocess(size=32), cache_dir=cache, workers=1,
                           share=(int(rank), 2))
np.save(out, crops)
"""


@pytest.mark.slow
def test_two_processes_build_one_cache_together(synth_dir, tmp_path):
    """Two ranks build the same cache at once, each starting on its own parts: one assembles it,
    and both read the same crops."""
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", SHARE, str(synth_dir), str(cache), str(r),
                               str(tmp_path / f"{r}.npy")]) for r in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    expected = _reference(data.open_folder(synth_dir))
    for r in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{r}.npy"), expected)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == \
        sorted(f"{data.fingerprint(data.open_folder(synth_dir), PP)}{s}" for s in (".json", ".npy"))
    info = json.loads(next(cache.glob("*.json")).read_text())
    assert info["bad"] == []


def test_temporary_files_of_other_hosts_are_left_alone(synth_dir, tmp_path):
    """On a folder shared by several machines a process cannot tell whether another host's writer
    still runs: its temporary file stays."""
    g = data.open_folder(synth_dir)
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid that no process of this host has now
    other = tmp_path / f"{data.fingerprint(g, PP)}.npy.tmp.elsewhere.example.{ended.pid}"
    other.write_bytes(b"x")
    data.load_crops(g, PP, cache_dir=tmp_path, workers=1)
    assert other.exists()
