"""Checkpoints: plain self-describing dicts that rebuild their own model, written atomically and
read with `torch.load(weights_only=True)` so that loading never runs code."""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__, atomic, data, framing, models, shipped, targets, tree
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
         storage: str = "float32", resume: dict | None = None,
         framing_target: framing.Target = framing.GZ2) -> Path:
    """Write atomically (`atomic.write`): an interrupted save never destroys the last good one.
    The model's `config` (set by `models.build`) is what rebuilds it. `weights_only_model=True` drops optimizer state (for shipped, small checkpoints); `storage`
    "float16" halves the file, "int8" quarters it (see `stored_weights`); `read` restores float32.
    `resume`: what else a resumed run restores (random generator states, loss scale; see train.fit).
    `framing_target`: the framing and rendering its training pictures had, so that a cutout from another
    survey is framed to match (key "framing"; gzcore.framing: Kaggle's, Galaxy Zoo 2's, unless told)."""
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
        "data_fingerprint": data_fingerprint, "framing": framing_target.to_dict(),
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
    """The checkpoint dict, checked for format and for what rebuilds its model (`check`). Never
    executes code from the file. Every error is one CheckpointError naming the file (and the key)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors, or objects outside the safe set
        raise CheckpointError(f"{path}: {_unreadable(e)}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gzcore checkpoint (no '{FORMAT}' marker; a bare "
                              f"state_dict or another program's file?)")
    version = ckpt.get("format_version", 0)
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: its format_version {version!r} is not a number (an edited checkpoint?)")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer gzcore ({ckpt.get('gzcore_version')}, "
                              f"format {ckpt['format_version']}); this is {__version__}")
    ckpt.setdefault("framing", framing.GZ2.to_dict())  # written before framing was recorded: Kaggle's images
    check(path, ckpt)
    if ckpt["model_config"].get("head", "tree") == "tree" and ckpt.get("answers") != list(tree.COLUMNS):
        raise CheckpointError(f"{path}: its answers do not match the Galaxy Zoo 2 tree's 37 columns")
    try:
        ckpt["model"] = float_weights(ckpt["model"], ckpt.pop("weight_scales", None) or {})
    except (AttributeError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its weight_scales do not fit its weights (an edited or damaged "
                              f"checkpoint: {_shortened(' '.join(str(e).split()), 160)})") from e
    return ckpt


REQUIRED = {"model_config": "what rebuilds its model", "preprocess": "how its crops are made",
            "input_size": "its model's input side in pixels", "model": "its weights"}
MAX_CROP = 512  # the largest stored crop side (px) a checkpoint may ask for: 0.8 MB per galaxy


def check(path, ckpt: dict) -> None:
    """CheckpointError naming `path` and the key when the checkpoint dict `ckpt` lacks what rebuilds
    its model or holds values gzcore would not build from (an edited or damaged file): a missing
    key, an unknown model name or option, a model too large to allocate (`models.check_config`),
    a preprocessing key missing or unknown, sizes out of range, an unknown task."""
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: it has no {missing[0]!r} ({REQUIRED[missing[0]]}); an edited or "
                              f"damaged checkpoint")
    try:
        models.check_config(ckpt["model_config"])
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    pp, fields = ckpt["preprocess"], list(Preprocess.__dataclass_fields__)
    if not isinstance(pp, dict):
        raise CheckpointError(f"{path}: its preprocess is not a set of options (found {type(pp).__name__})")
    gone = [k for k in fields if k not in pp]
    if gone:
        raise CheckpointError(f"{path}: its preprocess has no {gone[0]!r}; gzcore does not guess how the "
                              f"model's crops were made ({', '.join(fields)} are needed)")
    extra = [k for k in pp if k not in fields]
    if extra:
        raise CheckpointError(f"{path}: its preprocess has an unknown key {extra[0]!r} "
                              f"({', '.join(fields)} are the ones gzcore reads)")
    problem = _preprocess_problem(pp)
    if problem:
        raise CheckpointError(f"{path}: its preprocess {problem}")
    size = ckpt["input_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= pp["size"]:
        raise CheckpointError(f"{path}: its input_size {size!r} is not a side in pixels from 8 to its "
                              f"crops' {pp['size']}")
    if not isinstance(ckpt["model"], dict) or not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()):
        raise CheckpointError(f"{path}: its model is not a set of weight tensors")
    try:
        task = targets.of_checkpoint(ckpt)
    except (TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: its task is not one gzcore reads ({' '.join(str(e).split())})") from None
    if task.kind not in targets.KINDS or not task.columns:
        raise CheckpointError(f"{path}: its task {task.kind!r} with {len(task.columns)} output(s) is not one "
                              f"gzcore reads ({', '.join(targets.KINDS)}, with at least one output)")
    try:
        framing.of_checkpoint(ckpt)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its {' '.join(str(e).split())} (an edited checkpoint?)") from None


def _preprocess_problem(pp: dict) -> str | None:
    """What is wrong with a checkpoint's preprocessing values (its keys are Preprocess's), or None."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
    if not isinstance(pp["crop"], str) or pp["crop"] not in data.CROP_FIELDS:
        return f"crop {pp['crop']!r} is not one gzcore makes ({', '.join(data.CROP_FIELDS)})"
    if not isinstance(pp["size"], int) or isinstance(pp["size"], bool) or not 8 <= pp["size"] <= MAX_CROP:
        return f"size {pp['size']!r} is not a crop side in pixels from 8 to {MAX_CROP}"
    if not number(pp["crop_px"]) or not 0 < pp["crop_px"] <= 424:
        return f"crop_px {pp['crop_px']!r} is not a side from 1 to 424 (in 424-px units)"
    if not number(pp["roi_pad"]) or not 0 < pp["roi_pad"] <= 10:
        return f"roi_pad {pp['roi_pad']!r} is not an enlargement from 0 to 10"
    if not isinstance(pp["grayscale"], bool):
        return f"grayscale {pp['grayscale']!r} is not true or false"
    return None


def _shortened(text: str, limit: int) -> str:
    """`text`, or its first words up to `limit` characters and " …" (never a word cut in two)."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _unreadable(e: Exception) -> str:
    """Why torch.load could not read a file, as one whole sentence (torch's own messages run over
    several lines, and a damaged pickle's can be a bare "KeyError: 101")."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(e)).split())
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return (f"not a readable gzcore checkpoint: it holds Python objects{what} or instructions beyond "
                f"tensors and plain values, which gzcore never loads, since loading them could run code")
    if "zip archive" in text or "central directory" in text:
        return "not a readable gzcore checkpoint: the file is damaged or cut short (its zip archive is incomplete)"
    first = _shortened(re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0], 160)
    detail = f"{type(e).__name__}: {first}" if first else type(e).__name__
    return f"not a readable gzcore checkpoint: the file is damaged or was not written by gzcore ({detail})"


def load(path=None, expect_model: str | None = None) -> tuple[models.GalaxyModel, dict]:
    """(model in eval mode, checkpoint dict); the shipped default model when `path` is None.
    `expect_model` checks the architecture name."""
    path = Path(path) if path else default()
    ckpt = read(path)
    cfg = ckpt["model_config"]
    if expect_model and cfg.get("name") != expect_model:
        raise CheckpointError(f"{path}: holds a {cfg.get('name')!r} model, not {expect_model!r}")
    try:
        model = models.build(**cfg)
    except (TypeError, ValueError) as e:  # `read` checked the config: whatever it let through
        raise CheckpointError(f"{path}: its model_config does not build ({' '.join(str(e).split())})") from e
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:  # missing, unexpected or wrongly shaped tensors
        detail = _shortened(" ".join(str(e).split()), 300)
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


def framing_of(ckpt: dict) -> framing.Target:
    """The framing the checkpoint's model expects (Galaxy Zoo 2's for files that predate the key)."""
    return framing.of_checkpoint(ckpt)


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
             cache_dir=None, progress=None, label_file=None, pixel_scale: float | None = None) -> CheckpointData:
    """Open `folder` (labels as in `data.open_folder`, or the checkpoint's targets read from the
    CSV `label_file`), decode its crops as `ckpt` was trained on (cached; framed to its framing, its
    JPEGs and PNGs at `pixel_scale` when given) and split it as `ckpt` was split."""
    if label_file is not None:
        galaxies, _ = targets.open_labelled(folder, label_file, task=targets.of_checkpoint(ckpt),
                                            skip_bad=skip_bad)
    else:
        galaxies = data.open_folder(folder, labels=labels, skip_bad=skip_bad)
    crops, galaxies = data.load_crops(galaxies, preprocess_of(ckpt), cache_dir=cache_dir,
                                      skip_bad=skip_bad, progress=progress, target=framing_of(ckpt),
                                      pixel_scale=pixel_scale)
    if not len(galaxies):
        skipped = galaxies.skipped
        raise data.DataError(f"{folder}: no images" +
                             (f" left: all {len(skipped)} skipped, e.g. {skipped[0]}" if skipped else ""))
    return CheckpointData(galaxies, crops, *split(galaxies, ckpt))
