"""Issue 27, the library and the command line: outputs that are no regular file, ranks without a
shard, decode workers outliving a SIGKILL, edited checkpoints, work overwritten silently, what
--skip-bad skipped, input read otherwise than given, and messages that name nothing
(`docs/RELIABILITY.md`, "Round 3")."""
import errno
import io
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, tiny_cli
from PIL import Image
from test_app import app_with, show, texts

from gzcore import atomic, checkpoint, cli, data, survey, train, upload
from gzcore.dashboard.navigation import BROWSE, YOUR_GALAXY

TINY_CKPT = ROOT / "tests" / "data" / "checkpoints" / "format-1.pt"  # dieleman of width 2: fast to run


def _error(capsys) -> str:
    """The one error line `gz` printed (no traceback; progress bars and warnings aside)."""
    err = capsys.readouterr().err
    found = [line for line in err.splitlines() if line.startswith("gz ") and ": error: " in line]
    assert len(found) == 1 and "Traceback" not in err, err
    return found[0]


# ------------------------------------------------------------------ --out that is no regular file

@pytest.fixture
def specials(tmp_path):
    """A named pipe, a link to /dev/null (the real one is never written) and a folder."""
    fifo, link, folder = tmp_path / "fifo", tmp_path / "null-link", tmp_path / "folder.csv"
    os.mkfifo(fifo)
    link.symlink_to(os.devnull)
    folder.mkdir()
    return {"fifo": fifo, "link": link, "folder": folder}


def _unchanged(specials):
    assert stat.S_ISFIFO(os.lstat(specials["fifo"]).st_mode)
    assert specials["link"].is_symlink() and os.readlink(specials["link"]) == os.devnull
    assert specials["folder"].is_dir()
    assert not [p for p in specials["fifo"].parent.iterdir() if ".tmp." in p.name]


@pytest.mark.parametrize("which", ["fifo", "link", "folder"])
def test_an_atomic_write_never_replaces_what_is_not_a_regular_file(specials, which):
    with pytest.raises(OSError) as e:
        with atomic.write(specials[which]) as f:
            f.write(b"x")
    assert e.value.filename == str(specials[which]) and "not a regular file" in str(e.value)
    _unchanged(specials)


@pytest.mark.parametrize("which,kind", [("fifo", "named pipe"), ("link", "link to a device")])
def test_an_out_naming_a_device_or_a_pipe_is_refused_before_any_work(specials, which, kind, synth_dir,
                                                                       monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("work started"))
    out = str(specials[which])
    for argv in (["predict", "--data", str(synth_dir), "--out", out],
                 ["evaluate", "--data", str(synth_dir), "--out", out],
                 ["train", "--data", str(synth_dir), "--out", out]):
        assert cli.main(argv) == 2
        line = _error(capsys)
        assert line == f"gz {argv[0]}: error: {out}: is a {kind}{' (FIFO)' if which == 'fifo' else ''}, " \
                       f"not a regular file; give a file path"
    _unchanged(specials)


# ------------------------------------------------------------------ Parquet and torchrun

def _torchrun_predict(*args):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "gzcore.cli", "predict", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_a_rank_without_a_shard_contributes_nothing_and_the_job_succeeds(synth_dir, tmp_path):
    listing = tmp_path / "three.txt"
    listing.write_text("\n".join(map(str, sorted((synth_dir / data.IMAGE_DIRS[0]).iterdir())[:3])))
    out = tmp_path / "p.parquet"
    r = _torchrun_predict("--data", listing, "--checkpoint", TINY_CKPT, "--no-tta", "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2: 3 galaxies in 1 new part(s)" in r.stdout
    assert "rank 1/2: 0 galaxies in 0 new part(s)" in r.stdout  # one shard, two ranks
    assert len(survey.read(out)) == 3


def _children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers end with their parent on Linux")
def test_a_sigkill_of_a_parquet_prediction_leaves_no_decode_worker_running(synth_dir, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    images = sorted((synth_dir / data.IMAGE_DIRS[0]).iterdir())
    for k in range(1500):  # a few seconds of decoding on 2 workers
        os.link(images[k % len(images)], folder / f"{k + 1}.jpg")
    run = subprocess.Popen([sys.executable, "-m", "gzcore.cli", "predict", "--data", str(folder), "--checkpoint",
                            str(TINY_CKPT), "--out", str(tmp_path / "p.parquet"), "--shard", "256"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and not workers and run.poll() is None:
        workers = _children(run.pid)
        time.sleep(0.05)
    assert workers, "the run ended before its decode workers were seen"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"decode workers {survivors} outlived their parent"


# ------------------------------------------------------------------ edited checkpoint configs

def _edited(tmp_path, edit, name="edited.pt") -> Path:
    ckpt = torch.load(TINY_CKPT, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


EDITS = {  # what was edited: (the edit, what the error names)
    "an unknown backbone name": (lambda c: c["model_config"].update(name="resnet9000"),
                                 "model name 'resnet9000' is not one gzcore builds"),
    "an extra argument": (lambda c: c["model_config"].update(depth=3), "model_config has an unknown key 'depth'"),
    "a missing preprocessing key": (lambda c: c["preprocess"].pop("size"), "its preprocess has no 'size'"),
    "an unknown preprocessing key": (lambda c: c["preprocess"].update(zoom=2), "unknown key 'zoom'"),
    "no preprocessing": (lambda c: c.pop("preprocess"), "it has no 'preprocess'"),
    "no input size": (lambda c: c.pop("input_size"), "it has no 'input_size'"),
    "an absurd width": (lambda c: c["model_config"].update(width=100000), "at width 100000 would have"),
    "a member of an ensemble with an unknown name": (
        lambda c: c.update(model_config={"name": "ensemble", "head": "tree", "members": [
            c["model_config"], {**c["model_config"], "name": "nope"}]}), "model_config.members[1]: model name 'nope'"),
    "an unknown crop": (lambda c: c["preprocess"].update(crop="zoomed"), "crop 'zoomed' is not one gzcore makes"),
    "an absurd crop size": (lambda c: c["preprocess"].update(size=100000), "size 100000 is not a crop side"),
    "an input larger than the crop": (lambda c: c.update(input_size=500), "input_size 500 is not a side"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_checkpoint_config_is_one_error_naming_the_file_and_the_key(case, tmp_path, synth_dir,
                                                                               capsys):
    edit, named = EDITS[case]
    path = _edited(tmp_path, edit)
    began = time.perf_counter()
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(path)
    assert time.perf_counter() - began < 5  # refused before anything is allocated (width 100000: 23 TB)
    assert str(e.value).startswith(f"{path}: ") and named in str(e.value)
    assert cli.main(["evaluate", "--data", str(synth_dir), "--checkpoint", str(path), "--no-tta"]) == 2
    assert _error(capsys) == f"gz evaluate: error: {e.value}"


def test_an_absurd_width_is_refused_before_training_starts(synth_dir, tmp_path):
    with pytest.raises(ValueError, match=r"at width 100000 would have [\d,]+ parameters .* choose a smaller width"):
        train.TrainConfig(width=100000)
    with pytest.raises(SystemExit, match="gz train: error: model 'dieleman' at width 100000"):
        cli.main(["train", "--data", str(synth_dir), "--width", "100000", "--out", str(tmp_path / "m.pt")])
    assert not (tmp_path / "m.pt").exists()


UNREADABLE = {  # file bytes: what torch.load raised before (the message of gzcore ≤ issue 27)
    "a pickle of Python objects": "weights_only set to False",  # torch's message ran over lines and was cut
    "a damaged pickle": "KeyError: 101",
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_checkpoint_load_errors_are_whole_sentences_naming_the_file(case, tmp_path):
    path = tmp_path / "broken.pt"
    if case == "a pickle of Python objects":
        torch.save({"format": checkpoint.FORMAT, "payload": Path("x")}, path)
    else:
        path.write_bytes(b"\x80\x02h\x65.")  # BINGET 101 from an empty memo
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.read(path)
    message = str(e.value)
    assert message.startswith(f"{path}: not a readable gzcore checkpoint: ") and "\n" not in message
    if case == "a pickle of Python objects":
        assert "weights_only" not in message and "pathlib" in message and message.endswith("could run code")
    else:
        assert message.endswith("was not written by gzcore (KeyError: 101)")


# ------------------------------------------------------------------ work overwritten silently

def test_training_onto_an_existing_checkpoint_needs_resume_or_overwrite(tmp_path, synth_dir, monkeypatch,
                                                                       capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"an earlier run's checkpoint")
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("work started"))
    for command in (["train", "--data", str(synth_dir)], ["distill", str(TINY_CKPT), "--data", str(synth_dir)]):
        assert cli.main([*command, "--out", str(out)]) == 2
        assert _error(capsys) == (f"gz {command[0]}: error: {out}: a checkpoint is there already; pass --resume "
                                  f"to continue its run, or --overwrite to replace it")
    with pytest.raises(SystemExit, match="choose one"):
        cli.main(["train", "--data", str(synth_dir), "--resume", "--overwrite", "--out", str(out)])
    assert out.read_bytes() == b"an earlier run's checkpoint"
    assert not atomic.lock_path(out).exists()  # the lock goes with the command


def test_overwrite_replaces_an_existing_checkpoint(tmp_path, synth_dir, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"an earlier run's checkpoint")
    assert cli.main(["train", "--data", str(synth_dir), *tiny_cli(1), "--no-tta", "--overwrite",
                     "--out", str(out)]) == 0
    assert checkpoint.read(out)["metrics"]["epochs"] == 1
    assert not atomic.lock_path(out).exists()


HOLDER = """
import sys, time
from gzcore import atomic
with atomic.held(sys.argv[1], "a training run"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_onto_a_locked_output_refuses_naming_the_holder(tmp_path, synth_dir, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("work started"))
        for extra in ([], ["--overwrite"], ["--resume"]):
            assert cli.main(["train", "--data", str(synth_dir), *extra, "--out", str(out)]) == 2
            assert _error(capsys) == (f"gz train: error: {out}: a training run in another process (pid "
                                      f"{holder.pid}) is writing it; wait for that to end, or write elsewhere")
        with pytest.raises(atomic.Busy, match=f"pid {holder.pid}"):  # the library's own runs too
            with atomic.held(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with atomic.held(out):  # a holder killed with SIGKILL holds nothing
        assert atomic.lock_path(out).read_text() == str(os.getpid())
    assert not atomic.lock_path(out).exists()


@pytest.mark.slow
def test_two_gz_train_runs_onto_one_out_never_both_succeed(tmp_path, synth_dir):
    out = tmp_path / "m.pt"
    command = [sys.executable, "-m", "gzcore.cli", "train", "--data", str(synth_dir), "--minutes", "0.5",
               "--batch-size", "16", "--precision", "fp32", "--threads", "1", "--no-tta", "--out", str(out)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not atomic.lock_path(out).is_file() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run([*command, "--overwrite"], capture_output=True, text=True, timeout=300)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    assert second.returncode == 2 and f"{out}: a training run in another process (pid {first.pid})" in second.stderr
    assert f"checkpoint: {out}" in stdout and checkpoint.read(out)["metrics"]["seconds"] >= 25  # the first run's, whole


# ------------------------------------------------------------------ what --skip-bad skipped

@pytest.fixture
def one_bad_image(synth_dir, tmp_path):
    folder = shutil.copytree(synth_dir, tmp_path / "universe")
    bad = sorted((folder / data.IMAGE_DIRS[0]).iterdir())[0]
    bad.write_bytes(b"not an image")
    return folder, bad


def test_evaluate_lists_what_skip_bad_skipped(one_bad_image, capsys):
    folder, bad = one_bad_image
    assert cli.main(["evaluate", "--data", str(folder), "--checkpoint", str(TINY_CKPT), "--no-tta", "--all",
                     "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 bad input(s):" in out and str(bad) in out
    assert cli.main(["predict", "--data", str(folder), "--checkpoint", str(TINY_CKPT), "--no-tta", "--skip-bad",
                     "--out", str(folder / "p.csv")]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 bad input(s):" in out and str(bad) in out


def test_the_skipped_list_names_each_input_up_to_twenty(capsys):
    cli._skipped([f"{k}.jpg: broken" for k in range(25)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "skipped 25 bad input(s):" and lines[1].strip() == "0.jpg: broken"
    assert lines[20].strip() == "19.jpg: broken" and lines[21].strip() == "… and 5 more"


# ------------------------------------------------------------------ input read otherwise than given

@pytest.fixture
def odd_images(synth_dir, tmp_path):
    """A folder of 4 images: two as Galaxy Zoo's, one 10x10 px, one 600x100 px."""
    folder = tmp_path / "odd"
    folder.mkdir()
    images = sorted((synth_dir / data.IMAGE_DIRS[0]).iterdir())
    shutil.copy(images[0], folder / "1.jpg")
    shutil.copy(images[1], folder / "2.jpg")
    Image.new("RGB", (10, 10), (200, 180, 160)).save(folder / "3.png")
    Image.new("RGB", (600, 100), (200, 180, 160)).save(folder / "4.png")
    return folder


def test_tiny_and_elongated_images_are_named_in_one_warning_at_every_load(odd_images, tmp_path):
    pp = data.Preprocess(size=32)
    for load in ("building the cache", "from the cache"):
        with pytest.warns(data.InputWarning) as caught:
            crops, _ = data.load_crops(data.images_of(odd_images), pp, cache_dir=tmp_path / "cache", workers=1)
        assert len(crops) == 4 and len(caught) == 1, load
        message = str(caught[0].message)
        assert message.startswith("2 image(s) too small or too elongated for the crop")
        assert f"{odd_images / '3.png'} (10x10 px: its crop enlarged" in message
        assert f"{odd_images / '4.png'} (6.0 times longer than wide" in message
        assert "1.jpg" not in message


def test_gz_predict_warns_of_stretched_images_in_csv_and_parquet(odd_images, capsys):
    for out in ("p.csv", "p.parquet"):
        assert cli.main(["predict", "--data", str(odd_images), "--checkpoint", str(TINY_CKPT), "--no-tta",
                         "--out", str(odd_images.parent / out)]) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
        assert len(warned) == 1 and warned[0].startswith("gz predict: warning: 2 image(s) too small"), warned
        assert "3.png" in warned[0] and "4.png" in warned[0]


def test_one_tiny_or_elongated_image_is_warned_of_as_a_folders_are(odd_images, capsys):
    """`gz predict` on one image, and the "Your galaxy" upload, give the folder's warning (`data.distortion`)."""
    pp = checkpoint.preprocess_of(checkpoint.read(TINY_CKPT))
    for name, how in (("3.png", "(10x10 px: its crop enlarged"), ("4.png", "(6.0 times longer than wide")):
        image = odd_images / name
        assert cli.main(["predict", "--data", str(image), "--checkpoint", str(TINY_CKPT), "--no-tta",
                         "--out", str(odd_images.parent / "one.csv")]) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if "too small or too elongated" in line]
        assert len(warned) == 1 and warned[0].startswith("gz predict: warning: 1 image(s) too small"), warned
        assert f"{image} {how}" in warned[0]
        assert upload.read(image, pp).stretched() == warned[0].removeprefix("gz predict: warning: ")
    assert cli.main(["predict", "--data", str(odd_images / "1.jpg"), "--checkpoint", str(TINY_CKPT), "--no-tta",
                     "--out", str(odd_images.parent / "one.csv")]) == 0
    assert "too small or too elongated" not in capsys.readouterr().err
    assert upload.read(odd_images / "1.jpg", pp).stretched() is None


def test_your_galaxy_warns_of_a_tiny_or_elongated_upload(dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), YOUR_GALAXY)
    strip = io.BytesIO()
    Image.new("RGB", (600, 100), (200, 180, 160)).save(strip, "PNG")
    at.file_uploader(key="your_galaxy_file").set_value(("strip.png", strip.getvalue(), "image/png")).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "1 image(s) too small or too elongated for the crop" in texts(at.warning)
    assert "strip.png (6.0 times longer than wide: only its central square is used)" in texts(at.warning)


def test_the_dashboard_names_its_folders_stretched_images(odd_images, dashboard_env, monkeypatch):
    at = show(app_with({**dashboard_env, "GZ_DATA": str(odd_images)}, monkeypatch), BROWSE)
    assert not at.exception and not at.error, [e.message for e in at.exception] + [texts(at.error)]
    assert "2 image(s) too small or too elongated for the crop" in texts(at.warning)


@pytest.fixture
def without_class62(synth_dir, tmp_path):
    folder = shutil.copytree(synth_dir, tmp_path / "universe")
    labels = pd.read_csv(folder / data.LABELS_FILE)
    labels.drop(columns=["Class6.2"]).to_csv(folder / data.LABELS_FILE, index=False)
    return folder


def test_a_labels_csv_missing_an_answer_column_is_read_as_partial_labels_with_a_warning(without_class62):
    csv = without_class62 / data.LABELS_FILE
    with pytest.warns(data.InputWarning, match=r"1 of the 37 answer columns are missing \(Class6\.2\); it is "
                                               r"read as partial labels"):
        ids, labels = data.read_labels(csv)
    assert np.isnan(labels[:, data.tree.COLUMN_INDEX["Class6.2"]]).all()


def test_evaluate_prints_no_rmse_for_a_question_no_galaxy_has_labels_of(without_class62, capsys):
    assert cli.main(["evaluate", "--data", str(without_class62), "--checkpoint", str(TINY_CKPT), "--no-tta",
                     "--all"]) == 0
    captured = capsys.readouterr()
    assert f"gz evaluate: warning: {without_class62 / data.LABELS_FILE}: 1 of the 37 answer columns are " \
           f"missing (Class6.2)" in captured.err
    q6 = next(line for line in captured.out.splitlines() if line.startswith("Q6 odd"))
    assert q6.split()[2:] == ["—", "0"]  # no RMSE beside 0 galaxies
    assert "no galaxy has the labels of Q6 odd" in captured.out


def test_evaluate_says_no_galaxy_has_the_labels_rather_than_scoring_none(synth_dir, tmp_path, capsys):
    folder = shutil.copytree(synth_dir, tmp_path / "universe")
    labels = pd.read_csv(folder / data.LABELS_FILE)[["GalaxyID", "Class6.1", "Class6.2"]]
    labels[["Class6.1", "Class6.2"]] = np.nan
    labels.to_csv(folder / data.LABELS_FILE, index=False)
    assert cli.main(["evaluate", "--data", str(folder), "--checkpoint", str(TINY_CKPT), "--no-tta"]) == 2
    assert _error(capsys).startswith(f"gz evaluate: error: {folder / data.LABELS_FILE}: no galaxy of the "
                                     f"validation split (")


# ------------------------------------------------------------------ messages that mislead or name nothing

def test_predict_on_a_missing_folder_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "MISSING"
    for out in ("x.csv", "x.parquet"):
        assert cli.main(["predict", "--data", str(missing), "--out", str(tmp_path / out)]) == 2
        line = _error(capsys)
        assert line == f"gz predict: error: {missing}: no such folder, image or list of images"
        assert "list of images:" not in line


def test_an_error_of_the_write_itself_names_the_file(tmp_path):
    out = tmp_path / "p.csv"
    with pytest.raises(OSError) as e:
        with atomic.write(out) as f:
            f.write(b"x")
            raise OSError(errno.EFBIG, "File too large")  # as a write past `ulimit -f` fails
    assert e.value.filename == str(out) and e.value.errno == errno.EFBIG
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_file_too_large_names_the_file(synth_dir, tmp_path):
    out = tmp_path / "p.csv"
    command = [sys.executable, "-m", "gzcore.cli", "predict", "--data", str(synth_dir), "--checkpoint",
               str(TINY_CKPT), "--no-tta", "--out"]
    assert subprocess.run([*command, str(tmp_path / "warm.csv")], capture_output=True).returncode == 0  # the cache
    limit = 4096  # the CSV of 48 galaxies is ~15 kB

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    r = subprocess.run([*command, str(out)], capture_output=True, text=True, preexec_fn=small_files, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == f"gz predict: error: {out}: cannot write it (File too large)"
    assert not out.exists()
