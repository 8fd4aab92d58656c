import math
import os
import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY

from gzcore import checkpoint, evaluate, train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device "
                                "(benchmarks/gpu_check.sh runs these on a GPU machine)")


@pytest.mark.slow
def test_fit_writes_a_loadable_checkpoint_and_reports(synth_dir, tmp_path):
    events = []
    out = tmp_path / "m.pt"
    result = train.fit(synth_dir, TINY, out=out, callback=lambda e, i: events.append(e),
                       cache_dir=tmp_path / "cache")  # a cold cache: decoding reports progress
    assert np.isfinite(result["val_rmse"]) and result["epochs"] == 2
    assert {"data", "step", "epoch", "done"} <= set(events)
    model, ckpt = checkpoint.load(out)
    assert ckpt["metrics"]["val_rmse"] == pytest.approx(result["val_rmse"])
    assert len(ckpt["history"]) == 2 and ckpt["data_fingerprint"]
    assert train.config_from_dict(ckpt["train_config"]) == TINY
    # normalisation statistics travel with the model
    assert not torch.allclose(model.mean, torch.zeros_like(model.mean))


@pytest.mark.slow
def test_training_is_seeded(synth_dir):
    cfg = replace(TINY, epochs=1)
    a = train.fit(synth_dir, cfg)["model"].state_dict()
    b = train.fit(synth_dir, cfg)["model"].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


@pytest.mark.slow
def test_resume_continues_where_it_stopped(synth_dir, tmp_path):
    out = tmp_path / "m.pt"
    cfg = replace(TINY, epochs=3)
    stop = threading.Event()
    train.fit(synth_dir, cfg, out=out, stop=stop, callback=lambda e, i: e == "epoch" and stop.set())
    assert len(checkpoint.read(out)["history"]) == 1
    result = train.fit(synth_dir, cfg, out=out, resume=True)
    assert result["epochs"] == 3 and [h["epoch"] for h in result["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_a_resumed_run_that_never_improves_keeps_the_best_weights(synth_dir, tmp_path):
    out = tmp_path / "m.pt"
    stop = threading.Event()
    train.fit(synth_dir, replace(TINY, epochs=3), out=out, stop=stop,
              callback=lambda e, i: e == "epoch" and stop.set())
    best = checkpoint.read(out)["metrics"]["val_rmse"]
    result = train.fit(synth_dir, replace(TINY, epochs=3, lr=50.0), out=out, resume=True)  # diverges
    assert [h["val_rmse"] > best for h in result["history"]] == [False, True, True]
    model, ckpt = checkpoint.load(out)
    assert result["val_rmse"] == ckpt["metrics"]["val_rmse"] == best
    held = checkpoint.data_for(ckpt, synth_dir)
    with train.torch_threads(TINY.threads):
        pred = evaluate.predict(model, held.crops, TINY.input_size, index=held.val_idx)
    assert evaluate.rmse(pred, held.galaxies.labels[held.val_idx]) == pytest.approx(best, abs=2e-7)


@pytest.mark.slow
def test_weight_averaging_over_the_last_epochs_is_kept_when_it_scores_better(synth_dir, tmp_path):
    out = tmp_path / "m.pt"
    result = train.fit(synth_dir, replace(TINY, epochs=4, swa=0.5), out=out)
    epochs = [h["val_rmse"] for h in result["history"]]
    assert result["swa_epochs"] == 2  # the epochs ending in the last half of the run: 3 and 4
    assert result["val_rmse"] == min(min(epochs), result["swa_val_rmse"])
    model, ckpt = checkpoint.load(out)
    held = checkpoint.data_for(ckpt, synth_dir)
    with train.torch_threads(TINY.threads):
        pred = evaluate.predict(model, held.crops, TINY.input_size, index=held.val_idx)
    assert evaluate.rmse(pred, held.galaxies.labels[held.val_idx]) == pytest.approx(result["val_rmse"], abs=2e-7)
    assert ckpt["metrics"]["swa_val_rmse"] == result["swa_val_rmse"]
    with pytest.raises(ValueError, match="SWA fraction"):
        train.TrainConfig(swa=1.0)


@pytest.mark.slow
def test_stop_event_ends_the_run_early(synth_dir):
    stop = threading.Event()

    def callback(event, info):
        if event == "step" and info["epoch"] == 0:
            stop.set()
    result = train.fit(synth_dir, replace(TINY, epochs=5), callback=callback,
                       stop=stop)
    assert result["epochs"] <= 1


def test_one_cycle_schedule_shape():
    lrs = [train.one_cycle(p, 1.0, 0.2) for p in np.linspace(0, 1, 101)]
    assert max(lrs) == pytest.approx(1.0, abs=0.01) and lrs[0] < 0.1 and lrs[-1] < 0.01
    assert int(np.argmax(lrs)) == 20


def test_weighted_loss():
    pred, target = torch.zeros(2, 37), torch.ones(2, 37)
    w = torch.zeros(37)
    w[0] = 37.0
    assert train.loss_fn(pred, target, w).item() == pytest.approx(1.0)
    assert train.loss_fn(pred, target, None).item() == pytest.approx(1.0)
    w[0] = 0.0
    assert train.loss_fn(pred, target, w).item() == 0.0


@pytest.mark.slow
def test_lr_finder_suggests_a_rate_where_the_loss_falls_fastest(synth_dir):
    found = train.lr_find(synth_dir, TINY, steps=40)
    lrs, losses = np.array(found["lrs"]), np.array(found["losses"])
    assert len(lrs) == 40 and np.all(np.diff(lrs) > 0) and found["precision"] == "fp32"
    lowest = int(np.argmin(losses))
    assert losses[lowest] < 0.8 * losses[0]  # the loss did fall...
    assert found["suggestion"] < lrs[lowest]  # ...and the suggestion comes before its minimum
    assert 1e-4 < found["suggestion"] < 3e-2
    diverging = train.lr_find(synth_dir, TINY, end=100.0, steps=200)  # rates far too high
    assert len(diverging["lrs"]) < 200 and diverging["losses"][-1] > 4 * min(diverging["losses"])


@pytest.mark.slow
def test_model_learns_the_synthetic_universe(universe400):
    """Trained on simulated volunteers' labels, the model beats every baseline clearly (measured:
    0.65 of the mean-vector baseline in fp32 and in bf16, 0.74 of the best linear one)."""
    cfg = replace(TINY, epochs=30, batch_size=32, lr=3e-3)
    prep = train.prepare(universe400, cfg)
    result = train.fit(universe400, cfg, prepared=prep)
    base = evaluate.baselines(prep.crops, prep.galaxies.labels, prep.train_idx, prep.val_idx)
    assert result["val_rmse"] < 0.8 * base["mean answer vector"]
    assert result["val_rmse"] < 0.85 * min(base.values())


def test_auto_precision_follows_the_cpu_and_can_be_forced(monkeypatch):
    monkeypatch.setenv("GZ_CPU_BF16", "1")
    assert train.Setup.choose("cpu").precision == "bf16"
    assert train.Setup.choose("cpu", "fp32").precision == "fp32"  # a pinned precision wins
    monkeypatch.setenv("GZ_CPU_BF16", "0")
    assert train.Setup.choose("cpu").precision == "fp32"
    monkeypatch.setenv("GZ_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="GZ_CPU_BF16='yes'"):
        train.Setup.choose("cpu")


@pytest.mark.slow
def test_the_checkpoint_records_what_ran_and_scores_in_fp32(synth_dir, tmp_path, monkeypatch):
    """A bf16 run (as `auto` picks on a CPU with AVX512-BF16) stores bf16, not "auto", and its
    validation score is the fp32 score of the weights it saved."""
    monkeypatch.setenv("GZ_CPU_BF16", "1")
    out = tmp_path / "m.pt"
    result = train.fit(synth_dir, replace(TINY, precision="auto", epochs=1), out=out)
    model, ckpt = checkpoint.load(out)
    ran = {k: ckpt["metrics"][k] for k in ("device", "precision", "threads")}
    assert ran == {k: result[k] for k in ran} == {"device": "cpu", "precision": "bf16", "threads": 2}
    assert ckpt["train_config"]["precision"] == "auto"
    held = checkpoint.data_for(ckpt, synth_dir)
    with train.torch_threads(TINY.threads):  # the run's threads: the same sums in the same order
        pred = evaluate.predict(model, held.crops, TINY.input_size, index=held.val_idx)
    # bf16 inference moves this score by ~3e-6
    assert ckpt["metrics"]["val_rmse"] == pytest.approx(
        evaluate.rmse(pred, held.galaxies.labels[held.val_idx]), abs=2e-7)


def test_unpinned_threads_follow_the_cores_other_processes_leave_free(monkeypatch):
    from gzcore import threads
    clock = {"machine": (0.0, 0.0), "own": 0.0}
    monkeypatch.setattr(threads, "_machine_busy", lambda: clock["machine"])
    monkeypatch.setattr(threads, "_own_busy", lambda: clock["own"])
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    with train.torch_threads(2):
        free = threads.FreeCores(cores=2)
        assert free.update() == 2  # the first call only starts the clock
        # 10 s: the machine busy 20 CPU-seconds of 20, this process 11: another process took a core
        clock.update(machine=(20.0, 20.0), own=11.0)
        assert free.update() == 1
        clock.update(machine=(38.0, 40.0), own=28.0)  # then 18 of 20, 17 of them ours: the core is back
        assert free.update() == 2


def test_the_batch_follows_the_device_and_a_gpu_batch_scales_the_lr():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    default = train.TrainConfig()
    assert default.batch_size is None  # settled by the device the run gets
    on_cpu = train.with_batch(default, cpu)
    assert (on_cpu.batch_size, on_cpu.lr) == (64, default.lr)
    on_gpu = train.with_batch(default, gpu)
    assert on_gpu.batch_size == 1024 and on_gpu.lr == pytest.approx(4 * default.lr)  # sqrt(1024 / 64)
    assert train.with_batch(on_gpu, gpu) == on_gpu  # settled once: a recorded config runs as it ran
    pinned = replace(default, batch_size=256)
    assert train.with_batch(pinned, gpu) == pinned  # a batch size given is used as given, lr too


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="torch.compile on a CPU needs a C++ compiler (g++, or $CXX)")
def test_a_compiled_model_trains_to_the_same_losses(synth_dir, tmp_path, monkeypatch):
    """About 2 minutes of compiling on 2 busy cores the first time, seconds once inductor's cache
    (/tmp/torchinductor_$USER) holds the kernels."""
    import torch._inductor.config
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)  # dropout draws as in eager mode
    cfg = replace(TINY, epochs=1)
    prep = train.prepare(synth_dir, cfg)
    runs = {}
    for compiled in (False, True):
        losses = []
        result = train.fit(synth_dir, replace(cfg, compile=compiled), prepared=prep,
                           out=tmp_path / "compiled.pt" if compiled else None,
                           callback=lambda e, i: e == "step" and losses.append(i["loss"]))
        runs[compiled] = losses, result
    (plain, a), (fused, b) = runs[False], runs[True]
    assert fused == pytest.approx(plain, rel=1e-4)  # float rounding apart, the same steps
    assert b["history"][0]["train_rmse"] == pytest.approx(a["history"][0]["train_rmse"], rel=1e-4)
    assert b["val_rmse"] == pytest.approx(a["val_rmse"], abs=1e-5)
    assert checkpoint.read(tmp_path / "compiled.pt")["train_config"]["compile"] is True
    checkpoint.load(tmp_path / "compiled.pt")  # the plain module is saved, not the compiled wrapper


@needs_cuda
def test_a_gpu_epoch_never_waits_for_the_gpu(synth_dir):
    """No step of the loop reads the GPU back (torch's sync debug mode raises on any that does):
    the host queues work, the losses add up on the device and come back once per epoch."""
    setup = train.Setup.choose("cuda")
    cfg = replace(TINY, device="cuda", precision="auto", batch_size=8)
    prep = train.prepare(synth_dir, cfg)
    learner = train.Learner.create(cfg, setup, prep, torch.Generator().manual_seed(0))
    batches = train.Batches(prep.crops, prep.encoded, prep.train_idx, cfg.batch_size, setup.device,
                            torch.Generator().manual_seed(0))
    assert batches.local  # the crops moved to the GPU once
    losses = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        seen, loss_sum = train.train_one_epoch(learner, batches, train.Schedule(cfg, len(batches)), 0,
                                               lambda e, i: losses.append(i["loss"]))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert seen == len(batches) * 8 and len(losses) == len(batches)
    assert all(math.isfinite(x) for x in losses) and math.isfinite(float(loss_sum))


@needs_cuda
def test_gpu_training_records_its_batch_and_predicts_as_the_cpu_does(synth_dir, tmp_path):
    out = tmp_path / "m.pt"
    result = train.fit(synth_dir, replace(TINY, device="cuda", precision="auto", batch_size=8, tta=True),
                       out=out)
    model, ckpt = checkpoint.load(out)
    assert result["device"].startswith("cuda") and result["precision"] in ("bf16", "fp16")
    assert ckpt["train_config"]["batch_size"] == 8 and np.isfinite(result["val_rmse_tta"])
    held = checkpoint.data_for(ckpt, synth_dir)
    on_cpu = evaluate.predict(model, held.crops, TINY.input_size, tta=True, index=held.val_idx)
    on_gpu = evaluate.predict(model.cuda(), held.crops, TINY.input_size, tta=True, index=held.val_idx,
                              device="cuda")
    np.testing.assert_allclose(on_gpu, on_cpu, atol=5e-3)  # TF32 convolutions
    fast = evaluate.predict(model, held.crops, TINY.input_size, tta=True, index=held.val_idx, device="cuda",
                            precision="bf16")
    np.testing.assert_allclose(fast, on_cpu, atol=3e-2)
