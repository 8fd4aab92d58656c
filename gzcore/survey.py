"""Prediction at survey scale: any number of images, streamed in shards, written as Parquet parts,
resumable, and split across the ranks of `torchrun` (PyTorch's own launcher; gloo on CPUs, NCCL on
GPUs). No home-made cluster code: each rank takes every N-th shard, and a shard is one part file.

    <out>.parquet/            a folder, as Spark, Dask, DuckDB and Arrow read a data set
        _job.json             the checkpoint, options and image count the parts belong to
        part-000000.parquet   one shard: id, the answers (or targets) [, spread, embedding]
        ...

A part is written atomically (temporary file + rename) when its shard is done, so a run killed at
any point and restarted with the same command skips the finished parts and gives the same result.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from . import atomic, checkpoint, data, distributed, evaluate, neighbours, targets

SHARD = 2048  # images per part: a few seconds of work, a few MB of crops in memory
JOB_FILE = "_job.json"


@dataclass(frozen=True)
class Job:
    """What the parts of one output folder belong to: resuming with anything else is refused."""
    checkpoint: str      # the checkpoint file's SHA-1
    images: int
    shard: int
    tta: bool
    uncertainty: bool
    embedding: bool
    pixel_scale: float | None = None  # of JPEGs and PNGs (--pixel-scale)


def images_to_predict(source) -> data.GalaxySet:
    """The images of `source`: a folder (Kaggle layout or plain; see `data.images_of`) or a text
    file listing image paths, one per line (relative to the file's folder; ids from the names)."""
    source = Path(source)
    if source.is_dir():
        return data.images_of(source)
    if not source.is_file():
        raise data.DataError(f"{source}: no such folder or list of images")
    paths = []
    for number, line in enumerate(source.read_text().splitlines(), 1):
        if line.strip():
            path = Path(line.strip())
            path = path if path.is_absolute() else source.parent / path
            if data.image_stem(path) is None:
                raise data.DataError(f"{source}, line {number}: {line.strip()!r} is not an image file "
                                     f"(.jpg, .png, .fits …)")
            paths.append(path)
    if not paths:
        raise data.DataError(f"{source}: lists no images")
    return data.unlabelled(source.parent, paths)


def part_path(out: Path, shard: int) -> Path:
    return out / f"part-{shard:06d}.parquet"


def start(out: Path, job: Job) -> None:
    """Check the folder's job, or write it (atomically; ranks write the same): parts of another model
    or other options are never mixed."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / JOB_FILE
    if path.is_file():
        found = {"pixel_scale": None, **json.loads(path.read_text())}  # written before it: none
        if found != asdict(job):
            differs = [k for k in asdict(job) if found.get(k) != asdict(job)[k]]
            raise data.DataError(f"{out}: holds parts of another job (its {', '.join(differs)} differ); "
                                 f"write to a new --out, or delete it to start again")
        return
    with atomic.write(path) as f:
        f.write(json.dumps(asdict(job), indent=1).encode())


def decoding(pool, galaxies: data.GalaxySet, job: tuple, workers: int) -> list:
    """Futures of the crops of `galaxies` (`data.decode_chunk` jobs, a few per worker, `job` the
    rest of each: Preprocess, skip_bad, True, target, pixel_scale): a shard decodes while the one
    before it is predicted."""
    chunk = len(galaxies) // (4 * workers) + 1
    return [pool.submit(data.decode_chunk, (galaxies.paths[i:i + chunk], *job))
            for i in range(0, len(galaxies), chunk)]


def predict_shard(model, ckpt: dict, galaxies: data.GalaxySet, decoded: list, *, tta: bool,
                  uncertainty: bool, embedding: bool) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    """(the part's table, the images skipped, the images stretched or cut: `data.distortion`, those
    whose framing is in doubt) of one shard, from its `decoding` futures."""
    pp, task = checkpoint.preprocess_of(ckpt), targets.of_checkpoint(ckpt)
    crops, bad, odd, unframed = [], [], [], []
    for future in decoded:
        done, skipped, noted, doubted = future.result()
        crops += done
        bad += skipped
        odd += noted
        unframed += doubted
    keep = [k for k, crop in enumerate(crops) if crop is not None]
    crops = np.stack([crops[k] for k in keep]) if keep else np.zeros((0, pp.size, pp.size, pp.channels), np.uint8)
    size, device = ckpt["input_size"], next(model.parameters()).device
    found = evaluate.predict(model, crops, size, tta=tta, spread=uncertainty, device=device)
    raw, spread = found if uncertainty else (found, None)
    table = evaluate.predictions_table(galaxies.ids[keep], task.decode(raw), columns=task.columns,
                                       id_column="GalaxyID" if task.kind == "tree" else "id")
    if spread is not None:
        table[[f"{c} spread" for c in task.columns]] = task.decode_spread(spread)
    if embedding:
        table["embedding"] = list(neighbours.embed(model, crops, size, device=device))
    return table, bad, odd, unframed


def predict(model, ckpt: dict, ckpt_path, galaxies: data.GalaxySet, out, *, tta: bool = True,
            uncertainty: bool = False, embedding: bool = False, skip_bad: bool = False,
            shard: int = SHARD, workers: int | None = None, progress=None, pixel_scale: float | None = None) -> dict:
    """Predict every galaxy into Parquet parts under `out` (see the module's docstring) with `model`
    on its device: this rank's shards only, skipping parts already written; each shard's images
    decode in `workers` processes while the shard before is predicted; they end with this process,
    even one killed by SIGKILL (`data.die_with_parent`). A rank with no shard (more ranks than
    shards) writes nothing and succeeds. Returns {'rank', 'ranks', 'galaxies' (predicted here),
    'parts' (written here), 'resumed' (parts found done), 'skipped' (bad images)}. Each image is
    framed to the checkpoint's framing (JPEGs and PNGs at `pixel_scale` when given); images too small
    or too elongated for the crop are named in one `data.InputWarning`, those whose framing is in
    doubt in another."""
    out = Path(out)
    rank, world = distributed.rank(), distributed.world()
    start(out, Job(checkpoint.digest(ckpt_path), len(galaxies), shard, tta, uncertainty, embedding,
                   pixel_scale))  # every rank: the same job
    mine = [s for s in range(0, -(-len(galaxies) // shard)) if s % world == rank]
    todo = [s for s in mine if not part_path(out, s).is_file()]
    report = {"rank": rank, "ranks": world, "galaxies": 0, "parts": 0, "resumed": len(mine) - len(todo),
              "skipped": []}
    workers = workers or max(1, (os.cpu_count() or 1) // world)
    job = (checkpoint.preprocess_of(ckpt), skip_bad, True, checkpoint.framing_of(ckpt), pixel_scale)

    def shard_of(s):
        return galaxies.subset(np.arange(s * shard, min((s + 1) * shard, len(galaxies))))
    odd, unframed = [], []
    with ProcessPoolExecutor(workers, initializer=data.die_with_parent, initargs=(os.getpid(),)) as pool:
        upcoming = decoding(pool, shard_of(todo[0]), job, workers) if todo else []
        for done, s in enumerate(todo, 1):
            decoded = upcoming
            if done < len(todo):
                upcoming = decoding(pool, shard_of(todo[done]), job, workers)
            table, bad, noted, doubted = predict_shard(model, ckpt, shard_of(s), decoded, tta=tta,
                                                       uncertainty=uncertainty, embedding=embedding)
            odd += noted
            unframed += doubted
            path = part_path(out, s)
            with atomic.write(path) as f:
                table.to_parquet(f, index=False)
            report["galaxies"] += len(table)
            report["parts"] += 1
            report["skipped"] += bad
            if progress:
                progress(done, len(todo))
    if odd:
        data.warn(data.stretched_warning(odd))
    if unframed:
        data.warn(data.unframed_warning(unframed))
    distributed.barrier()  # every rank's parts written: a rank without shards judges them too
    nothing = not any(pq.read_metadata(part).num_rows for part in out.glob("part-*.parquet"))
    distributed.barrier()  # every rank has looked before any part is removed
    if nothing:  # every image skipped: no empty result that a rerun would take as done
        if rank == 0:
            for part in [*out.glob("part-*.parquet"), out / JOB_FILE]:
                part.unlink(missing_ok=True)
        raise data.DataError(f"{galaxies.root}: none of its {len(galaxies)} image(s) could be read, e.g. "
                             f"{(report['skipped'] or ['(skipped in an earlier run)'])[0]}; nothing written")
    return report


def read(out, columns=None) -> pd.DataFrame:
    """The predictions of an output folder as one table, in the images' order (small jobs, tests)."""
    return pd.read_parquet(Path(out), columns=columns)
