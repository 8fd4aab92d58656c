"""Distillation: a student learns a teacher's answers on every image, never on the teacher's
held-out galaxies, and ships as an ordinary (smaller) checkpoint."""
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import TINY, gz, tiny_cli

from gzcore import checkpoint, data, distill, evaluate, train


@pytest.fixture
def teacher(tiny_model):
    """TINY trained one epoch (the session's tiny model)."""
    return tiny_model


@pytest.fixture(scope="module")
def folders(synth_dir, tmp_path_factory):
    """synth_dir's labelled galaxies, plus 4 of its images without a row, plus a plain folder of 6
    other images (ids 900000…): 58 images, 48 with crowd answers."""
    base = tmp_path_factory.mktemp("folders")
    labelled = shutil.copytree(synth_dir, base / "labelled")
    images = sorted((labelled / data.IMAGE_DIRS[0]).iterdir())
    for k, path in enumerate(images[:4]):
        shutil.copy(path, path.with_name(f"{800000 + k}.jpg"))
    plain = base / "plain"
    plain.mkdir()
    for k, path in enumerate(images[4:10]):
        shutil.copy(path, plain / f"{900000 + k}.jpg")
    return [labelled, plain]


def test_every_image_counts_labelled_or_not(folders, synth_dir):
    galaxies = distill.open_every_image(folders)
    assert len(galaxies) == 48 + 4 + 6
    crowd = data.open_folder(synth_dir)
    known = ~np.isnan(galaxies.labels).all(axis=1)
    assert sorted(galaxies.ids[known]) == sorted(crowd.ids)
    assert set(galaxies.ids[~known]) == {800000, 800001, 800002, 800003, *range(900000, 900006)}
    row = {int(i): k for k, i in enumerate(galaxies.ids)}
    np.testing.assert_array_equal(galaxies.labels[[row[int(i)] for i in crowd.ids]], crowd.labels)


def test_soft_labels_mix_the_crowd_in_where_it_is_known():
    crowd = np.array([[0.2, np.nan], [np.nan, np.nan]], np.float32)
    teacher = np.array([[0.6, 0.3], [0.5, 0.1]], np.float32)
    np.testing.assert_allclose(distill.soft_labels(crowd, teacher, 0.25), [[0.5, 0.3], [0.5, 0.1]])
    np.testing.assert_allclose(distill.soft_labels(crowd, teacher, 1.0), [[0.2, 0.3], [0.5, 0.1]])


def test_the_student_learns_the_teachers_answers_on_the_teachers_split(teacher, folders, tmp_path):
    cfg = train.with_teacher(replace(TINY, teacher=str(teacher), crowd_weight=0.0, val_fraction=0.5, seed=3))
    taught = checkpoint.read(teacher)
    assert (cfg.val_fraction, cfg.seed, cfg.preprocess, cfg.input_size) == \
        (TINY.val_fraction, TINY.seed, checkpoint.preprocess_of(taught), taught["input_size"])
    prep = train.prepare(folders, cfg, cache_dir=tmp_path)
    model, _ = checkpoint.load(teacher)
    # the training rows learn the teacher's TTA answers (crowd weight 0), unlabelled rows included
    answers = evaluate.predict(model, prep.crops, cfg.input_size, tta=True, index=prep.train_idx)
    np.testing.assert_allclose(prep.galaxies.labels[prep.train_idx], answers, atol=1e-6)
    # the held-out rows are exactly the teacher's held-out galaxies, and keep the crowd's answers
    by_teacher = checkpoint.data_for(taught, folders[0], cache_dir=tmp_path)
    held_by_teacher = set(by_teacher.galaxies.ids[by_teacher.val_idx])
    held = prep.galaxies.ids[prep.val_idx]
    assert held_by_teacher <= set(held) and not set(prep.galaxies.ids[prep.train_idx]) & held_by_teacher
    crowd = data.open_folder(folders[0])
    row = {int(i): k for k, i in enumerate(crowd.ids)}
    labelled_held = [k for k in prep.val_idx if int(prep.galaxies.ids[k]) in row]
    np.testing.assert_array_equal(prep.galaxies.labels[labelled_held],
                                  crowd.labels[[row[int(prep.galaxies.ids[k])] for k in labelled_held]])
    # the teacher's answers are cached: a second pass reads them (the model is not run again)
    cached = list(tmp_path.glob("teacher-*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.full_like(answers, 0.5))
    again = train.prepare(folders, cfg, cache_dir=tmp_path)
    assert np.all(again.galaxies.labels[again.train_idx] == 0.5)


@pytest.mark.slow
def test_gz_distill_then_gz_shrink(teacher, folders, tmp_path):
    student, small = tmp_path / "student.pt", tmp_path / "small.pt"
    r = gz("distill", teacher, *[a for f in folders for a in ("--data", f)], *tiny_cli(1),
           "--model", "xresnet18", "--width", "8", "--out", student)
    assert r.returncode == 0, r.stderr
    assert "distilled from" in r.stdout and "teacher's answers" in r.stderr
    ckpt = checkpoint.read(student)
    assert ckpt["model_config"]["name"] == "xresnet18" and ckpt["train_config"]["teacher"] == str(teacher)
    assert ckpt["metrics"]["train_images"] + ckpt["metrics"]["val_images"] == 58
    assert checkpoint.split_of(ckpt) == checkpoint.split_of(checkpoint.read(teacher))

    r = gz("shrink", student, "--data", folders[0], "--out", small)
    assert r.returncode == 0, r.stderr
    assert small.stat().st_size < student.stat().st_size / 2  # no optimizer state, float16 weights
    shrunk = checkpoint.read(small)
    model, _ = checkpoint.load(small)
    held = checkpoint.data_for(shrunk, folders[0])
    truth = held.galaxies.labels[held.val_idx]
    for tta, key in ((False, "val_rmse"), (True, "val_rmse_tta")):  # the stored weights' own scores
        pred = evaluate.predict(model, held.crops, shrunk["input_size"], tta=tta, index=held.val_idx)
        assert shrunk["metrics"][key] == pytest.approx(evaluate.rmse(pred, truth), abs=1e-7)
    assert shrunk["metrics"]["epochs"] == 1 and "optimizer" not in shrunk
    assert shrunk["train_config"]["teacher"] == str(teacher)


def test_distill_refuses_what_would_leave_the_teachers_crops_or_split(teacher, synth_dir, tmp_path):
    for option in (["--seed", "4"], ["--input-size", "40"], ["--val-fraction", "0.3"]):
        r = gz("distill", teacher, "--data", synth_dir, *option, "--out", tmp_path / "s.pt")
        assert r.returncode != 0 and option[0] in r.stderr and "teacher's split" in r.stderr
    with pytest.raises(ValueError, match="no --labels"):
        train.TrainConfig(teacher=str(teacher), labels="x.csv", targets=("x",))
