"""Training runs in a background process, and the checkpoints runs leave behind.

A `Run` wraps `train.fit` so that a user interface can start it, poll it (its events are recorded
as they arrive) and stop it, without ever touching the model being trained. The run is a process of
its own at a lower scheduling priority (`NICE`), ending with the server: in a thread it held the
server's interpreter lock for its Python work, which no priority lowers, and the pages of a server
it shared waited on it (docs/RELIABILITY.md, "Load").
"""
from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import checkpoint, data, targets, train

NICE = 10  # the training process's niceness: the CPU goes to the pages first
# The Train page's defaults. A quick look at the tree: 3 epochs on 256 galaxies. A first model of a
# labels CSV's targets (a few hundred labels, one thread): the default small model from scratch for
# 4 minutes, batches of 32, a quarter held out, so that ~100 galaxies score it. Chosen from issue
# 14's measurements before the app's run was (docs/BENCHMARKS.md, notes: metallicity from 400 SDSS
# images, 0.095 dex in 5 minutes from scratch, 0.101 fine-tuned).
QUICK_TREE = train.TrainConfig(epochs=3, subset=256)
FIRST_TARGET = train.TrainConfig(minutes=4.0, val_fraction=0.25, batch_size=32)
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: none of the server's threads or locks


def _train(data_dir, config, out, stop, messages) -> None:
    """The run's process: train.fit at NICE, its events as they come, then ("result", …) or
    ("error", message) on `messages`."""
    data.die_with_parent(os.getppid())
    os.nice(NICE)
    try:
        result = train.fit(data_dir, config, out=out, stop=stop,
                           callback=lambda event, info: messages.put(("event", (event, info))))
        messages.put(("result", {k: v for k, v in result.items() if k != "model"}))  # no live model
    except (data.DataError, checkpoint.CheckpointError) as e:
        messages.put(("error", str(e)))
    except Exception as e:  # a UI must show any failure, not lose it in a process
        messages.put(("error", f"{type(e).__name__}: {e}"))


@dataclass
class Run:
    data_dir: Path
    config: train.TrainConfig
    out: Path                                   # checkpoint the run writes
    events: list = field(default_factory=list)  # (event, info) as train.fit reports them
    stop: object = field(default_factory=SPAWN.Event)  # set() asks the run to stop after its batch
    error: str | None = None
    result: dict | None = None
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None  # listens to the run's process; ends when the run does

    def start(self) -> "Run":
        messages = SPAWN.Queue()
        process = SPAWN.Process(target=_train, args=(self.data_dir, self.config, self.out, self.stop, messages),
                                name=f"train {self.out.name}")  # not a daemon: it starts decode workers
        process.start()
        atexit.register(process.terminate)  # the server's exit would otherwise wait for the run
        self.thread = threading.Thread(target=self._listen, args=(process, messages), daemon=True,
                                       name=f"train {self.out.name}")
        self.thread.start()
        return self

    def _listen(self, process, messages) -> None:
        """Record the process's events, then its result or error (or its death without one)."""
        while True:
            try:
                kind, value = messages.get(timeout=1)
            except queue.Empty:
                if not process.is_alive():  # killed, or out of memory: no word from it
                    self.error = f"the training process ended without a result (exit code {process.exitcode})"
                    break
                continue
            if kind == "event":
                self.events.append(value)
                continue
            self.result, self.error = (value, None) if kind == "result" else (None, value)
            break
        process.join()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def progress(self) -> float:
        """Fraction of the run done, from the latest step (0 while the data is prepared)."""
        steps = [info for event, info in self.events if event == "step"]
        return 1.0 if self.result else min(steps[-1]["progress"], 1.0) if steps else 0.0

    def seconds_left(self) -> float | None:
        """An estimate of the time the run has to go: by its time budget (config.minutes), else by its
        pace so far; 0 once it ended, None before its first step without a budget."""
        if not self.running:
            return 0.0
        progress = self.progress
        if self.config.minutes:
            return self.config.minutes * 60 * (1 - progress)
        return (time.time() - self.started) * (1 - progress) / progress if progress > 0 else None

    def status(self) -> str:
        if self.error:
            return f"failed: {self.error}"
        if self.result:
            stopped = " (stopped early)" if self.stop.is_set() else ""
            unit = self.result["task"].shared_unit if "task" in self.result else ""
            return (f"done{stopped}: best validation RMSE {self.result['val_rmse']:.4f}{' ' + unit if unit else ''} "
                    f"({self.result['device']}, {self.result['precision']})")
        if self.stop.is_set():
            return "stopping after the current batch…"
        kinds = [event for event, _ in self.events]
        if "step" not in kinds:
            if "teacher" in kinds:
                done = [info for event, info in self.events if event == "teacher"][-1]
                views = "8 views each" if self.config.teacher_tta else "one view"
                return f"the teacher answers ({done['done']}/{done['total']} galaxies, {views})"
            done = [info for event, info in self.events if event == "data"]
            return f"preparing data ({done[-1]['done']}/{done[-1]['total']} crops)" if done else "starting…"
        return f"training: {self.progress:.0%} after {time.time() - self.started:.0f} s"

    @property
    def task(self) -> targets.Task | None:
        """What the run learns, fitted to its training rows (None until its data is prepared)."""
        found = [info["task"] for event, info in self.events if event == "task"]
        return found[-1] if found else None

    @property
    def _loss_scale(self) -> float:
        """The factor from the loss's root to the labels' units (`Task.loss_scale`), else 1."""
        return (self.task and self.task.loss_scale) or 1.0

    def steps(self) -> pd.DataFrame:
        """One row per batch: step, epoch, progress, loss and its square root (the RMSE scale, in the
        labels' units where `Task.loss_scale` gives them)."""
        rows = [info for event, info in self.events if event == "step"]
        df = pd.DataFrame(rows, columns=["epoch", "progress", "loss"])
        df.insert(0, "step", range(1, len(df) + 1))
        df["rmse"] = df["loss"].clip(lower=0) ** 0.5 * self._loss_scale
        return df

    def epochs(self) -> pd.DataFrame:
        """One row per finished epoch: train_rmse (in the labels' units as `steps`' rmse), val_rmse
        (in them), best_val_rmse, seconds."""
        rows = [info for event, info in self.events if event == "epoch"]
        df = pd.DataFrame(rows, columns=["epoch", "train_rmse", "val_rmse", "best_val_rmse", "seconds"])
        df["train_rmse"] *= self._loss_scale
        return df


def run_path(runs_dir, config: train.TrainConfig) -> Path:
    """Where a new run's checkpoint goes: runs_dir/<date-time>-<model>.pt."""
    return Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.model}.pt"


def describe(path) -> dict:
    """Name, architecture, metrics, training data size and task (what it predicts) of a checkpoint,
    for pickers.
    Raises CheckpointError for files that are not gzcore checkpoints."""
    ckpt = checkpoint.read(path)
    m = ckpt.get("metrics") or {}
    return {"path": str(path), "name": Path(path).name, "model": ckpt["model_config"].get("name"),
            "val_rmse": m.get("val_rmse", math.nan), "epochs": m.get("epochs"),
            "train_images": m.get("train_images"), "task": targets.of_checkpoint(ckpt)}


def checkpoints(*folders) -> list[Path]:
    """The .pt files of the folders that exist, newest first."""
    found = [p for f in folders if Path(f).is_dir() for p in Path(f).glob("*.pt")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
