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
beside a busy process (a pure-Python loop, as a user's other work), images/s over the run's epochs."""

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
    rates = {}
    for name, command, threads in (("one process, 2 threads", _gz, 2), ("torchrun, 2 ranks x 1 thread", _torchrun, 1)):
        out = ctx.scratch / f"train-{threads}.pt"
        _run(command(*train, "--threads", threads, "--out", out), ctx.cache)
        rates[name] = _train_rate(out)
        rows.append(Row(f"gz train --minutes {minutes:g} (default recipe), {name}", rates[name], "images/s"))
    quiet = rates["one process, 2 threads"]
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}  # OpenMP threads sleep instead of spinning while they wait
    out = ctx.scratch / "quiet-passive.pt"
    _run(_gz(*train, "--threads", 2, "--out", out), ctx.cache, **passive)
    rows.append(Row("the same, one process, 2 threads, OMP_WAIT_POLICY=PASSIVE", _train_rate(out), "images/s",
                    ratio=_train_rate(out) / quiet))
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        for threads, env in ((2, {}), (2, passive), (1, {})):
            out = ctx.scratch / f"busy-{threads}-{len(env)}.pt"
            _run(_gz(*train, "--threads", threads, "--out", out), ctx.cache, **env)
            rate = _train_rate(out)
            policy = ", OMP_WAIT_POLICY=PASSIVE" if env else ""
            rows.append(Row(f"the same beside a busy process (a pure-Python loop), --threads {threads}{policy}",
                            rate, "images/s", ratio=rate / quiet))
    finally:
        busy.kill()
    return rows
