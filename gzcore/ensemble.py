"""Ensembles: several trained checkpoints averaged into one, scored on the split none of them saw.

Averaging models trained apart cancels part of each one's errors (the Kaggle winners averaged 17).
`combine` refuses members that would leak: all must share the validation split (it is drawn by a
hash of each GalaxyID, so the same seed and fraction hold out the same galaxies in any folder), so
the ensemble's validation score is on galaxies that no member saw. They must also read the same
crops (preprocessing and input size).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checkpoint, data, evaluate, models


def _members(path, ckpt: dict) -> list[tuple[str, dict, dict, dict]]:
    """(source, model config, weights, train config) of each single model in a checkpoint; the
    source is the file's name, and the member's position for an ensemble."""
    cfg = ckpt["model_config"]
    if cfg.get("name") != "ensemble":
        return [(path.name, cfg, ckpt["model"], ckpt.get("train_config") or {})]
    train_configs = (ckpt.get("train_config") or {}).get("members") or [{}] * len(cfg["members"])
    found = []
    for i, (member_cfg, train_config) in enumerate(zip(cfg["members"], train_configs)):
        prefix = f"members.{i}."
        weights = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
        found.append((f"{path.name}[{i}]", member_cfg, weights, train_config))
    return found


def _check_compatible(paths, ckpts: list[dict]) -> None:
    first, ref = ckpts[0], paths[0]
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        for key in ("preprocess", "input_size"):
            if ckpt.get(key) != first.get(key):
                raise checkpoint.CheckpointError(
                    f"{path}: its {key} ({ckpt.get(key)}) differs from {ref}'s ({first.get(key)}); "
                    f"ensemble members must read the same crops")
        if checkpoint.split_of(ckpt) != checkpoint.split_of(first):
            raise checkpoint.CheckpointError(
                f"{path}: trained with validation split (fraction, seed) {checkpoint.split_of(ckpt)}, "
                f"{ref} with {checkpoint.split_of(first)}; one member would have trained on galaxies "
                f"the other holds out")


def combine(paths, out, data_dir, progress=None, storage: str = "float32") -> dict:
    """Average the models in `paths` (checkpoints, ensembles included) into one checkpoint at
    `out`, scored with and without 8-view TTA on the shared validation split of `data_dir`.
    `storage` "float16" or "int8" makes the file smaller (`checkpoint.stored_weights`), and the
    scores are those of the stored weights.
    Returns the metrics written."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("an ensemble needs at least two checkpoints")
    ckpts = [checkpoint.read(p) for p in paths]
    _check_compatible(paths, ckpts)
    parts = [m for p, c in zip(paths, ckpts) for m in _members(p, c)]
    config = {"name": "ensemble", "head": "tree", "members": [cfg for _, cfg, _, _ in parts]}
    model = models.build(**config)
    state = {f"members.{i}.{k}": v for i, (_, _, weights, _) in enumerate(parts)
             for k, v in weights.items()}
    model.load_state_dict(checkpoint.float_weights(*checkpoint.stored_weights(state, storage)))
    model.eval()
    fraction, seed = checkpoint.split_of(ckpts[0])
    return _score_and_save(model, ckpts[0], out, data_dir, storage, progress,
                           {"members": [source for source, _, _, _ in parts],
                            "train_images": (ckpts[0].get("metrics") or {}).get("train_images")},
                           {"val_fraction": fraction, "seed": seed, "members": [t for _, _, _, t in parts]})


def shrink(path, out, data_dir, storage: str = "float16", progress=None) -> dict:
    """The tree model of checkpoint `path` (one model or an ensemble) re-stored for shipping at `out`:
    its weights alone, in `storage`, re-scored as stored on its validation split of `data_dir` with
    and without 8-view TTA (the optimizer state, needed only by --resume, is dropped)."""
    path = Path(path)
    ckpt = checkpoint.read(path)
    if ckpt["model_config"].get("head", "tree") != "tree":
        raise checkpoint.CheckpointError(f"{path}: re-scoring needs a Galaxy Zoo tree model; this one "
                                         f"predicts other targets")
    model = models.build(**ckpt["model_config"])
    model.load_state_dict(checkpoint.float_weights(*checkpoint.stored_weights(ckpt["model"], storage)))
    kept = {k: v for k, v in (ckpt.get("metrics") or {}).items() if not k.startswith(("val_", "member_val"))}
    return _score_and_save(model.eval(), ckpt, out, data_dir, storage, progress, kept,
                           ckpt.get("train_config") or {})


def _score_and_save(model, first: dict, out, data_dir, storage: str, progress, metrics: dict,
                    train_config: dict) -> dict:
    """Score `model` (rebuilt from weights rounded to `storage`) on `first`'s validation split of
    `data_dir`, with and without TTA, and save it with those scores and `metrics`; returns them."""
    size, pp = first["input_size"], checkpoint.preprocess_of(first)
    held = checkpoint.data_for(first, data_dir, labels=True)
    truth = held.galaxies.labels[held.val_idx]
    singles = models.members(model)
    # an ensemble's prediction is the mean of its members': each member runs once per view set
    preds = {tta: [evaluate.predict(m, held.crops, size, index=held.val_idx, tta=tta, progress=progress)
                   for m in singles] for tta in (False, True)}
    metrics = {**metrics, "val_images": len(held.val_idx),
               "val_rmse": evaluate.rmse(np.mean(preds[False], axis=0), truth),
               "val_rmse_tta": evaluate.rmse(np.mean(preds[True], axis=0), truth)}
    if len(singles) > 1:
        metrics["member_val_rmse_tta"] = [evaluate.rmse(p, truth) for p in preds[True]]
    checkpoint.save(out, model, preprocess=pp, input_size=size, metrics=metrics, train_config=train_config,
                    data_fingerprint=data.fingerprint(held.galaxies, pp), storage=storage)
    return metrics
