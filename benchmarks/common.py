"""What every section shares: the row it reports, the run's context (data, scratch space, quick or
full), side-by-side repeats, timed training steps and the machine's description."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torchvision

from benchmarks import ROOT
from gzcore import checkpoint, data, models, train

DEFAULT = train.TrainConfig()  # the configuration `gz train` runs with no options


class Skip(Exception):
    """A section that cannot run here (no GPU, a module not written yet); the message says why."""


@dataclass
class Row:
    """One line of a section's table."""
    what: str
    ours: float | str
    unit: str = ""
    reference: float | str | None = None
    ratio: float | None = None   # > 1: ours is better by that factor (or, where the goal says so, growth)
    goal: str = ""
    met: bool | None = None


def compare(what: str, ours: list[float], reference: list[float], unit: str, goal: float | None = None,
            higher_is_better: bool = True) -> Row:
    """A row from paired repeats: the median of each side and the median of the per-repeat ratios
    (each ratio taken from two measurements made back to back, so load on the machine cancels)."""
    ratios = [o / r if higher_is_better else r / o for o, r in zip(ours, reference)]
    ratio = statistics.median(ratios)
    return Row(what, statistics.median(ours), unit, statistics.median(reference), ratio,
               f"≥ {goal:g}x" if goal else "", ratio >= goal if goal else None)


def interleave(measure: dict, repeats: int) -> dict[str, list[float]]:
    """Call each measurement once per repeat, reversing the order every other repeat so that drift in
    the machine's load falls on both sides alike. Returns each one's list of results."""
    results: dict[str, list[float]] = {name: [] for name in measure}
    names = list(measure)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(measure[name]())
    return results


def median_ms(fn, calls: int, warmup: int = 3) -> float:
    """Median wall time of `fn()` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


# ---------------------------------------------------------------- training steps


def prepared_from(crops: np.ndarray, labels: np.ndarray, val_fraction: float = 0.0) -> train.Prepared:
    """A `train.Prepared` over arrays rather than a folder (replicated data sets): gz train's split
    and statistics, with the row number standing in for the GalaxyID."""
    galaxies = data.GalaxySet(Path("."), np.arange(len(crops), dtype=np.int64), [], labels)
    return train.prepared(galaxies, crops, replace(DEFAULT, val_fraction=val_fraction), "replicated")


def timed_steps(prep: train.Prepared, cfg: train.TrainConfig, steps: int,
                validate: bool = False) -> list[float]:
    """Run `train.fit`'s own loop for `steps` batches and return the clock after each one. Without
    `validate` the validation set is emptied, so epochs are back to back."""
    stamps: list[float] = []
    stop = threading.Event()

    def callback(event, info):
        if event == "step":
            stamps.append(time.perf_counter())
            if len(stamps) >= steps:
                stop.set()
    if not validate:
        prep = replace(prep, val_idx=prep.val_idx[:0])
    train.fit(None, replace(cfg, tta=False), prepared=prep, callback=callback, stop=stop)
    return stamps


def images_per_s(stamps: list[float], warmup: int, batch_size: int) -> float:
    """Steady-state throughput: the steps after the first `warmup` ones."""
    return (len(stamps) - 1 - warmup) * batch_size / (stamps[-1] - stamps[warmup])


# ---------------------------------------------------------------- the run's context


def _sample_folder(src: Path, n: int, dest: Path) -> Path:
    """The first `n` labelled galaxies of `src` as a Kaggle-layout folder of symlinks (no copies)."""
    lines = (src / data.LABELS_FILE).read_text().splitlines()[:n + 1]
    images = dest / data.IMAGE_DIRS[0]
    images.mkdir(parents=True)
    (dest / data.LABELS_FILE).write_text("\n".join(lines) + "\n")
    for line in lines[1:]:
        name = line.split(",", 1)[0] + ".jpg"
        (images / name).symlink_to(src / data.IMAGE_DIRS[0] / name)
    return dest


def _sample_images(src: Path, n: int, dest: Path) -> Path:
    """The first `n` images of a folder, as a folder of symlinks."""
    dest.mkdir(parents=True)
    for path in sorted(src.iterdir())[:n]:
        (dest / path.name).symlink_to(path)
    return dest


@dataclass
class Context:
    """Where a run reads and writes, and how big it is."""
    data: Path          # labelled Kaggle-layout folder
    unlabelled: Path    # folder of unlabelled images (gz predict)
    quick: bool         # smoke run: every section shrunk to seconds
    repeats: int        # side-by-side repeats per comparison
    scratch: Path       # temporary folder, removed after the run

    @classmethod
    def create(cls, data_dir: Path, quick: bool, repeats: int, scratch: Path, images: int | None):
        data_dir = Path(data_dir)
        if not (data_dir / data.LABELS_FILE).is_file():
            raise SystemExit(f"{data_dir}: no {data.LABELS_FILE}; pass --data DIR (a Kaggle-layout "
                             f"folder such as ../shared/data/galaxy-zoo-2014) or set GZ_REAL_DATA")
        unlabelled = data_dir / data.IMAGE_DIRS[1]
        if images:
            data_dir = _sample_folder(data_dir, images, scratch / "labelled")
            unlabelled = _sample_images(unlabelled, images, scratch / "unlabelled")
        return cls(data_dir, unlabelled, quick, repeats, scratch)

    def pick(self, full, quick):
        return quick if self.quick else full

    @property
    def cache(self) -> Path:
        """The decoded-crop cache every section shares (GZ_CACHE for subprocesses)."""
        return self.scratch / "cache"

    @cached_property
    def prepared(self) -> train.Prepared:
        """The labelled folder as gz train prepares it (decoded once per run, untimed)."""
        return train.prepare(self.data, DEFAULT, cache_dir=self.cache)

    @cached_property
    def checkpoint(self) -> Path:
        """The shipped default model or, when none is shipped, a freshly initialised model of the
        default configuration (speed and memory do not depend on the weights)."""
        try:
            return checkpoint.default()
        except checkpoint.CheckpointError:
            return checkpoint.save(self.scratch / "untrained.pt", models.build(DEFAULT.model),
                                   preprocess=DEFAULT.preprocess, input_size=DEFAULT.input_size)

    @cached_property
    def model_note(self) -> str:
        if self.checkpoint.name != checkpoint.DEFAULT_NAME:
            return "untrained default model"
        config = checkpoint.read(self.checkpoint)["model_config"]
        members = config.get("members")
        return f"shipped ensemble of {len(members)}" if members else f"shipped {config['name']}"

    def replicated(self, n: int) -> tuple[Path, Path]:
        """(crops .npy, labels .npy) of `n` galaxies: the real crops repeated, as a memory-mapped
        cache of a data set of that size would be."""
        crops_path, labels_path = self.scratch / f"crops{n}.npy", self.scratch / f"labels{n}.npy"
        if not crops_path.is_file():
            crops, labels = self.prepared.crops, self.prepared.galaxies.labels
            out = np.lib.format.open_memmap(crops_path, "w+", np.uint8, (n, *crops.shape[1:]))
            for i in range(0, n, len(crops)):
                out[i:i + len(crops)] = crops[:n - i]
            out.flush()
            del out
            np.save(labels_path, np.resize(labels, (n, labels.shape[1])))
        return crops_path, labels_path

    def gz(self, *args: str, cache: Path | None = None) -> float:
        """Run `gz ARGS` (as `python -m gzcore.cli`) in a fresh process; its wall time in seconds."""
        env = {**os.environ, "GZ_CACHE": str(cache or self.cache)}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gzcore.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"gz {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return seconds


def machine() -> str:
    """CPU model, cores, GPU, torch version: one line."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    load = ", load average %.1f at start" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {cores} cores{gpu}; torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}, Python {platform.python_version()}{load}")
