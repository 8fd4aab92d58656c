import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY

from gzcore import checkpoint, evaluate, train


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


def test_training_is_seeded(synth_dir):
    cfg = replace(TINY, epochs=1)
    a = train.fit(synth_dir, cfg)["model"].state_dict()
    b = train.fit(synth_dir, cfg)["model"].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_resume_continues_where_it_stopped(synth_dir, tmp_path):
    out = tmp_path / "m.pt"
    cfg = replace(TINY, epochs=3)
    stop = threading.Event()
    train.fit(synth_dir, cfg, out=out, stop=stop, callback=lambda e, i: e == "epoch" and stop.set())
    assert len(checkpoint.read(out)["history"]) == 1
    result = train.fit(synth_dir, cfg, out=out, resume=True)
    assert result["epochs"] == 3 and [h["epoch"] for h in result["history"]] == [1, 2, 3]


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


def test_weighted_loss_and_lr_finder(synth_dir):
    pred, target = torch.zeros(2, 37), torch.ones(2, 37)
    w = torch.zeros(37)
    w[0] = 37.0
    assert train.loss_fn(pred, target, w).item() == pytest.approx(1.0)
    found = train.lr_find(synth_dir, TINY, steps=12)
    assert len(found["lrs"]) == len(found["losses"]) >= 11 and 1e-5 <= found["suggestion"] <= 1.0


def test_model_learns_the_synthetic_universe(tmp_path):
    """Trained on simulated volunteers' labels, the model beats the mean-vector baseline clearly."""
    from gzcore import synthetic
    folder = synthetic.generate(tmp_path / "u", 240, seed=5)
    cfg = train.TrainConfig(epochs=16, batch_size=32, input_size=32, val_fraction=0.25, lr=3e-3,
                            preprocess=data.Preprocess(crop_px=232, size=36), tta=False)
    prep = train.prepare(folder, cfg)
    result = train.fit(folder, cfg, prepared=prep)
    base = evaluate.baselines(prep.crops, prep.galaxies.labels, prep.train_idx, prep.val_idx)
    assert result["val_rmse"] < 0.8 * base["mean answer vector"]
