"""Distillation: one student learns a teacher's soft answers (an ensemble's, averaged over the
8 test-time views) on every image at hand, labelled or not, with the crowd's answers mixed in where
they exist (Hinton et al. 2015; Zoobot's students do the same on unlabelled survey images).

The student keeps the teacher's validation split and reads the teacher's crops, so no held-out
galaxy is trained on, labelled or not, and the teacher's answers come from the very pixels the
student sees. `train.fit` runs it: a `TrainConfig` with `teacher` set (see `train.with_teacher`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import atomic, checkpoint, data, evaluate, tree


def open_every_image(folders, skip_bad: bool = False) -> data.GalaxySet:
    """Every image of the folders, labelled or not: a folder's Kaggle answers where it has them
    (missing answers NaN), NaN rows for images without a row and for folders without labels."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    sets = []
    for folder in folders:
        labelled = data.open_folder(folder, labels=None, skip_bad=skip_bad)
        if labelled.labels is None:
            labelled.labels = np.full((len(labelled), tree.N_ANSWERS), np.nan, np.float32)
            sets.append(labelled)
            continue
        images = data.images_of(folder)
        extra = np.flatnonzero(~np.isin(images.ids, labelled.ids))
        unlabelled = images.subset(extra)
        unlabelled.labels = np.full((len(extra), tree.N_ANSWERS), np.nan, np.float32)
        sets += [labelled, unlabelled]
    return data.GalaxySet.concat(sets)


def teacher_answers(teacher, crops, index, *, fingerprint: str, tta: bool = True,
                    cache_dir=None, progress=None) -> np.ndarray:
    """The teacher checkpoint's answers (len(index), 37) for the crops at `index`, with 8-view TTA
    unless `tta` is False; computed once per teacher file, data and index, and cached (written
    atomically) beside the crop cache."""
    index = np.asarray(index)
    key = hashlib.sha1(f"{checkpoint.digest(teacher)}|{fingerprint}|{tta}".encode() + index.tobytes())
    cache = Path(cache_dir or data.default_cache_dir()) / f"teacher-{key.hexdigest()[:16]}.npy"
    if cache.is_file():
        return np.load(cache)
    model, ckpt = checkpoint.load(teacher)
    answers = evaluate.predict(model, crops, ckpt["input_size"], tta=tta, index=index, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic.write(cache) as f:
        np.save(f, answers)
    return answers


def soft_labels(crowd: np.ndarray, teacher: np.ndarray, crowd_weight: float) -> np.ndarray:
    """The student's targets: `crowd_weight` x the crowd's answer + the rest x the teacher's where
    the crowd's is known (not NaN), the teacher's alone elsewhere."""
    known = ~np.isnan(crowd)
    mixed = crowd_weight * np.nan_to_num(crowd) + (1 - crowd_weight) * teacher
    return np.where(known, mixed, teacher).astype(np.float32)
