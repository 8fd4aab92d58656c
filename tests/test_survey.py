"""Prediction at survey scale: Parquet parts streamed in shards, resumable, a list of paths as input,
and the work split across torchrun's ranks (2 CPU processes, gloo)."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import gz

from gzcore import atomic, data, survey


@pytest.fixture
def model_path(tiny_model):
    """TINY trained one epoch (the session's tiny model)."""
    return tiny_model


def test_parquet_parts_hold_what_the_csv_holds_and_a_list_reads_like_the_folder(model_path, synth_dir, tmp_path):
    images = synth_dir / data.IMAGE_DIRS[0]
    assert gz("predict", "--data", images, "--checkpoint", model_path, "--out", tmp_path / "p.csv").returncode == 0
    r = gz("predict", "--data", images, "--checkpoint", model_path, "--out", tmp_path / "p.parquet",
           "--shard", 20, "--uncertainty", "--embedding")
    assert r.returncode == 0, r.stderr
    assert "rank 0/1: 48 galaxies in 3 new part(s)" in r.stdout
    csv, parts = pd.read_csv(tmp_path / "p.csv"), survey.read(tmp_path / "p.parquet")
    assert sorted(p.name for p in (tmp_path / "p.parquet").glob("part-*")) == \
        ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    np.testing.assert_array_equal(parts.GalaxyID, csv.GalaxyID)
    np.testing.assert_allclose(parts[csv.columns[1:]], csv[csv.columns[1:]], atol=2e-6)  # the CSV rounds to 1e-6
    assert {"Class1.1 spread", "embedding"} <= set(parts.columns)
    assert np.allclose(np.linalg.norm(np.stack(parts.embedding), axis=1), 1, atol=1e-5)

    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in sorted(images.iterdir())) + "\n")
    assert gz("predict", "--data", listing, "--checkpoint", model_path, "--out", tmp_path / "l.parquet",
              "--shard", 20, "--threads", 1).returncode == 0  # a thread count changes nothing but speed
    pd.testing.assert_frame_equal(survey.read(tmp_path / "l.parquet"), parts[csv.columns])


def test_a_killed_run_resumes_where_it_stopped_and_gives_the_same_result(model_path, synth_dir, tmp_path):
    out = tmp_path / "p.parquet"
    command = ("predict", "--data", synth_dir / data.IMAGE_DIRS[0], "--checkpoint", model_path,
               "--out", out, "--shard", 16)
    assert gz(*command).returncode == 0
    whole = survey.read(out)
    survey.part_path(out, 1).unlink()  # as if killed before its shard was written…
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    half = atomic.temporary(survey.part_path(out, 1)).with_suffix(f".{dead.stdout.strip()}")
    half.write_bytes(b"half a file")  # …while writing it (a process that no longer runs)
    r = gz(*command)
    assert r.returncode == 0 and "16 galaxies in 1 new part(s), 2 part(s) already done" in r.stdout
    assert not half.exists()  # its leftover removed
    pd.testing.assert_frame_equal(survey.read(out), whole)
    r = gz(*command[:-2], "--shard", 8)  # other options: another job, refused
    assert r.returncode == 2 and "holds parts of another job (its shard differ" in r.stderr


def test_a_bad_image_in_a_list_is_named_or_skipped(model_path, synth_dir, tmp_path):
    broken = tmp_path / "900001.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    listing = tmp_path / "list.txt"
    good = sorted((synth_dir / data.IMAGE_DIRS[0]).iterdir())[:5]
    listing.write_text("\n".join(map(str, [*good, broken])))
    r = gz("predict", "--data", listing, "--checkpoint", model_path, "--out", tmp_path / "a.parquet")
    assert r.returncode == 2 and "900001.jpg" in r.stderr
    r = gz("predict", "--data", listing, "--checkpoint", model_path, "--out", tmp_path / "b.parquet", "--skip-bad")
    assert r.returncode == 0 and "skipped:" in r.stderr and "900001.jpg" in r.stderr
    assert len(survey.read(tmp_path / "b.parquet")) == 5
    listing.write_text("notes.txt\n")
    r = gz("predict", "--data", listing, "--checkpoint", model_path, "--out", tmp_path / "c.parquet")
    assert r.returncode == 2 and "line 1" in r.stderr and "not an image file" in r.stderr


def test_every_image_skipped_is_an_error_and_leaves_no_result_a_rerun_would_keep(model_path, tmp_path):
    listing = tmp_path / "list.txt"
    (tmp_path / "900001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    listing.write_text("900001.jpg\n")
    out = tmp_path / "bad.parquet"
    r = gz("predict", "--data", listing, "--checkpoint", model_path, "--out", out, "--skip-bad")
    assert r.returncode == 2 and "none of its 1 image(s) could be read" in r.stderr and "900001.jpg" in r.stderr
    assert not list(out.glob("part-*")) and not (out / survey.JOB_FILE).exists()


@pytest.mark.slow
def test_torchrun_ranks_split_the_galaxies_and_agree_with_one_process(model_path, synth_dir, tmp_path):
    images = synth_dir / data.IMAGE_DIRS[0]
    assert gz("predict", "--data", images, "--checkpoint", model_path, "--out", tmp_path / "one.parquet",
              "--shard", 10).returncode == 0
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "gzcore.cli", "predict", "--data", str(images), "--checkpoint", str(model_path),
                        "--out", str(tmp_path / "two.parquet"), "--shard", "10"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2: 28 galaxies in 3 new part(s)" in r.stdout  # shards 0, 2, 4 (10 + 10 + 8)
    assert "rank 1/2: 20 galaxies in 2 new part(s)" in r.stdout  # shards 1, 3
    one, two = survey.read(tmp_path / "one.parquet"), survey.read(tmp_path / "two.parquet")
    np.testing.assert_array_equal(two.GalaxyID, one.GalaxyID)  # each galaxy once, in order
    np.testing.assert_allclose(two.iloc[:, 1:], one.iloc[:, 1:], atol=1e-5)
