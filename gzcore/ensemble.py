"""Ensembles: several trained checkpoints averaged into one, scored on the split none of them saw.

Averaging models trained apart cancels part of each one's errors (the Kaggle winners averaged 17).
`combine` refuses members that would leak: all must share the validation split (it is drawn by a
hash of each GalaxyID, so the same seed and fraction hold out the same galaxies in any folder), so
the ensemble's validation score is on galaxies that no member saw. They must also read the same
crops (preprocessing and input size).
"""
from __future__ import annotations

from pathlib import Path

from . import checkpoint, data, evaluate, models

SPLIT_KEYS = ("val_fraction", "seed")  # the train_config entries that fix the validation split


def _members(path, ckpt: dict) -> list[tuple[str, dict, dict, dict]]:
    """(source, model config, weights, train config) of each single model in a checkpoint; the
    source is the file's name, and the member's position for an ensemble."""
    cfg = ckpt["model_config"]
    if cfg.get("name") != "ensemble":
        return [(path.name, cfg, ckpt["model"], ckpt.get("train_config") or {})]
    train_configs = (ckpt.get("train_config") or {}).get("members") or [{}] * len(cfg["members"])
    return [(f"{path.name}[{i}]", member_cfg,
             {k.split(".", 2)[2]: v for k, v in ckpt["model"].items() if k.startswith(f"members.{i}.")},
             train_config) for i, (member_cfg, train_config) in enumerate(zip(cfg["members"], train_configs))]


def _check_compatible(paths, ckpts: list[dict]) -> None:
    first, ref = ckpts[0], paths[0]
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        for key in ("preprocess", "input_size"):
            if ckpt.get(key) != first.get(key):
                raise checkpoint.CheckpointError(
                    f"{path}: its {key} ({ckpt.get(key)}) differs from {ref}'s ({first.get(key)}); "
                    f"ensemble members must read the same crops")
        split, ref_split = ([{k: (c.get("train_config") or {}).get(k) for k in SPLIT_KEYS}
                             for c in (ckpt, first)])
        if split != ref_split:
            raise checkpoint.CheckpointError(
                f"{path}: trained with validation split {split}, {ref} with {ref_split}; one member "
                f"would have trained on galaxies the other holds out")


def combine(paths, out, data_dir, progress=None) -> dict:
    """Average the models in `paths` (checkpoints, ensembles included) into one checkpoint at
    `out`, scored with and without 8-view TTA on the shared validation split of `data_dir`.
    Returns the metrics written."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("an ensemble needs at least two checkpoints")
    ckpts = [checkpoint.read(p) for p in paths]
    _check_compatible(paths, ckpts)
    parts = [m for p, c in zip(paths, ckpts) for m in _members(p, c)]
    config = {"name": "ensemble", "head": "tree", "members": [cfg for _, cfg, _, _ in parts]}
    model = models.build(**config)
    model.load_state_dict({f"members.{i}.{k}": v for i, (_, _, weights, _) in enumerate(parts)
                           for k, v in weights.items()})
    model.eval()
    first = ckpts[0]
    split = {k: (first.get("train_config") or {}).get(k) for k in SPLIT_KEYS}
    pp = checkpoint.preprocess_of(first)
    crops, galaxies = data.load_crops(data.open_folder(data_dir, labels=True), pp)
    _, val_idx = data.split(galaxies, split["val_fraction"] or 0.1, split["seed"] or 0)
    truth = galaxies.labels[val_idx]
    metrics = {"members": [source for source, _, _, _ in parts], "val_images": len(val_idx),
               "train_images": (first.get("metrics") or {}).get("train_images")}
    for key, tta in (("val_rmse", False), ("val_rmse_tta", True)):
        pred = evaluate.predict(model, crops, first["input_size"], index=val_idx, tta=tta,
                                progress=progress)
        metrics[key] = evaluate.rmse(pred, truth)
    metrics["member_val_rmse_tta"] = [
        evaluate.rmse(evaluate.predict(m, crops, first["input_size"], index=val_idx, tta=True), truth)
        for m in model.members]
    checkpoint.save(out, model, model_config=config, preprocess=pp, input_size=first["input_size"],
                    metrics=metrics, train_config={**split, "members": [t for _, _, _, t in parts]},
                    data_fingerprint=data.fingerprint(galaxies, pp))
    return metrics
