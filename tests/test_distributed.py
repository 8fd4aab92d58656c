"""`gz train` under torchrun: 2 CPU processes (gloo) on this machine's loopback, each training on
its share of every epoch with DistributedDataParallel; rank 0 reports and writes an ordinary
checkpoint; resume and time budgets work across ranks."""
import os
import subprocess
import sys

import pytest
from conftest import TINY, tiny_cli

from gzcore import checkpoint, evaluate


def torchrun(*args):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "gzcore.cli", *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_thread_each(epochs):
    """TINY's options for `gz train`, one thread per rank."""
    options = tiny_cli(epochs)
    options[options.index("--threads") + 1] = "1"
    return options


@pytest.mark.slow
def test_two_ranks_train_one_ordinary_checkpoint(synth_dir, tmp_path):
    out = tmp_path / "ddp.pt"
    r = torchrun("train", "--data", synth_dir, *one_thread_each(2), "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("checkpoint:") == 1 and "x 2 ranks" in r.stdout  # rank 0 reports for both
    model, ckpt = checkpoint.load(out)  # an ordinary checkpoint: no DDP wrapper in its weights
    assert not any(k.startswith("module.") for k in ckpt["model"])
    metrics = ckpt["metrics"]
    assert metrics["ranks"] == 2 and metrics["epochs"] == 2
    per_rank = metrics["train_images"] // 2 // TINY.batch_size * TINY.batch_size
    assert [h["images"] for h in ckpt["history"]] == [2 * per_rank] * 2  # each rank its share of each epoch
    held = checkpoint.data_for(ckpt, synth_dir)
    pred = evaluate.predict(model, held.crops, ckpt["input_size"], index=held.val_idx)
    assert evaluate.rmse(pred, held.galaxies.labels[held.val_idx]) == pytest.approx(metrics["val_rmse"], abs=1e-6)


@pytest.mark.slow
def test_ranks_agree_when_the_time_budget_ends_and_resume_it(synth_dir, tmp_path):
    out = tmp_path / "timed.pt"
    options = ["--data", synth_dir, "--batch-size", 8, "--precision", "fp32", "--threads", 1, "--no-tta", "--out", out]
    r = torchrun("train", "--minutes", 0.05, *options)
    assert r.returncode == 0, r.stderr[-3000:]  # no rank waits for a step the other never takes
    first = checkpoint.read(out)["history"]
    assert len(first) >= 2 and first[-1]["seconds"] < 20, first[-1]
    r = torchrun("train", "--minutes", 0.1, "--resume", *options)  # three more seconds
    assert r.returncode == 0, r.stderr[-3000:]
    again = checkpoint.read(out)["history"]
    assert again[:len(first)] == first and len(again) > len(first) and again[-1]["seconds"] < 30, again[-1]
