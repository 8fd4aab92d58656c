"""The `gz` command line: synth, train, distill, ensemble, shrink, evaluate, compare, predict, atlas, oddballs,
lr-find.

Stable contract (scripts call it):
  gz synth --n N --out DIR [--seed S] [--format jpg|fits]
  gz train --data DIR [--data DIR ...] [--model NAME] [--minutes M | --epochs E] --out CKPT
  gz train --data DIR --labels FILE.csv --target COLUMN [--target COLUMN ...] [--init CKPT]
           [--minutes M | --epochs N] --out CKPT
  gz distill TEACHER --data DIR [--data DIR ...] [--model NAME] [--minutes M] --out CKPT
  gz shrink CKPT --data DIR --out CKPT [--half | --int8]
  gz evaluate --data DIR [--labels FILE.csv] [--checkpoint CKPT]
  gz compare A.pt B.pt --data DIR [--labels FILE.csv] [--out FILE.csv]
  gz predict --data DIR|IMAGE [--checkpoint CKPT] [--uncertainty] [--pixel-scale ARCSEC] --out FILE.csv
  gz atlas --data DIR [--checkpoint CKPT] [--method umap|pca] --out FILE.csv
  gz oddballs --data DIR [--checkpoint CKPT] [--top N] --out FILE.csv
  gz explain-check --data DIR [--checkpoint CKPT] (--galaxy ID | --held-out N) [--method M ...] [--json]
  gz serve --processes N [--port 8501] [--data DIR] [--checkpoint CKPT] [--public] [--base-url-path /gz]
Without --checkpoint the shipped default model (checkpoints/default.pt) is used.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import atomic, augment, checkpoint, data, distributed, evaluate, models, survey, targets, train, tree, upload


INFERENCE = train.Setup.choose("cpu", "fp32")  # where evaluate, predict and ensemble run the model


class _Bar:
    """A tqdm bar driven by (done, total) progress callbacks; a new pass (done falling back)
    starts a new bar."""

    def __init__(self, desc: str, unit: str = "img"):
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done, total):
        if self.bar is None or done < self.bar.n:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, leave=False,
                            dynamic_ncols=True, file=sys.stderr)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


def _table(rows: list[tuple], headers: tuple) -> str:
    cells = [tuple(f"{c:.4f}" if isinstance(c, float) else str(c) for c in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(headers), line(tuple("-" * w for w in widths)), *map(line, cells)])


def _check_out(path: Path, folder: bool = False) -> None:
    """Fail before any work when the output `path` (a file, or a `folder`) cannot be written: its
    folder is made if missing, and a small file is written, synced and removed there (a full disk
    or a folder without write permission fails here, not after a run). A `path` that is a device, a
    named pipe or a link to one is refused too. An OSError naming `path`."""
    where = path if folder else path.parent

    def refuse(code, reason):
        return OSError(code, f"cannot write there ({reason}); choose another --out", str(path))
    if path.exists() and path.is_dir() != folder:
        raise refuse(*((errno.EISDIR, "a folder, not a file") if path.is_dir() else
                       (errno.ENOTDIR, "a file, not a folder") if path.is_file() else
                       (errno.ENOTDIR, "not a folder")))
    if not folder:
        atomic.refuse_special(path)  # a device, a named pipe: never replaced by the rename
    above = next(p for p in (where, *where.parents) if p.exists())
    if not above.is_dir():
        raise refuse(errno.ENOTDIR, f"{above} is a file, not a folder")
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".gz-probe-") as probe:
            probe.write(b"gz")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise refuse(e.errno, f"{e.strerror or e}: {where}") from e


def cmd_synth(args):
    from . import synthetic
    _check_out(args.out, folder=True)
    path = synthetic.generate(args.out, args.n, seed=args.seed, progress=_Bar("rendering", "galaxy"),
                              image_format=args.format)
    print(f"wrote {args.n} synthetic galaxies to {path} (Kaggle layout, {args.format} images, "
          f"{synthetic.TRUTH_FILE}; seed {args.seed})")


def _train_config(args, command: str):
    """The TrainConfig of `gz train` / `gz lr-find` options (see `add_train_options`)."""
    try:
        cfg = train.TrainConfig(labels=str(args.labels) if args.labels else None,
                                targets=tuple(args.target or ()), units=tuple(args.units or ()),
                                classes=args.classes,
                                init=str(args.init) if args.init else None, backbone_lr=args.backbone_lr,
                                model=args.model, width=args.width, epochs=args.epochs,
                                minutes=args.minutes, batch_size=args.batch_size, lr=args.lr,
                                seed=args.seed, init_seed=args.init_seed, subset=args.subset,
                                val_fraction=args.val_fraction, device=args.device,
                                precision=args.precision, threads=args.threads,
                                patience=args.patience, skip_bad=args.skip_bad,
                                tta=not args.no_tta, augment=args.augment, swa=args.swa,
                                compile=args.compile)
    except ValueError as e:  # options that do not go together
        sys.exit(f"gz {command}: error: {e}")
    cfg = train.with_crop(cfg, args.crop)
    if args.grayscale:
        cfg = replace(cfg, preprocess=replace(cfg.preprocess, grayscale=True))
    if args.input_size:
        cfg = train.with_input_size(cfg, args.input_size)
    return cfg


def _ran_on(result: dict) -> str:
    """'cpu, bf16, 2 threads': where a run or pass ran, as resolved."""
    threads = f", {result['threads']} threads" if result.get("threads") else ""
    return f"{result['device']}, {result['precision']}{threads}"


def cmd_train(args):
    _run_training(args, _train_config(args, "train"))


def cmd_distill(args):
    default = train.TrainConfig()
    follows_teacher = {"--labels": args.labels, "--target": args.target, "--init": args.init,
                       "--input-size": args.input_size, "--grayscale": args.grayscale,
                       "--crop": args.crop != default.preprocess.crop, "--seed": args.seed != default.seed,
                       "--val-fraction": args.val_fraction != default.val_fraction}
    given = [name for name, value in follows_teacher.items() if value]
    if given:
        sys.exit(f"gz distill: error: {', '.join(given)}: the student learns the teacher's 37 answers "
                 f"from the teacher's crops, on the teacher's split")
    cfg = replace(_train_config(args, "distill"), teacher=str(args.teacher),
                  crowd_weight=args.crowd_weight, teacher_tta=not args.teacher_no_tta)
    _run_training(args, cfg)


def _run_training(args, cfg: train.TrainConfig):
    """`gz train` and `gz distill`: fit with progress bars, then print the run's summary. The
    checkpoint is locked for the run (`atomic.held`: a second run onto it fails at once, naming the
    first one's pid), and an existing one is replaced only with --overwrite (or continued, --resume)."""
    _check_out(args.out)
    if args.resume and args.overwrite:
        sys.exit(f"gz {args.command}: error: --resume continues the run of --out, --overwrite starts "
                 f"one afresh: choose one")
    rank0 = distributed.rank() == 0  # under torchrun, rank 0 writes the checkpoint
    with atomic.held(args.out, "a training run") if rank0 else contextlib.nullcontext():
        if args.out.exists() and not (args.resume or args.overwrite):
            raise OSError(errno.EEXIST, "a checkpoint is there already; pass --resume to continue its run, "
                          "or --overwrite to replace it", str(args.out))
        _fit_and_report(args, cfg)


def _fit_and_report(args, cfg: train.TrainConfig):
    bars: dict = {}

    def callback(event, info):
        if event == "data":
            bars.setdefault("data", _Bar("decoding crops (once; cached)"))(info["done"], info["total"])
        elif event == "teacher":
            bars.setdefault("teacher", _Bar("teacher's answers (once; cached)"))(info["done"], info["total"])
        elif event == "step":
            bar = bars.get("train")
            if bar is None:
                total = cfg.minutes * 60 if cfg.minutes else cfg.epochs
                bar = bars["train"] = tqdm(total=total, unit="s" if cfg.minutes else "epoch",
                                           leave=False, dynamic_ncols=True, file=sys.stderr,
                                           bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
                                           mininterval=0.5)
            bar.set_description_str(f"training: epoch {info['epoch'] + 1}, batch RMSE "
                                    f"{info['loss'] ** 0.5:.4f}", refresh=False)
            bar.update(info["progress"] * bar.total - bar.n)
        elif event == "epoch":
            tqdm.write(f"epoch {info['epoch']:3d}  train {info['train_rmse']:.4f}  "
                       f"val {info['val_rmse']:.4f}  best {info['best_val_rmse']:.4f}  "
                       f"{info['seconds']:6.0f}s", file=sys.stderr)
    result = train.fit(args.data, cfg, out=args.out, callback=callback, resume=args.resume)
    if distributed.rank() != 0:  # rank 0 reports for all
        return
    if "train" in bars:
        bars["train"].close()
    task = result["task"]
    predicts = ("the 37 answers of the tree" + (f", distilled from {cfg.teacher}" if cfg.teacher else "")
                if task.kind == "tree" else
                f"{', '.join(task.label_columns)} ({task.kind}{'' if cfg.init is None else ', fine-tuned'})")
    ranks = f" x {result['ranks']} ranks" if result.get("ranks") else ""
    rows = [("model", f"{result['model'].config['name']} ({_ran_on(result)}{ranks})"), ("predicts", predicts),
            ("train / val galaxies", f"{result['train_images']} / {result['val_images']}"),
            ("epochs", result["epochs"]), ("wall time", f"{result['seconds']:.0f} s"),
            ("val RMSE", result["val_rmse"])]
    if "val_rmse_tta" in result:
        rows.append(("val RMSE, 8-view TTA", result["val_rmse_tta"]))
    if "val_accuracy" in result:
        rows.append(("val accuracy", result["val_accuracy"]))
    print(_table(rows, ("", "")))
    _skipped(result["skipped"])
    print(f"checkpoint: {args.out}")


def cmd_ensemble(args):
    from . import ensemble
    _check_out(args.out)
    try:
        m = ensemble.combine(args.checkpoints, args.out, args.data, progress=_Bar("predicting"),
                             storage=args.storage)
    except (checkpoint.CheckpointError, data.DataError):
        raise  # reported by main, naming the file
    except ValueError as e:
        sys.exit(f"gz ensemble: error: {e}")
    rows = list(zip(m["members"], m["member_val_rmse_tta"]))
    rows.append((f"ensemble of {len(m['members'])}", m["val_rmse_tta"]))
    rows.append((f"ensemble of {len(m['members'])}, one view (no TTA)", m["val_rmse"]))
    print(f"{m['val_images']} validation galaxies, 8-view TTA unless said "
          f"({_ran_on(INFERENCE.describe())})\n")
    print(_table(rows, ("model", "val RMSE")))
    print(f"\ncheckpoint: {args.out}")


def cmd_shrink(args):
    from . import ensemble
    _check_out(args.out)
    m = ensemble.shrink(args.checkpoint, args.out, args.data, storage=args.storage,
                        progress=_Bar("re-scoring"))
    size = args.out.stat().st_size / 1e6
    print(_table([("val RMSE, 8-view TTA", m["val_rmse_tta"]), ("val RMSE, one view (no TTA)", m["val_rmse"]),
                  ("held-out galaxies", m["val_images"]), ("file", f"{args.out} ({size:.1f} MB, {args.storage})")],
                 ("stored weights", "")))


def _load(args, labels: bool):
    """(model, checkpoint, its task, its CheckpointData of --data) for evaluate and predict."""
    model, ckpt = checkpoint.load(args.checkpoint)
    task = targets.of_checkpoint(ckpt)
    if labels and task.kind != "tree" and args.labels is None:
        raise data.DataError(f"{args.checkpoint}: this model predicts {', '.join(task.label_columns)}; "
                             f"pass their CSV with --labels")
    held = checkpoint.data_for(ckpt, args.data, labels=labels, skip_bad=args.skip_bad,
                               label_file=args.labels if labels else None,
                               progress=_Bar("decoding crops (once; cached)"),
                               pixel_scale=getattr(args, "pixel_scale", None))
    return model, ckpt, task, held


def cmd_evaluate(args):
    if args.out:
        _check_out(args.out)
    model, ckpt, task, held = _load(args, labels=True)
    galaxies, val_idx = held.galaxies, held.val_idx
    if args.all:
        val_idx = np.arange(len(galaxies))
    which = "all labelled galaxies" if args.all else "the validation split"
    labels = task.comparable(galaxies.labels)
    if np.isnan(labels[val_idx]).all():  # nothing to score: no RMSE beside "0 galaxies"
        source = args.labels or Path(args.data) / data.LABELS_FILE
        raise data.DataError(f"{source}: no galaxy of {which} ({len(val_idx)}) has these labels"
                             + ("" if args.all else "; --all scores every labelled galaxy"))
    raw = evaluate.predict(model, held.crops, ckpt["input_size"], index=val_idx, tta=not args.no_tta,
                           device=INFERENCE.device, progress=_Bar("predicting"))
    pred = task.decode(raw)
    truth = labels[val_idx]
    s = evaluate.scores(pred, truth, task.columns)
    base = evaluate.baselines(held.crops, labels, held.train_idx, val_idx, task)
    print(f"{len(val_idx)} galaxies ({which}), model {ckpt['model_config']['name']}"
          f"{' with 8-view TTA' if not args.no_tta else ''} ({_ran_on(INFERENCE.describe())})\n")
    rows = [("model", s["rmse"])] + [(f"baseline: {k}", v) for k, v in base.items()]
    print(_table(rows, ("predictor", task.unit_name)) + "\n")
    if task.kind == "tree":
        counts = {q.label: s["question_labelled"][q.number] for q in tree.QUESTIONS}
        print(_table([(q.label, s["per_question"][q.number] if counts[q.label] else "—", counts[q.label])
                      for q in tree.QUESTIONS], ("question", "RMSE", "galaxies labelled")))
    elif task.kind == "regression":
        counts = {c: s["labelled"][c] for c in task.columns}
        print(_table([(c + (f" ({task.unit(c)})" if task.unit(c) else ""), s["per_answer"][c] if counts[c]
                       else "—", counts[c]) for c in task.columns], ("target", "RMSE", "galaxies labelled")))
    else:
        classes = galaxies.labels[val_idx, 0]
        majority, share = evaluate.majority_class(galaxies.labels[held.train_idx, 0], classes)
        print(_table([("model", evaluate.accuracy(pred, classes)),
                      (f"baseline: always {task.columns[majority]}", share)], ("predictor", "accuracy")))
        counts = {}
    unscored = [name for name, n in counts.items() if not n]
    if unscored:
        print(f"\n—: no galaxy has the labels of {', '.join(unscored)} (every answer of it known), so "
              f"{'it is' if len(unscored) == 1 else 'they are'} not scored")
    _skipped(galaxies)
    if args.out:
        table = evaluate.predictions_table(galaxies.ids[val_idx], pred, truth, task.columns,
                                           "GalaxyID" if task.kind == "tree" else "id")
        with atomic.write(args.out) as f:
            table.to_csv(f, index=False)
        print(f"\npredictions table: {args.out}")


def cmd_compare(args):
    from . import compare
    if args.out:
        _check_out(args.out)
    c = compare.run(args.a, args.b, args.data, args.labels, tta=not args.no_tta, top=args.top,
                    progress=_Bar("decoding crops, predicting"), device=INFERENCE.device)
    print(f"A: {args.a}\nB: {args.b}\n{c.basis}{'' if args.no_tta else ', 8-view TTA'} "
          f"({_ran_on(INFERENCE.describe())})")
    if c.warning:
        print(f"warning: {c.warning}")
    shown = c.scores[c.scores.level.isin(("overall", "question" if c.task.kind == "tree" else "answer"))]
    rows = [(r["name"], r["RMSE A"], r["RMSE B"], f"{r['B − A']:+.4f}", f"[{r['low']:+.4f}, {r['high']:+.4f}]",
             r["verdict"]) for _, r in shown.iterrows()]
    print(f"\n{c.task.unit_name}, B − A with its {compare.LEVEL:.0%} paired bootstrap interval over galaxies "
          f"(negative: B better)\n")
    print(_table(rows, ("", "A", "B", "B − A", "interval", "verdict")))
    print(f"\nwhere they disagree most (root mean square of A − B over the {len(c.task.columns)} outputs)")
    for _, r in c.disagreements.iterrows():
        differ = f"  top answers differ at {r['top answers']}" if r.get("top answers") else ""
        print(f"\n{r.GalaxyID}  A − B {r.difference:.4f}{differ}\n  A: {r['A says']}\n  B: {r['B says']}")
    if args.out:
        with atomic.write(args.out) as f:
            c.scores.to_csv(f, index=False)
        print(f"\nscores (overall, per question and per answer): {args.out}")


def cmd_predict(args):
    single = args.data.is_file() and data.image_stem(args.data) is not None  # one image, not a list
    if single and args.out.suffix == ".parquet":
        sys.exit(f"gz predict: error: {args.data} is one image: write CSV (--out NAME.csv)")
    _check_out(args.out, folder=args.out.suffix == ".parquet")
    if not args.data.exists():
        raise data.DataError(f"{args.data}: no such folder, image or list of images")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if not single and (args.out.suffix == ".parquet" or not args.data.is_dir()):
        return _predict_survey(args)
    if distributed.launched():
        sys.exit("gz predict: error: under torchrun the ranks write Parquet parts: use --out NAME.parquet")
    if args.embedding:
        sys.exit("gz predict: error: --embedding needs a Parquet output (--out NAME.parquet)")
    if single:  # within the dashboard's upload limits (gzcore.upload)
        model, ckpt = checkpoint.load(args.checkpoint)
        task, galaxies = targets.of_checkpoint(ckpt), data.unlabelled(args.data.parent, [args.data])
        mine = upload.read(args.data, checkpoint.preprocess_of(ckpt), pixel_scale=args.pixel_scale,
                           target=checkpoint.framing_of(ckpt))
        crops = mine.crop[None]
        print(mine.framing.summary())
        if mine.framing.warning():
            print(f"warning: {args.data}: {mine.framing.warning()}", file=sys.stderr)
        if mine.stretched():
            data.warn(mine.stretched())  # as a folder's: "gz predict: warning: …"
    else:
        model, ckpt, task, held = _load(args, labels=False)
        galaxies, crops = held.galaxies, held.crops
    try:
        found = evaluate.predict(model, crops, ckpt["input_size"], tta=not args.no_tta,
                                 device=INFERENCE.device, progress=_Bar("predicting"),
                                 spread=args.uncertainty)
        raw, spread = found if args.uncertainty else (found, None)
        spread = None if spread is None else task.decode_spread(spread)
    except ValueError as e:  # a spread asked of one model without its views, or of a classifier
        sys.exit(f"gz predict: error: {e}")
    evaluate.write_predictions(args.out, galaxies.ids, task.decode(raw), task, spread)
    if single:
        print(_answers(task, task.decode(raw)[0], None if spread is None else spread[0]) + "\n")
    print(f"wrote predictions for {len(galaxies)} galaxies to {args.out} "
          f"({_ran_on(INFERENCE.describe())})")
    _skipped(galaxies)


def _pixel_scale(text: str) -> float:
    """--pixel-scale: arcseconds per pixel, a number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give arcseconds per pixel, a number above 0")
    return value


def _answers(task: targets.Task, pred: np.ndarray, spread: np.ndarray | None) -> str:
    """One image's outputs as a table (± spread); for the tree, its most likely path first."""
    names = [tree.answer_label(c) for c in task.columns] if task.kind == "tree" else \
        [c + (f" ({task.unit(c)})" if task.unit(c) else "") for c in task.columns]
    rows = [(name, float(v), *(() if spread is None else (float(spread[i]),)))
            for i, (name, v) in enumerate(zip(names, pred))]
    table = _table(rows, ("answer" if task.kind == "tree" else "output", "model",
                          *(() if spread is None else ("spread",))))
    return f"most likely path: {tree.summary(pred)}\n\n{table}" if task.kind == "tree" else table


def _predict_survey(args):
    """`gz predict --out NAME.parquet` (or --data LIST.txt): streamed in shards, resumable, and split
    across torchrun's ranks (`gzcore.survey`)."""
    if args.out.suffix != ".parquet":
        sys.exit(f"gz predict: error: {args.data} is a list of images: write Parquet (--out NAME.parquet)")
    setup = train.Setup.choose(args.device, "fp32")
    setup.device = distributed.device_for(setup.device)
    started = distributed.start(setup.device)
    model, ckpt = checkpoint.load(args.checkpoint)
    path = args.checkpoint or checkpoint.default()
    galaxies = survey.images_to_predict(args.data)
    rank, world = distributed.rank(), distributed.world()
    report = survey.predict(model.to(setup.device), ckpt, path, galaxies, args.out, tta=not args.no_tta,
                            uncertainty=args.uncertainty, embedding=args.embedding, skip_bad=args.skip_bad,
                            shard=args.shard, pixel_scale=args.pixel_scale,
                            progress=_Bar(f"rank {rank}/{world}: parts", "part") if rank == 0 else None)
    for bad in report["skipped"]:
        print(f"skipped: {bad}", file=sys.stderr)
    print(f"rank {rank}/{world}: {report['galaxies']} galaxies in {report['parts']} new part(s), "
          f"{report['resumed']} part(s) already done ({_ran_on(setup.describe())})")
    distributed.finish(started)
    if rank == 0:
        print(f"predictions: {args.out}/part-*.parquet ({len(galaxies)} images; read with pandas.read_parquet, "
              f"DuckDB or Arrow)")


def _subject(args, what: str = "the dashboard's"):
    """(model, this model over the folder as the dashboard opens it: computed.Subject, its crops)
    for gz catalog, gz atlas and gz oddballs; what they compute is cached as the dashboard's."""
    from . import computed
    model, ckpt = checkpoint.load(args.checkpoint)
    path = args.checkpoint or checkpoint.default()
    galaxies = targets.open_for(args.data, targets.of_checkpoint(ckpt), getattr(args, "labels", None))
    crops, kept = data.load_crops(galaxies, data.Preprocess(**ckpt["preprocess"]), skip_bad=True,
                                  progress=_Bar(f"decoding crops (once; cached as {what})"),
                                  target=checkpoint.framing_of(ckpt))
    if kept.skipped and not args.skip_bad:
        sys.exit(f"gz: error: {kept.skipped[0]} (--skip-bad skips such images)")
    return model, computed.Subject(kept, ckpt, Path(path), data.default_cache_dir()), crops


def _skipped(galaxies, most: int = 20) -> None:
    """What --skip-bad left out (a GalaxySet's `skipped`, or the list), one per line: every command
    that takes --skip-bad ends with it."""
    skipped = list(getattr(galaxies, "skipped", galaxies))
    if skipped:
        more = [f"… and {len(skipped) - most} more"] if len(skipped) > most else []
        print(f"skipped {len(skipped)} bad input(s):", *skipped[:most], *more, sep="\n  ")


def cmd_atlas(args):
    import pandas as pd

    from . import atlas, catalog
    _check_out(args.out)
    model, subject, crops = _subject(args)
    embeddings = catalog.embeddings(subject, crops, model, _Bar("embedding"))
    if args.method == "umap" and not atlas.cache_file(subject, "umap").is_file():
        print("computing the UMAP layout (a minute or so the first time in a process)…", file=sys.stderr)
    xy = atlas.coordinates(embeddings, args.method, subject)
    with atomic.write(args.out) as f:
        pd.DataFrame({"GalaxyID": subject.galaxies.ids, "x": xy[:, 0], "y": xy[:, 1]}).to_csv(f, index=False)
    print(f"wrote the {args.method.upper()} map of {len(xy)} galaxies to {args.out} (the dashboard's Atlas "
          f"reads the same map from the cache)")
    _skipped(subject.galaxies)


def cmd_oddballs(args):
    import pandas as pd

    from . import catalog, oddballs
    if args.top < 1:
        sys.exit("gz oddballs: error: --top must be at least 1")
    _check_out(args.out)
    model, subject, crops = _subject(args)
    embeddings = catalog.embeddings(subject, crops, model, _Bar("embedding"))
    score = oddballs.anomaly_cached(embeddings, subject, _Bar("scoring", "galaxy"))
    rows = oddballs.most_anomalous(score, args.top)
    with atomic.write(args.out) as f:
        pd.DataFrame({"GalaxyID": subject.galaxies.ids[rows], "score": score[rows],
                      "rank": np.arange(1, len(rows) + 1)}).to_csv(f, index=False)
    print(f"wrote the {len(rows)} oddest of {len(score)} galaxies to {args.out} (score: mean cosine distance "
          f"to the {oddballs.K} nearest in the model's embedding; the dashboard's Oddballs page ranks the same)")
    _skipped(subject.galaxies)


def cmd_catalog(args):
    """Warm the cache for a data folder and a model: everything the dashboard computes for them."""
    import time

    from . import atlas, catalog, oddballs
    began = time.perf_counter()
    model, subject, crops = _subject(args)
    steps = [("held-out predictions", lambda: catalog.held_out_outputs(subject, crops, model, _Bar("held out"))),
             ("every galaxy's predictions", lambda: catalog.all_outputs(subject, crops, model, _Bar("predicting"))),
             ("embeddings", lambda: catalog.embeddings(subject, crops, model, _Bar("embedding"))),
             ("oddness", lambda: oddballs.anomaly_cached(catalog.embeddings(subject, crops, model), subject,
                                                         _Bar("scoring", "galaxy")))]
    steps += [(f"{method.upper()} map", lambda method=method: atlas.coordinates(
        catalog.embeddings(subject, crops, model), method, subject)) for method in args.maps]
    for name, step in steps:
        step()
        print(f"ready: {name} ({time.perf_counter() - began:.1f} s)")
    print(f"the cache {subject.cache_dir} holds everything the dashboard shows for {len(subject.galaxies):,} "
          f"galaxies of {args.data} with {subject.ckpt_path.name}: start it with GZ_CACHE={subject.cache_dir}")
    _skipped(subject.galaxies)


def cmd_explain_check(args):
    from . import explain, explain_checks
    methods = list(explain.METHODS) if args.method == ["all"] else args.method or [explain.DEFAULT_METHOD]
    unknown = [m for m in methods if m not in explain.METHODS]
    if unknown:
        sys.exit(f"gz explain-check: error: unknown method(s) {', '.join(unknown)}; choose from "
                 f"{', '.join(explain.METHODS)} (or all)")
    if args.held_out is not None and args.held_out < 1:
        sys.exit(f"gz explain-check: error: --held-out {args.held_out}: give the number of held-out galaxies "
                 f"to check, 1 or more")
    model, ckpt = checkpoint.load(args.checkpoint)
    if targets.of_checkpoint(ckpt).kind != "tree":
        sys.exit(f"gz explain-check: error: {args.checkpoint} predicts "
                 f"{', '.join(targets.of_checkpoint(ckpt).columns)}; explain-check explains the tree's answers")
    held = checkpoint.data_for(ckpt, args.data, labels=False, progress=_Bar("decoding crops (once; cached)"))
    ids = held.galaxies.ids
    if args.galaxy is not None:
        rows = np.flatnonzero(ids == args.galaxy)
        if not len(rows):
            raise data.DataError(f"{args.data}: no galaxy {args.galaxy}")
        image = explain.model_input(held.crops[rows[0]], ckpt["input_size"])
        found = {}
        for method in methods:
            try:
                found[method] = explain_checks.check(model, image, args.question, args.answer, method,
                                                     not args.weighted, progress=_Bar(f"{method}: maps", "map"))
            except ValueError as e:  # a question or answer that does not exist: the message names the choices
                sys.exit(f"gz explain-check: error: {e}")
        _print_galaxy_checks(args, found)
        return
    if not len(held.val_idx):
        sys.exit(f"gz explain-check: error: {args.checkpoint or checkpoint.DEFAULT_NAME} has no held-out galaxies "
                 f"in {args.data} (none of its validation split is there)")
    held_out = held.val_idx[np.argsort(ids[held.val_idx], kind="stable")][:args.held_out]
    images = [explain.model_input(held.crops[i], ckpt["input_size"]) for i in held_out]
    rows = explain_checks.survey(model, images, methods, args.question, progress=_Bar("galaxies", "galaxy"))
    controls = {m: {f: explain_checks.positive_control(model, data.Preprocess(**ckpt["preprocess"]),
                                                       ckpt["input_size"], f, args.control, m,
                                                       progress=_Bar(f"{m}: {f} control", "galaxy"))
                    for f in explain_checks.CONTROLS} for m in methods} if args.control else {}
    report = _explain_report(rows, controls, len(images), args.question)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{len(images)} held-out galaxies (the checkpoint's validation split, by GalaxyID), the model's top "
          f"answer to Q{args.question}; default method: {explain.DEFAULT_METHOD}\n")
    checks = [*(f"{t}_{level}" for level in explain_checks.LEVELS for t in explain_checks.TESTS), "randomisation"]
    lines = [(f"beats random: {explain_checks.TEST_NAMES[c.rsplit('_', 1)[0]]}, {c.rsplit('_', 1)[1]} level"
              if c != "randomisation" else f"randomisation: |Spearman| < {explain_checks.RANDOMISED_BELOW} as drawn",
              *(f"{report[m]['checks'][c]:.0%}" for m in methods)) for c in checks]
    lines += [("Spearman, all randomised: as drawn", *(f"{report[m]['randomisation']['spearman_as_drawn']:.2f}" for m in methods)),
              ("Spearman, all randomised: |map|", *(f"{report[m]['randomisation']['spearman_abs']:.2f}" for m in methods)),
              ("SSIM of |map|, all randomised", *(f"{report[m]['randomisation']['ssim_abs']:.2f}" for m in methods)),
              ("PASSES every check", *(f"{report[m]['passes']:.0%}" for m in methods))]
    lines += [(f"positive control, {f}: share on the feature (random's)",
               *(f"{report[m]['positive_control'][f]['share']:.2f} ({report[m]['positive_control'][f]['random_share']:.2f}), "
                 f"{report[m]['positive_control'][f]['galaxies']} galaxies" if report[m]["positive_control"][f]["galaxies"]
                 else "the model finds none" for m in methods)) for f in (explain_checks.CONTROLS if controls else [])]
    print(_table(lines, ("check (share of galaxies)", *methods)))


def _explain_report(rows, controls: dict, galaxies: int, question: int) -> dict:
    """`gz explain-check --held-out`'s figures as one JSON-ready dict: "default", then per method its
    "passes" (the share of galaxies passing every check), each check's share, the randomisation figures
    and the positive control."""
    from . import explain, explain_checks
    s = explain_checks.summary(rows)
    report = {"default": explain.DEFAULT_METHOD, "galaxies": galaxies, "galaxies_are": "held out",
              "question": question}
    for method, r in s.iterrows():
        report[method] = {
            "passes": float(r.passes),
            "checks": {**{f"{t}_{level}": float(r[f"{t}_{level}_beats"]) for level in explain_checks.LEVELS
                          for t in explain_checks.TESTS}, "randomisation": float(r.randomisation_passes)},
            "randomisation": {"spearman_as_drawn": float(r["spearman_as_drawn_full mean"]),
                              "spearman_abs": float(r["spearman_full mean"]),
                              "spearman_signed": float(r["spearman_signed_full mean"]),
                              "ssim_abs": float(r["ssim_full mean"])},
            "seconds_per_galaxy": float(r["seconds mean"])}
        if method in controls:
            report[method]["positive_control"] = {
                f: {"galaxies": len(c), "share": float(c.share.mean()) if len(c) else None,
                    "random_share": float(c.random_share.mean()) if len(c) else None,
                    "beats": float(c.beats.mean()) if len(c) else None,
                    "passes": bool(len(c) and c.beats.mean() >= explain_checks.CONTROL_BEATS)}
                for f, c in controls[method].items()}
    return report


def _print_galaxy_checks(args, found: dict) -> None:
    """`gz explain-check --galaxy`: each method's checks step by step, or one JSON object."""
    from . import explain
    if args.json:
        print(json.dumps({"default": explain.DEFAULT_METHOD, "galaxy": args.galaxy, **{
            m: {"answer": c.attribution.answer, "passes": c.passes, "failures": c.failures,
                "curves": {f"{k.test}_{k.level}": {"area": k.area, "random_area": k.random_area,
                                                   "beats_random": k.beats_random} for k in c.curves},
                "randomisation": {"spearman_abs": c.randomisation.full, "spearman_signed": c.randomisation.full_signed,
                                  "ssim_abs": c.randomisation.full_ssim}} for m, c in found.items()}}, indent=1))
        return
    for method, c in found.items():
        r = c.randomisation
        print(f"\n{method}, galaxy {args.galaxy}, {c.attribution.answer} ({c.seconds:.1f} s)\n{c.verdict()}\n")
        print(_table([(f"{depth:.0%} ({name})", float(a), float(sg), float(ss)) for depth, name, a, sg, ss in
                      zip(r.depth, ("none", *r.layers), r.spearman_abs, r.spearman_signed, r.ssim)],
                     ("randomised, head to input", "Spearman |map|", "signed", "SSIM |map|")) + "\n")
        print(_table([(k.name, k.area, k.random_area, "yes" if k.beats_random else "NO") for k in c.curves],
                     ("removal test", "area, map's order", "random orders'", "beats random")))


def cmd_lr_find(args):
    found = train.lr_find(args.data, _train_config(args, "lr-find"))
    print(f"suggested peak learning rate: {found['suggestion']:.2e}  (use with gz train --lr; "
          f"{len(found['lrs'])} batches, {_ran_on(found)})")
    _skipped(found["skipped"])


def add_data_options(sp: argparse.ArgumentParser, with_checkpoint: bool = False) -> None:
    """--data and --skip-bad; with a checkpoint, --checkpoint and --no-tta too."""
    sp.add_argument("--data", required=True, type=Path,
                    help="Kaggle-layout folder or folder of images (gz predict also: one image file, "
                    "JPEG, PNG or FITS, or a text file listing image paths, one per line)")
    if with_checkpoint:
        sp.add_argument("--checkpoint", type=Path, default=None,
                        help=f"model file (default: the shipped {checkpoint.DEFAULT_NAME})")
        sp.add_argument("--no-tta", action="store_true",
                        help="skip 8-view test-time augmentation (8x faster, slightly worse)")
    sp.add_argument("--skip-bad", action="store_true",
                    help="skip unreadable images / rows without an image and report them")


def add_train_options(t: argparse.ArgumentParser) -> None:
    """The options of a training run, shared by `gz train` and `gz lr-find`; defaults are
    TrainConfig's."""
    default = train.TrainConfig()
    t.add_argument("--data", required=True, type=Path, action="append",
                   help="image folder: Kaggle layout, or any folder of <id>.jpg/.png/.fits; repeat "
                   "--data to train on several at once (the split is per galaxy, so it never moves)")
    t.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images / rows without an image and report them")
    t.add_argument("--labels", type=Path, help="CSV of other targets: first column the image id, "
                   "then the columns named by --target (without it: the folders' Kaggle answers; "
                   "absent answer columns and empty cells are unknown)")
    t.add_argument("--target", action="append", metavar="COLUMN",
                   help="a column of --labels to learn: numbers train a regression (repeat for "
                   "several), one column of class names a classifier")
    t.add_argument("--units", action="append", metavar="UNIT",
                   help="the --target's units, kept in the checkpoint and shown with its values (one "
                   "per --target; default: the header's, e.g. 'oh_p50 [dex]' gives dex)")
    t.add_argument("--classes", action="store_true",
                   help="read the one --target column's values as class names even when they are "
                   "numbers (0, 1, 2): train a classifier")
    t.add_argument("--init", type=Path, metavar="CKPT", help="fine-tune: start from this checkpoint's "
                   "backbone (of an ensemble, its best member) with a new head for the targets; "
                   "its crop and input size are used")
    t.add_argument("--backbone-lr", type=float, default=default.backbone_lr,
                   help=f"with --init: the backbone's learning rate relative to the head's (default "
                   f"{default.backbone_lr:g}; 0 freezes it, 1 trains all alike)")
    t.add_argument("--model", default=default.model, choices=list(models.BACKBONES),
                   help=f"architecture (default: {default.model}, fast on CPU)")
    t.add_argument("--width", type=int, help="channels of the first stage, for dieleman (24) and "
                   "xresnet (32); wider learns more per epoch but runs fewer epochs")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall-clock budget; the schedule follows it")
    budget.add_argument("--epochs", type=int, default=default.epochs,
                        help=f"passes over the data (default {default.epochs})")
    t.add_argument("--lr", type=float, default=default.lr,
                   help=f"peak learning rate (default {default.lr:g})")
    t.add_argument("--batch-size", type=int, default=default.batch_size,
                   help="default: 64 on a CPU; 1024 on a GPU, with the peak lr scaled 4x (sqrt)")
    t.add_argument("--subset", type=int, help="train on only N galaxies (quick experiments)")
    t.add_argument("--val-fraction", type=float, default=default.val_fraction,
                   help=f"held-out share (default {default.val_fraction:g})")
    t.add_argument("--seed", type=int, default=default.seed,
                   help="validation split, weights and batch order")
    t.add_argument("--init-seed", type=int, help="weights and batch order only: train ensemble "
                   "members on the same split (see gz ensemble)")
    t.add_argument("--crop", default=default.preprocess.crop, choices=list(data.CROP_FIELDS),
                   help="roi (default): a square around the central galaxy, padded 1.25x and at least "
                   "160 of the 424 px, so small galaxies fill more of the input; centre: the "
                   "central 232 px")
    t.add_argument("--grayscale", action="store_true", help="train on luminance only")
    t.add_argument("--input-size", type=int, help=f"model input in pixels, over the same field "
                   f"(default {default.input_size}: fast on CPU; 64 for long runs)")
    t.add_argument("--augment", default=default.augment, choices=list(augment.POLICIES),
                   help="dihedral (default): random crop in one of the 8 flips/rotations, exact "
                   "pixels; affine: any-angle rotation, flips, shifts and zoom (bilinear)")
    t.add_argument("--device", default=default.device, help="auto, cpu or cuda")
    t.add_argument("--precision", default=default.precision, choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 on a GPU or a CPU with bf16 instructions, else fp32 "
                   "(the run prints what it used; GZ_CPU_BF16=1|0 overrides the CPU detection)")
    t.add_argument("--threads", type=int, default=default.threads,
                   help="torch CPU threads for the run (default: the cores other processes leave free, "
                   "measured each epoch; a busy core costs two threads far more than one)")
    t.add_argument("--patience", type=int, help="stop after N epochs without improvement")
    t.add_argument("--swa", type=float, default=default.swa, metavar="FRACTION",
                   help="stochastic weight averaging: average the weights of the epochs in the run's last "
                   "FRACTION (e.g. 0.25), kept when that beats the best epoch (default off; --resume "
                   "restarts the average)")
    t.add_argument("--no-tta", action="store_true", help="skip the final 8-view TTA score")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA graphs on "
                   "a GPU): a minute or so of compiling, then faster steps; for long runs")


def add_storage_options(sp: argparse.ArgumentParser, default: str) -> None:
    """--half / --int8: how a written checkpoint stores its weights (`checkpoint.stored_weights`)."""
    stored = sp.add_mutually_exclusive_group()
    stored.add_argument("--half", dest="storage", action="store_const", const="float16",
                        default=default, help="store float16 weights: half the file size; the "
                        "scores shown are the stored weights'" + (" (the default)" if default == "float16" else ""))
    stored.add_argument("--int8", dest="storage", action="store_const", const="int8",
                        help="store conv and linear weights as int8 with a scale per output "
                        "channel: a quarter of the file size; the scores shown are the stored "
                        "weights'")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gz", description="Galaxy Zoo 2 morphology: train CNNs that answer the 11-question "
        "decision tree, score them against the crowd, and predict new galaxies.",
        epilog="A data folder is in the Kaggle 'Galaxy Challenge' layout: images_training_rev1/"
               "<GalaxyID>.jpg + training_solutions_rev1.csv (labels), or images_test_rev1/. "
               "Try: gz synth --n 1000 --out demo && gz train --data demo --minutes 2 --out demo.pt")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    default_train = train.TrainConfig()

    s = sub.add_parser("synth", help="write a synthetic universe in the Kaggle layout")
    s.add_argument("--n", type=int, default=1000, help="number of galaxies (default 1000)")
    s.add_argument("--out", required=True, type=Path, help="folder to write")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same galaxies)")
    s.add_argument("--format", choices=("jpg", "fits"), default="jpg",
                   help="jpg: colour cutouts (default); fits: g, r, i flux cubes before the stretch")
    s.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train a model; writes the best checkpoint as it goes")
    add_train_options(t)
    t.add_argument("--out", required=True, type=Path, help="checkpoint to write (.pt)")
    t.add_argument("--resume", action="store_true", help="continue a stopped or killed run from its "
                   "last finished epoch (kept beside --out as NAME.pt.resume until the run ends), as if "
                   "never stopped; or, without that file, from --out")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out (without it, or "
                   "--resume, an existing checkpoint is never written over)")
    t.set_defaults(func=cmd_train)

    en = sub.add_parser("ensemble", help="average trained checkpoints into one, scored on their "
                        "shared validation split")
    en.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT",
                    help="two or more checkpoints trained on --data with the same split")
    en.add_argument("--data", required=True, type=Path, help="the Kaggle-layout folder they trained on")
    en.add_argument("--out", required=True, type=Path, help="ensemble checkpoint to write (.pt)")
    add_storage_options(en, default="float32")
    en.set_defaults(func=cmd_ensemble)

    sh = sub.add_parser("shrink", help="re-store a checkpoint for shipping: weights only, float16 or "
                        "int8, re-scored as stored on its validation split")
    sh.add_argument("checkpoint", type=Path, metavar="CKPT", help="a tree model's checkpoint (gz train, "
                    "gz distill or gz ensemble)")
    sh.add_argument("--data", required=True, type=Path, help="the Kaggle-layout folder it was scored on")
    sh.add_argument("--out", required=True, type=Path, help="checkpoint to write (.pt)")
    add_storage_options(sh, default="float16")
    sh.set_defaults(func=cmd_shrink)

    e = sub.add_parser("evaluate", help="RMSE overall and per question, beside the baselines")
    add_data_options(e, with_checkpoint=True)
    e.add_argument("--labels", type=Path, help="CSV of the model's targets (first column the image "
                   "id), for a model trained with gz train --labels; or Kaggle answers kept elsewhere")
    e.add_argument("--all", action="store_true",
                   help="score every labelled galaxy (default: the checkpoint's validation split)")
    e.add_argument("--out", type=Path, help="also write the predictions table (CSV)")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("compare", help="two models side by side on the galaxies neither trained on: RMSE "
                       "per question and answer with bootstrap intervals, and where they disagree most")
    c.add_argument("a", type=Path, metavar="A.pt", help="the first checkpoint")
    c.add_argument("b", type=Path, metavar="B.pt", help="the second checkpoint (same outputs as A)")
    c.add_argument("--data", required=True, type=Path, help="a labelled Kaggle-layout folder")
    c.add_argument("--labels", type=Path, help="CSV of the models' targets (first column the image id), "
                   "for models trained with gz train --labels; or Kaggle answers kept elsewhere")
    c.add_argument("--no-tta", action="store_true", help="skip 8-view test-time augmentation (8x faster)")
    c.add_argument("--top", type=int, default=10, help="disagreeing galaxies to list (default 10)")
    c.add_argument("--out", type=Path, help="also write the scores (overall, per question, per answer) "
                   "as CSV")
    c.set_defaults(func=cmd_compare)

    pr = sub.add_parser("predict", help="write a Kaggle submission CSV for a folder of images (or one image: "
                           "its answers printed too)")
    add_data_options(pr, with_checkpoint=True)
    pr.add_argument("--out", required=True, type=Path, help="CSV to write, or NAME.parquet: a folder of "
                    "Parquet parts, streamed in shards, resumable, split across torchrun's ranks")
    pr.add_argument("--uncertainty", action="store_true",
                    help="add a '<column> spread' column per output: the standard deviation of the "
                    "predictions averaged into it (an ensemble's members and the 8 TTA views)")
    pr.add_argument("--embedding", action="store_true",
                    help="add the model's unit feature vector of each galaxy (Parquet output only)")
    pr.add_argument("--shard", type=int, default=survey.SHARD,
                    help=f"images per Parquet part (default {survey.SHARD})")
    pr.add_argument("--device", default="cpu", help="cpu (default), cuda or auto (Parquet output only)")
    pr.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: one per core); on a machine other work keeps "
                    "busy, 1 per busy core fewer (two threads waiting on a taken core cost ~3x)")
    pr.add_argument("--pixel-scale", type=_pixel_scale, default=None, metavar="ARCSEC",
                    help="the pixel scale (arcsec per pixel) of the JPEG or PNG image, or of every one "
                    "in the folder or list: each is then rescaled by its galaxy's measured size to the "
                    "framing the model learnt (a Galaxy Zoo 2 cutout's); without it a picture is "
                    "cropped as it is (with a warning for one image, or a folder for a model framed "
                    "otherwise). FITS use their WCS")
    pr.set_defaults(func=cmd_predict)

    d = sub.add_parser("distill", help="train one student on a teacher's answers (with TTA) over "
                       "every image of --data, labelled or not; the crowd's answers mixed in where known")
    d.add_argument("teacher", type=Path, metavar="TEACHER", help="the teacher checkpoint (e.g. an "
                   "ensemble); the student reads its crops and keeps its validation split")
    add_train_options(d)
    d.add_argument("--crowd-weight", type=float, default=default_train.crowd_weight,
                   help="where the crowd's answer is known, the target is this x it + the rest x the "
                   f"teacher's (default {default_train.crowd_weight}); elsewhere the teacher's alone")
    d.add_argument("--teacher-no-tta", action="store_true",
                   help="the teacher answers from one view instead of the mean of its 8 TTA views")
    d.add_argument("--out", required=True, type=Path, help="student checkpoint to write (.pt)")
    d.add_argument("--resume", action="store_true", help="continue a stopped or killed run, as gz "
                   "train --resume does")
    d.add_argument("--overwrite", action="store_true", help="replace an existing --out, as gz train "
                   "--overwrite does")
    d.set_defaults(func=cmd_distill)

    at = sub.add_parser("atlas", help="write a 2-D map of the model's embedding of every galaxy "
                        "(GalaxyID,x,y), as the dashboard's Atlas draws it")
    add_data_options(at)
    at.add_argument("--checkpoint", type=Path, default=None,
                    help=f"model file (default: the shipped {checkpoint.DEFAULT_NAME})")
    at.add_argument("--method", choices=("umap", "pca"), default="umap",
                    help="umap (default): keeps neighbourhoods, a minute or so the first time, then "
                    "cached; pca: the embedding's two main axes, instant")
    at.add_argument("--out", required=True, type=Path, help="CSV to write: GalaxyID,x,y")
    at.set_defaults(func=cmd_atlas)

    ca = sub.add_parser("catalog", help="prepare a server: compute once, into the cache, everything the "
                        "dashboard shows for a data folder and a model (predictions, embeddings, oddness, maps)")
    add_data_options(ca)
    ca.add_argument("--checkpoint", type=Path, default=None,
                    help=f"model file (default: the shipped {checkpoint.DEFAULT_NAME})")
    ca.add_argument("--labels", type=Path, default=None,
                    help="a labels CSV chosen on Home (first column: the image id), if the dashboard uses one")
    ca.add_argument("--maps", nargs="*", choices=("pca", "umap"), default=["pca", "umap"],
                    help="Atlas maps to compute (default: pca umap; UMAP takes a minute or so)")
    ca.set_defaults(func=cmd_catalog)

    od = sub.add_parser("oddballs", help="write the galaxies least like the others in the model's embedding "
                        "(GalaxyID,score,rank), as the dashboard's Oddballs page ranks them")
    add_data_options(od)
    od.add_argument("--checkpoint", type=Path, default=None,
                    help=f"model file (default: the shipped {checkpoint.DEFAULT_NAME})")
    od.add_argument("--top", type=int, default=50, help="how many of the oddest to write (default 50)")
    od.add_argument("--out", required=True, type=Path, help="CSV to write: GalaxyID,score,rank")
    od.set_defaults(func=cmd_oddballs)

    ec = sub.add_parser("explain-check", help="can an attribution map be trusted? removal (deletion, insertion, "
                        "ROAD), model randomisation and a positive control, for one galaxy or over held-out galaxies")
    ec.add_argument("--data", required=True, type=Path, help="Kaggle-layout folder or folder of images")
    ec.add_argument("--checkpoint", type=Path, default=None,
                    help=f"model file (default: the shipped {checkpoint.DEFAULT_NAME})")
    which = ec.add_mutually_exclusive_group(required=True)
    which.add_argument("--galaxy", type=int, help="check this GalaxyID's maps, step by step")
    which.add_argument("--held-out", type=int, metavar="N", help="summarise the checks over the checkpoint's "
                       "first N held-out galaxies by GalaxyID (each its top answer to --question)")
    ec.add_argument("--method", nargs="+", default=None, help="attribution method(s), or all: saliency, gradcam, "
                    "smoothgrad, integrated_gradients, occlusion (default: the one Explain shows first)")
    ec.add_argument("--question", type=int, default=1, help="the tree's question (default 1)")
    ec.add_argument("--answer", default=None, help="with --galaxy: the answer's column, e.g. Class1.2 "
                    "(default: the model's top answer)")
    ec.add_argument("--weighted", action="store_true", help="explain the weighted answer, not P(answer | asked)")
    ec.add_argument("--control", type=int, default=20, metavar="N", help="with --held-out: positive control on N "
                    "synthetic galaxies per feature (bar, arms) that the model finds (default 20; 0 skips it)")
    ec.add_argument("--json", action="store_true", help="print one JSON object: \"default\" names the method "
                    "Explain shows first, and each method checked has \"passes\", the share of galaxies passing "
                    "every check")
    ec.set_defaults(func=cmd_explain_check)

    lf = sub.add_parser("lr-find", help="learning-rate range test, with gz train's options")
    add_train_options(lf)
    lf.set_defaults(func=cmd_lr_find)

    from . import serve  # gz serve: the dashboard as several Streamlit processes behind nginx (gzcore/serve.py)
    sv = sub.add_parser("serve", help="run the dashboard as several Streamlit processes behind nginx (sticky "
                        "sessions, websockets carried): one port for many visitors")
    sv.add_argument("--processes", type=int, default=2, help="Streamlit processes (default 2; each runs its "
                    "pages on one core, so about one per core the pages may use)")
    sv.add_argument("--port", type=int, default=8501, help="the port visitors open (default 8501)")
    sv.add_argument("--data", type=Path, help="the data folder every process opens (GZ_DATA; default: the "
                    "synthetic universe)")
    sv.add_argument("--checkpoint", type=Path, help="the model every process loads (GZ_CHECKPOINT; default: "
                    "the shipped one)")
    sv.add_argument("--public", action="store_true", help="a public demo (GZ_PUBLIC=1) listening on every "
                    "interface; without it, on this machine only")
    sv.add_argument("--base-url-path", default="", metavar="PATH", help="serve under http://HOST:PORT/PATH/ "
                    "(Streamlit's server.baseUrlPath), e.g. /gz beside another site")
    sv.set_defaults(func=serve.command)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    shown = warnings.showwarning

    def show(message, category, *rest, **named):  # an InputWarning as one line of gz's own
        if issubclass(category, data.InputWarning):
            print(f"gz {args.command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *rest, **named)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", data.InputWarning)  # each message once
            warnings.showwarning = show
            args.func(args)
    except (data.DataError, checkpoint.CheckpointError) as e:
        message = str(e)
    except OSError as e:  # a file that cannot be read or written: its path and why
        message = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    else:
        return 0
    print(f"gz {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
