"""Section 10: scale: `gz predict` to Parquet parts (memory flat in the number of images, images/s
per process), `gz train` on several processes under torchrun, and training on a shared CPU."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from gzcore import checkpoint, data

from .common import ROOT, Context, Row

TITLE = "Scale"
ABOUT = """\
`gz predict --out NAME.parquet` streams shards of 2,048 images (decode, predict, write a part), so
its memory should not grow with the number of images: a list of 1,000 image paths against one of
100,000 (the real sample's 7,197 images listed over and over), without TTA, each in a fresh process
with an empty cache folder; peak memory is the largest resident size of the process and its decode
workers (`os.wait4`). Throughput with 8-view TTA on the 6,000 labelled images: one process (2
threads) against `torchrun --nproc_per_node=2` (one thread each, gloo). Training: a 1-minute
`gz train` (the default recipe) in one process against two ranks under torchrun, and alone against
beside a busy process (a pure-Python loop, as a user's other work), images/s over the run's epochs;
ratio: against the first (quiet) training row."""

BUSY = "while True: pass"


# runs a command and reports the largest resident size among its process tree, in KB, on stderr
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(done.returncode)")


def _run(command: list[str], cache, **env) -> tuple[float, float, str]:
    """(seconds, peak resident MB of the process tree, stdout) of `command`, run in a fresh process
    with `env` added to the environment."""
    env = {**os.environ, "GZ_CACHE": str(cache), **env}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout


def _gz(*args) -> list[str]:
    return [sys.executable, "-m", "gzcore.cli", *map(str, args)]


def _torchrun(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "gzcore.cli", *map(str, args)]


def _train_rate(path) -> float:
    history = checkpoint.read(path)["history"]
    return sum(h["images"] for h in history) / history[-1]["seconds"]


def run(ctx: Context) -> list[Row]:
    rows = []
    images = sorted(ctx.unlabelled.iterdir()) + sorted((ctx.data / data.IMAGE_DIRS[0]).iterdir())
    for n in (ctx.pick(1_000, 200), ctx.pick(100_000, 2_000)):
        listing = ctx.scratch / f"list{n}.txt"
        listing.write_text("\n".join(str(images[i % len(images)]) for i in range(n)) + "\n")
        seconds, peak, _ = _run(_gz("predict", "--data", listing, "--checkpoint", ctx.checkpoint, "--no-tta",
                                    "--out", ctx.scratch / f"p{n}.parquet"), tempfile.mkdtemp(dir=ctx.scratch))
        rows.append(Row(f"gz predict → Parquet, no TTA, {n:,} listed images: peak memory · images/s "
                        f"(process start included)", f"{peak:,.0f} MB · {n / seconds:,.0f}"))
    labelled = ctx.data / data.IMAGE_DIRS[0]
    n = len(list(labelled.iterdir()))
    for name, command in (("one process, 2 threads", _gz), ("torchrun, 2 ranks x 1 thread", _torchrun)):
        out = ctx.scratch / f"tta-{len(rows)}.parquet"
        seconds, _, _ = _run(command("predict", "--data", labelled, "--checkpoint", ctx.checkpoint, "--out", out),
                             tempfile.mkdtemp(dir=ctx.scratch))
        rows.append(Row(f"gz predict → Parquet, 8-view TTA, {n:,} images, {name} ({ctx.model_note})",
                        n / seconds, "images/s"))
    minutes = ctx.pick(1.0, 0.1)
    train = ("train", "--data", ctx.data, "--minutes", minutes, "--no-tta")
    runs = [("one process, threads unpinned (the default)", _gz, (), False),
            ("torchrun, 2 ranks x 1 thread", _torchrun, ("--threads", 1), False),
            ("one process, threads unpinned (the default), beside a busy process", _gz, (), True),
            ("one process, --threads 2, beside a busy process", _gz, ("--threads", 2), True),
            ("one process, --threads 1, beside a busy process", _gz, ("--threads", 1), True)]
    quiet = None
    for k, (name, command, options, shared) in enumerate(runs):
        out = ctx.scratch / f"train-{k}.pt"
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if shared else None
        try:
            _run(command(*train, *options, "--out", out), ctx.cache)
        finally:
            if busy:
                busy.kill()
        rate = _train_rate(out)
        quiet = quiet or rate
        used = sorted({h["threads"] for h in checkpoint.read(out)["history"] if "threads" in h})
        rows.append(Row(f"gz train --minutes {minutes:g} (default recipe), {name} (threads used: "
                        f"{', '.join(map(str, used))})", rate, "images/s", ratio=rate / quiet))
    return rows
