"""Training runs in a background thread, and the checkpoints runs leave behind.

A `Run` wraps `train.fit` so that a user interface can start it, poll it (its events are recorded
as they arrive) and stop it, without ever touching the model being trained. Its thread runs at a
lower scheduling priority (`NICE`), so that the pages of a server it shares stay responsive.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import checkpoint, data, targets, train

NICE = 10  # the training thread's niceness: the CPU goes to the pages first


@dataclass
class Run:
    data_dir: Path
    config: train.TrainConfig
    out: Path                                   # checkpoint the run writes
    events: list = field(default_factory=list)  # (event, info) as train.fit reports them
    stop: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    result: dict | None = None
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None

    def start(self) -> "Run":
        self.thread = threading.Thread(target=self._work, name=f"train {self.out.name}", daemon=True)
        self.thread.start()
        return self

    def _work(self):
        if hasattr(os, "setpriority"):  # Linux: a thread's id is a schedulable task of its own
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        try:
            result = train.fit(self.data_dir, self.config, out=self.out, stop=self.stop,
                               callback=lambda event, info: self.events.append((event, info)))
            self.result = {k: v for k, v in result.items() if k != "model"}  # keep no live model
        except (data.DataError, checkpoint.CheckpointError) as e:
            self.error = str(e)
        except Exception as e:  # a UI must show any failure, not lose it in a thread
            self.error = f"{type(e).__name__}: {e}"

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def progress(self) -> float:
        """Fraction of the run done, from the latest step (0 while the data is prepared)."""
        steps = [info for event, info in self.events if event == "step"]
        return 1.0 if self.result else min(steps[-1]["progress"], 1.0) if steps else 0.0

    def status(self) -> str:
        if self.error:
            return f"failed: {self.error}"
        if self.result:
            stopped = " (stopped early)" if self.stop.is_set() else ""
            return (f"done{stopped}: best validation RMSE {self.result['val_rmse']:.4f} "
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

    def steps(self) -> pd.DataFrame:
        """One row per batch: step, epoch, progress, loss and its square root (the RMSE scale)."""
        rows = [info for event, info in self.events if event == "step"]
        df = pd.DataFrame(rows, columns=["epoch", "progress", "loss"])
        df.insert(0, "step", range(1, len(df) + 1))
        df["rmse"] = df["loss"].clip(lower=0) ** 0.5
        return df

    def epochs(self) -> pd.DataFrame:
        """One row per finished epoch: train_rmse, val_rmse, best_val_rmse, seconds."""
        rows = [info for event, info in self.events if event == "epoch"]
        return pd.DataFrame(rows, columns=["epoch", "train_rmse", "val_rmse", "best_val_rmse", "seconds"])


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
