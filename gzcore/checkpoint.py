"""Checkpoints: plain self-describing dicts that rebuild their own model, written atomically and
read with `torch.load(weights_only=True)` so that loading never runs code."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__, atomic, data, models, shipped, targets, tree
from .data import Preprocess

FORMAT = "gzcore-checkpoint"
FORMAT_VERSION = 2  # 2 adds int8 weights ("weight_scales"); files without them are still written as 1
STORAGE = ("float32", "float16", "int8")  # how `save` stores the weights; `read` always gives float32
DEFAULT_NAME = "default.pt"  # the shipped model `gz evaluate` and `gz predict` use without --checkpoint


class CheckpointError(ValueError):
    """A file that is not a gzcore checkpoint, or one that does not fit the model asked for."""


def default() -> Path:
    """The shipped default model's file; CheckpointError when this installation lacks it."""
    path = shipped.folder() / DEFAULT_NAME
    if not path.is_file():
        raise CheckpointError(f"the shipped model {DEFAULT_NAME} is not installed (looked in "
                              f"{shipped.CHECKOUT} and {shipped.INSTALLED}): pass a checkpoint file, "
                              f"or reinstall gzcore (pip install . or pip install -e . from a checkout)")
    return path


def save(path, model: models.GalaxyModel | models.Ensemble, *, preprocess: Preprocess,
         input_size: int, task: targets.Task = targets.TREE, metrics: dict | None = None, history: list | None = None,
         train_config: dict | None = None, optimizer=None, progress: float | None = None,
         data_fingerprint: str | None = None, weights_only_model: bool = False,
         storage: str = "float32", resume: dict | None = None) -> Path:
    """Write atomically (`atomic.write`): an interrupted save never destroys the last good one.
    The model's `config` (set by `models.build`) is what rebuilds it. `weights_only_model=True` drops optimizer state (for shipped, small checkpoints); `storage`
    "float16" halves the file, "int8" quarters it (see `stored_weights`); `read` restores float32.
    `resume`: what else a resumed run restores (random generator states, loss scale; see train.fit)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state, scales = stored_weights(state, storage)
    ckpt = {
        "format": FORMAT, "format_version": FORMAT_VERSION if scales else 1,
        "gzcore_version": __version__,
        "answers": list(tree.COLUMNS), "task": task.to_dict(), "model_config": dict(model.config),
        "preprocess": asdict(preprocess), "input_size": int(input_size), "model": state,
        "metrics": dict(metrics or {}), "history": list(history or []),
        "train_config": dict(train_config or {}), "progress": progress,
        "data_fingerprint": data_fingerprint,
    }
    if scales:
        ckpt["weight_scales"] = scales
    if optimizer is not None and not weights_only_model:
        ckpt["optimizer"] = optimizer.state_dict()
    if resume is not None:
        ckpt["resume"] = resume
    with atomic.write(path) as f:
        torch.save(ckpt, f)
    return path


def resume_path(path) -> Path:
    """Where a run writing checkpoint `path` keeps its resume state (its last finished epoch, while
    `path` holds its best): `NAME.pt.resume` beside it, so that `*.pt` never lists it."""
    path = Path(path)
    return path.with_name(f"{path.name}.resume")


def stored_weights(state: dict, storage: str) -> tuple[dict, dict]:
    """(state as stored, int8 scales). "float16": float tensors rounded to float16, except those it
    cannot hold. "int8": in addition, every conv and linear weight rounded to 255 levels, symmetric,
    with one float32 scale per output channel (weight = int8 x scale). `float_weights` undoes it."""
    if storage not in STORAGE:
        raise ValueError(f"unknown weight storage {storage!r}; use one of {', '.join(STORAGE)}")
    if storage == "float32":
        return state, {}
    fp16_max = torch.finfo(torch.float16).max
    stored, scales = {}, {}
    for k, v in state.items():
        if storage == "int8" and v.is_floating_point() and v.ndim >= 2:
            v = v.float()
            peak = v.abs().amax(dim=tuple(range(1, v.ndim)), keepdim=True)
            scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
            stored[k], scales[k] = torch.round(v / scale).to(torch.int8), scale.flatten()
        elif v.is_floating_point() and bool((v.abs() <= fp16_max).all()):
            stored[k] = v.half()
        else:
            stored[k] = v
    return stored, scales


def float_weights(state: dict, scales: dict) -> dict:
    """The stored state dict back in float32 (int8 tensors times their per-channel scales)."""
    def restore(k, v):
        if k in scales:
            return v.float() * scales[k].view(-1, *[1] * (v.ndim - 1))
        return v.float() if v.is_floating_point() else v
    return {k: restore(k, v) for k, v in state.items()}


def read(path) -> dict:
    """The checkpoint dict, checked for format. Never executes code from the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors, or objects outside the safe set
        first = (str(e).splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: not a readable gzcore checkpoint ({type(e).__name__}: {first})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gzcore checkpoint (no '{FORMAT}' marker; a bare "
                              f"state_dict or another program's file?)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer gzcore ({ckpt.get('gzcore_version')}, "
                              f"format {ckpt['format_version']}); this is {__version__}")
    if ckpt["model_config"].get("head", "tree") == "tree" and ckpt.get("answers") != list(tree.COLUMNS):
        raise CheckpointError(f"{path}: its answers do not match the Galaxy Zoo 2 tree's 37 columns")
    ckpt["model"] = float_weights(ckpt["model"], ckpt.pop("weight_scales", {}))
    return ckpt


def load(path=None, expect_model: str | None = None) -> tuple[models.GalaxyModel, dict]:
    """(model in eval mode, checkpoint dict); the shipped default model when `path` is None.
    `expect_model` checks the architecture name."""
    path = Path(path) if path else default()
    ckpt = read(path)
    cfg = ckpt["model_config"]
    if expect_model and cfg.get("name") != expect_model:
        raise CheckpointError(f"{path}: holds a {cfg.get('name')!r} model, not {expect_model!r}")
    model = models.build(**cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:  # missing, unexpected or wrongly shaped tensors
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{path}: weights do not fit the {cfg.get('name')!r} model it names "
                              f"(written by another model or gzcore {ckpt.get('gzcore_version')}): "
                              f"{detail}") from e
    return model.eval(), ckpt


def digest(path) -> str:
    """SHA-1 of a checkpoint file: what results computed with it (a teacher's answers, prediction
    parts) are keyed on."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def preprocess_of(ckpt: dict) -> Preprocess:
    return Preprocess(**ckpt["preprocess"])


def split_of(ckpt: dict) -> tuple[float, int]:
    """(val_fraction, seed) of the validation split the checkpoint was trained with."""
    cfg = ckpt.get("train_config") or {}
    return cfg.get("val_fraction", 0.1), cfg.get("seed", 0)


def split(galaxies: data.GalaxySet, ckpt: dict):
    """(train rows, held-out rows) by the split the checkpoint was trained with: held-out galaxies
    were never trained on, whichever folder it saw (the split hashes each GalaxyID)."""
    return data.split(galaxies, *split_of(ckpt))


def held_out(ids, ckpt: dict) -> np.ndarray:
    """Whether each GalaxyID is in the checkpoint's held-out split: never trained on."""
    return data.in_validation(ids, *split_of(ckpt))


@dataclass
class CheckpointData:
    """A folder as a checkpoint reads it: its galaxies, their crops by the checkpoint's
    preprocessing, and the checkpoint's split of them (held-out rows were never trained on)."""
    galaxies: data.GalaxySet
    crops: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray


def data_for(ckpt: dict, folder, labels: bool | None = None, skip_bad: bool = False,
             cache_dir=None, progress=None, label_file=None) -> CheckpointData:
    """Open `folder` (labels as in `data.open_folder`, or the checkpoint's targets read from the
    CSV `label_file`), decode its crops as `ckpt` was trained on (cached) and split it as `ckpt`
    was split."""
    if label_file is not None:
        galaxies, _ = targets.open_labelled(folder, label_file, task=targets.of_checkpoint(ckpt),
                                            skip_bad=skip_bad)
    else:
        galaxies = data.open_folder(folder, labels=labels, skip_bad=skip_bad)
    crops, galaxies = data.load_crops(galaxies, preprocess_of(ckpt), cache_dir=cache_dir,
                                      skip_bad=skip_bad, progress=progress)
    if not len(galaxies):
        skipped = galaxies.skipped
        raise data.DataError(f"{folder}: no images" +
                             (f" left: all {len(skipped)} skipped, e.g. {skipped[0]}" if skipped else ""))
    return CheckpointData(galaxies, crops, *split(galaxies, ckpt))
