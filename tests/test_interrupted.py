"""Runs that crash, writes that fail, outputs that cannot be written, inputs with nothing in them,
and checkpoints written by earlier versions: each ends in a good file or one clear error line."""
import contextlib
import errno
import io
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, TINY, gz, gz_process, tiny_cli

from gzcore import checkpoint, cli, data, ensemble, evaluate, models, synthetic, train, tree

EXAMPLES = ROOT / "tests" / "data" / "checkpoints"


class Crash(Exception):
    """What a test raises inside a run to end it as a crash would: no final save."""


def _crash_after(epochs: int):
    def callback(event, info):
        if event == "epoch" and info["epoch"] == epochs:
            raise Crash
    return callback


def _score(path, folder) -> float:
    """The validation RMSE of the weights stored at `path`, recomputed from the file."""
    model, ckpt = checkpoint.load(path)
    held = checkpoint.data_for(ckpt, folder)
    with train.torch_threads(TINY.threads):
        pred = evaluate.predict(model, held.crops, ckpt["input_size"], index=held.val_idx)
    return evaluate.rmse(pred, held.galaxies.labels[held.val_idx])


# ------------------------------------------------------------------ crashes and resume

@pytest.mark.slow
def test_a_resume_after_a_crash_that_never_improves_keeps_the_best_epoch_and_its_metrics(synth_dir, tmp_path):
    out, diverging = tmp_path / "m.pt", replace(TINY, epochs=4, lr=50.0)
    with pytest.raises(Crash):
        train.fit(synth_dir, replace(TINY, epochs=4), out=out, callback=_crash_after(1))
    with pytest.raises(Crash):  # resumed, then a worse epoch 2 is the last state a crash leaves
        train.fit(synth_dir, diverging, out=out, resume=True, callback=_crash_after(2))
    before = checkpoint.read(checkpoint.resume_path(out))["history"]
    assert [h["epoch"] for h in before] == [1, 2]  # the crashes lost no finished epoch
    result = train.fit(synth_dir, diverging, out=out, resume=True)
    scores = [h["val_rmse"] for h in result["history"]]
    assert scores[:2] == [h["val_rmse"] for h in before] and min(scores[1:]) > scores[0]
    ckpt = checkpoint.read(out)
    assert ckpt["metrics"]["val_rmse"] == result["val_rmse"] == scores[0]
    assert ckpt["metrics"]["epoch"] == result["best_epoch"] == 1  # the best epoch, named…
    assert _score(out, synth_dir) == pytest.approx(scores[0], abs=2e-7)  # …and its weights
    assert not checkpoint.resume_path(out).exists()  # a finished run leaves no resume state


@pytest.mark.slow
def test_a_new_run_never_resumes_an_older_runs_state(synth_dir, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(Crash):
        train.fit(synth_dir, replace(TINY, epochs=3), out=out, callback=_crash_after(1))
    assert checkpoint.resume_path(out).is_file()
    def crash_at_once(event, info):
        if event == "step":
            raise Crash
    with pytest.raises(Crash):  # a fresh run (no --resume) to the same file, killed at once
        train.fit(synth_dir, replace(TINY, epochs=3), out=out, callback=crash_at_once)
    assert not checkpoint.resume_path(out).exists()


KILLED_EPOCHS = 6


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_result_of_an_uninterrupted_run(synth_dir, tmp_path):
    """`gz train` killed by SIGKILL (no handler runs) while an epoch trains, then `--resume`d."""
    options = ["--data", str(synth_dir), *tiny_cli(KILLED_EPOCHS), "--no-tta"]
    whole, killed = tmp_path / "whole.pt", tmp_path / "killed.pt"
    assert gz_process("train", *options, "--out", whole).returncode == 0
    run = subprocess.Popen([sys.executable, "-m", "gzcore.cli", "train", *options, "--out", str(killed)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in run.stderr:  # 'epoch   2  train …' is printed once epoch 2's state is written
        if re.search(r"epoch +2 +train", line):
            os.kill(run.pid, signal.SIGKILL)  # now in epoch 3: a few ms into its first batch
            break
    run.wait()
    assert run.returncode == -signal.SIGKILL
    state = checkpoint.read(checkpoint.resume_path(killed))
    assert 2 <= len(state["history"]) < KILLED_EPOCHS  # killed mid-run, its finished epochs kept
    r = gz_process("train", *options, "--out", killed, "--resume")
    assert r.returncode == 0, r.stderr
    a, b = checkpoint.read(whole), checkpoint.read(killed)
    assert [h["epoch"] for h in b["history"]] == list(range(1, KILLED_EPOCHS + 1))
    # The resumed run restores the last finished epoch's weights, optimiser state and random streams
    # (batch order, augmentation, dropout) and replays the same fp32 steps on the same 2 threads, so
    # it matches to float rounding (measured: identical, every epoch). 1e-6 on a ~0.22 RMSE is far
    # below the epoch-to-epoch changes (~1e-2) and the 4e-4 to 8e-3 per epoch by which a resume from
    # the best checkpoint with reseeded streams (gzcore before the resume state) missed it.
    for h_a, h_b in zip(a["history"], b["history"]):
        assert h_b["val_rmse"] == pytest.approx(h_a["val_rmse"], abs=1e-6)
    assert b["metrics"]["val_rmse"] == pytest.approx(a["metrics"]["val_rmse"], abs=1e-6)
    assert b["metrics"]["epoch"] == a["metrics"]["epoch"]
    assert not checkpoint.resume_path(killed).exists()


# ------------------------------------------------------------------ writes that fail half-way

def _failing_after_half(write):
    """`write(obj, f)` that writes half its bytes, then fails as a full disk does."""
    def half(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        write(obj, buffer, *args, **kwargs)
        with contextlib.ExitStack() as stack:
            if isinstance(f, (str, os.PathLike)):
                f = stack.enter_context(open(f, "wb"))
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    return half


def test_a_checkpoint_write_that_fails_keeps_the_previous_file_and_syncs_before_replacing(tmp_path, monkeypatch):
    model = models.build("dieleman", n_outputs=37, width=2)
    out = tmp_path / "m.pt"
    checkpoint.save(out, model, preprocess=TINY.preprocess, input_size=32, metrics={"val_rmse": 0.1})
    with monkeypatch.context() as m:
        m.setattr(torch, "save", _failing_after_half(torch.save))
        with pytest.raises(OSError, match="No space"):
            checkpoint.save(out, model, preprocess=TINY.preprocess, input_size=32, metrics={"val_rmse": 0.2})
    assert checkpoint.read(out)["metrics"]["val_rmse"] == 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no half-written file left behind
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))
    checkpoint.save(out, model, preprocess=TINY.preprocess, input_size=32, metrics={"val_rmse": 0.3})
    assert calls[:2] == ["fsync", "replace"]  # the bytes are on disk before the name points at them
    assert checkpoint.read(out)["metrics"]["val_rmse"] == 0.3


def test_a_predictions_write_that_fails_keeps_the_previous_csv(tmp_path, monkeypatch):
    out = tmp_path / "sub.csv"
    pred = tree.to_weighted(np.full((3, len(tree.COLUMNS)), 0.5))
    evaluate.write_predictions(out, [1, 2, 3], pred)
    before = out.read_bytes()
    monkeypatch.setattr(pd.DataFrame, "to_csv", _failing_after_half(pd.DataFrame.to_csv))
    with pytest.raises(OSError, match="No space"):
        evaluate.write_predictions(out, [4, 5, 6], pred)
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["sub.csv"]


# ------------------------------------------------------------------ outputs that cannot be written

def _no_work(*args, **kwargs):
    raise AssertionError("work started before the output was checked")


UNWRITABLE = {  # command line (without --out) -> the output's name
    "train": (["train", "--data", "d"], "m.pt"), "distill": (["distill", "t.pt", "--data", "d"], "m.pt"),
    "ensemble": (["ensemble", "a.pt", "b.pt", "--data", "d"], "e.pt"),
    "shrink": (["shrink", "a.pt", "--data", "d"], "s.pt"), "evaluate": (["evaluate", "--data", "d"], "t.csv"),
    "predict": (["predict", "--data", "d"], "s.csv"), "predict-parquet": (["predict", "--data", "d"], "s.parquet"),
    "synth": (["synth"], "universe")}


@pytest.mark.parametrize("command", UNWRITABLE)
def test_an_output_that_cannot_be_written_fails_before_any_work(command, tmp_path, monkeypatch, capsys):
    for target, name in ((train, "fit"), (ensemble, "combine"), (ensemble, "shrink"),
                         (checkpoint, "load"), (checkpoint, "read"), (synthetic, "generate")):
        monkeypatch.setattr(target, name, _no_work)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    argv, name = UNWRITABLE[command]
    out = blocker / name
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gz {argv[0]}: error: {out}: cannot write there ({blocker} is a file")
    assert len(err.strip().splitlines()) == 1


def test_an_output_folder_or_a_full_disk_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "fit", _no_work)
    assert cli.main(["train", "--data", "d", "--out", str(tmp_path)]) == 2
    assert f"{tmp_path}: cannot write there (a folder, not a file)" in capsys.readouterr().err
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(["train", "--data", "d", "--out", str(tmp_path / "m.pt")]) == 2
    assert capsys.readouterr().err == f"gz train: error: {tmp_path / 'm.pt'}: cannot write there (No space " \
                                      f"left on device: {tmp_path}); choose another --out\n"
    assert list(tmp_path.iterdir()) == []  # the probe left nothing behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder, whatever its mode")
def test_a_folder_without_write_permission_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "fit", _no_work)
    tmp_path.chmod(0o555)
    try:
        assert cli.main(["train", "--data", "d", "--out", str(tmp_path / "m.pt")]) == 2
    finally:
        tmp_path.chmod(0o755)
    assert "Permission denied" in capsys.readouterr().err


def test_gz_train_into_a_file_path_fails_at_once(synth_dir, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    started = time.time()
    r = gz("train", "--data", synth_dir, *tiny_cli(), "--out", tmp_path / "file.txt" / "m.pt")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "epoch" not in r.stderr
    assert r.stderr.strip() == f"gz train: error: {tmp_path / 'file.txt' / 'm.pt'}: cannot write there " \
                               f"({tmp_path / 'file.txt'} is a file, not a folder); choose another --out"
    assert time.time() - started < 30


# ------------------------------------------------------------------ inputs with nothing in them

def _one_error_line(r, *names, status=2):
    assert r.returncode == status and "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if "error: " in line]
    assert len(lines) == 1 and all(str(n) in lines[0] for n in names), r.stderr
    return lines[0]


def test_every_image_skipped_is_an_error(tiny_model, synth_dir, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("1.jpg", "2.jpg", "3.png"):
        (corrupt / name).write_bytes(b"not an image")
    r = gz("predict", "--data", corrupt, "--skip-bad", "--checkpoint", tiny_model, "--out", tmp_path / "s.csv")
    assert "all 3 skipped" in _one_error_line(r, corrupt)
    assert not (tmp_path / "s.csv").exists()
    kaggle = tmp_path / "kaggle"
    (kaggle / data.IMAGE_DIRS[0]).mkdir(parents=True)
    (kaggle / data.LABELS_FILE).write_bytes((synth_dir / data.LABELS_FILE).read_bytes())
    for p in (synth_dir / data.IMAGE_DIRS[0]).iterdir():
        (kaggle / data.IMAGE_DIRS[0] / p.name).write_bytes(b"not an image")
    r = gz("train", "--data", kaggle, "--skip-bad", *tiny_cli(1), "--out", tmp_path / "m.pt")
    assert "no galaxies to train on" in _one_error_line(r, kaggle)
    r = gz("evaluate", "--data", kaggle, "--skip-bad", "--checkpoint", tiny_model)
    assert "all 48 skipped" in _one_error_line(r, kaggle)


def test_empty_folders_are_errors(tiny_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_error_line(gz("train", "--data", empty, *tiny_cli(1), "--out", tmp_path / "m.pt"), empty)
    (empty / data.IMAGE_DIRS[1]).mkdir()  # the Kaggle test images' folder, with none in it
    r = gz("predict", "--data", empty, "--checkpoint", tiny_model, "--out", tmp_path / "s.csv")
    assert "no images" in _one_error_line(r, empty)


def test_a_zero_byte_checkpoint_is_an_error(synth_dir, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for command in (["predict", "--data", synth_dir, "--checkpoint", empty, "--out", tmp_path / "s.csv"],
                    ["evaluate", "--data", synth_dir, "--checkpoint", empty],
                    ["train", "--data", synth_dir, "--init", empty, "--out", tmp_path / "m.pt"]):
        assert "0 bytes" in _one_error_line(gz(*command), empty)


def test_a_labels_csv_with_only_its_header_is_an_error(synth_dir, tmp_path):
    folder = tmp_path / "universe"
    (folder / data.IMAGE_DIRS[0]).mkdir(parents=True)
    for p in sorted((synth_dir / data.IMAGE_DIRS[0]).iterdir())[:4]:
        (folder / data.IMAGE_DIRS[0] / p.name).write_bytes(p.read_bytes())
    header = (synth_dir / data.LABELS_FILE).read_text().splitlines()[0]
    (folder / data.LABELS_FILE).write_text(header + "\n")
    _one_error_line(gz("train", "--data", folder, *tiny_cli(1), "--out", tmp_path / "m.pt"), folder)
    (tmp_path / "oh.csv").write_text("id,oh\n")
    _one_error_line(gz("train", "--data", synth_dir, "--labels", tmp_path / "oh.csv", "--target", "oh",
                       *tiny_cli(1), "--out", tmp_path / "m.pt"), "oh.csv")


# ------------------------------------------------------------------ checkpoints of earlier versions

def test_checkpoints_of_every_format_version_load_and_predict_as_they_did():
    """Written by gzcore 0.1.0 (commit 6b01546): format 1 by `gz shrink --half`, format 2 by `gz shrink
    --int8`, of one dieleman of width 2 (`gz train --width 2 --epochs 12 --lr 5e-3 --input-size 32
    --crop centre` on `gz synth --n 96 --seed 3`); beside them 6 of its held-out crops (crops.npy)
    and what each file predicted for them with 8-view TTA (format-N.npy)."""
    crops = np.load(EXAMPLES / "crops.npy")
    for version in range(1, checkpoint.FORMAT_VERSION + 1):
        path = EXAMPLES / f"format-{version}.pt"
        assert torch.load(path, weights_only=True)["format_version"] == version
        model, ckpt = checkpoint.load(path)
        with train.torch_threads(TINY.threads):
            pred = evaluate.predict(model, crops, ckpt["input_size"], tta=True)
        np.testing.assert_allclose(pred, np.load(EXAMPLES / f"format-{version}.npy"), atol=1e-5)


def test_a_checkpoint_of_a_newer_version_or_of_another_model_is_a_clear_error(tmp_path, capsys):
    raw = torch.load(EXAMPLES / "format-2.pt", weights_only=True)
    for name, change, message in (
            ("newer.pt", {"format_version": checkpoint.FORMAT_VERSION + 1, "gzcore_version": "9.0"},
             "written by a newer gzcore (9.0, format 3); this is"),
            ("other.pt", {"model_config": {**raw["model_config"], "width": 4}}, "weights do not fit the 'dieleman'")):
        torch.save({**raw, **change}, tmp_path / name)
        assert cli.main(["predict", "--data", str(tmp_path), "--checkpoint", str(tmp_path / name),
                         "--out", str(tmp_path / "s.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"gz predict: error: {tmp_path / name}: ") and message in err, err
