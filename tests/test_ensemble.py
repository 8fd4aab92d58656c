"""Ensembles (gzcore.ensemble, models.Ensemble): averaging trained checkpoints without leaking the
validation split, and everything that reads a model (predict, explain, neighbours) working on one."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY, gz

from gzcore import augment, checkpoint, data, ensemble, evaluate, explain, models, neighbours, train, tree
from gzcore.checkpoint import CheckpointError

MEMBER = replace(TINY, epochs=1)  # the suite's tiny configuration, one epoch a member


@pytest.fixture(scope="module")
def members(synth_dir, tiny_model, tmp_path_factory):
    """Two tiny models on the same split: different widths and init seeds, as real members (the
    first is the session's tiny model, MEMBER)."""
    other = tmp_path_factory.mktemp("members") / "b.pt"
    train.fit(synth_dir, replace(MEMBER, width=16, init_seed=7), out=other)
    return [tiny_model, other]


def _validation(synth_dir):
    """(crops, held-out rows, their labels) of the members' shared split."""
    crops, galaxies = data.load_crops(data.open_folder(synth_dir), MEMBER.preprocess)
    _, val_idx = data.split(galaxies, MEMBER.val_fraction, MEMBER.seed)
    return crops, val_idx, galaxies.labels[val_idx]


def test_an_ensemble_obeys_the_tree_and_is_the_mean_of_its_members():
    torch.manual_seed(0)
    singles = [models.build("dieleman", width=8), models.build("dieleman", width=16)]
    model = models.Ensemble(singles).eval()
    x = torch.randn(5, 3, 32, 32) * 3
    with torch.no_grad():
        y = model(x)
        expected = torch.stack([m.eval()(x) for m in singles]).mean(0)
    torch.testing.assert_close(y, expected)
    assert tree.check_labels(y.numpy(), tol=1e-5) == []
    assert models.members(model) == singles and models.members(singles[0]) == [singles[0]]


@pytest.mark.slow
def test_init_seed_changes_weights_but_not_the_split(synth_dir):
    a = train.fit(synth_dir, MEMBER)
    b = train.fit(synth_dir, replace(MEMBER, init_seed=3))
    assert not torch.equal(a["model"].head.linear.weight, b["model"].head.linear.weight)
    assert a["val_images"] == b["val_images"]
    prep = train.prepare(synth_dir, MEMBER)
    assert np.array_equal(prep.val_idx, train.prepare(synth_dir, replace(MEMBER, init_seed=3)).val_idx)


def test_combine_writes_a_checkpoint_scored_on_the_shared_split(members, synth_dir, tmp_path):
    out = tmp_path / "ensemble.pt"
    metrics = ensemble.combine(members, out, synth_dir)
    model, ckpt = checkpoint.load(out)
    assert isinstance(model, models.Ensemble) and len(model.members) == 2
    assert ckpt["model_config"]["name"] == "ensemble" and ckpt["train_config"]["seed"] == MEMBER.seed
    crops, val_idx, truth = _validation(synth_dir)
    singles = [checkpoint.load(p)[0] for p in members]
    preds = [evaluate.predict(m, crops, 32, index=val_idx, tta=True) for m in singles]
    np.testing.assert_allclose(evaluate.predict(model, crops, 32, index=val_idx, tta=True),
                               np.mean(preds, 0), atol=1e-5)
    assert metrics["val_rmse_tta"] == pytest.approx(
        evaluate.rmse(np.mean(preds, 0), truth), abs=1e-5)
    assert metrics["member_val_rmse_tta"] == pytest.approx(
        [evaluate.rmse(p, truth) for p in preds], abs=1e-5)
    # an ensemble can join another ensemble: its members are taken one by one
    again = ensemble.combine([out, members[0]], tmp_path / "three.pt", synth_dir)
    assert len(again["members"]) == 3 and len(checkpoint.load(tmp_path / "three.pt")[0].members) == 3


def test_half_stores_float16_weights_and_scores_what_it_stored(members, synth_dir, tmp_path):
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    ensemble.combine(members, full, synth_dir)
    metrics = ensemble.combine(members, half, synth_dir, storage="float16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    stored = torch.load(half, weights_only=True)["model"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    model, _ = checkpoint.load(half)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    crops, val_idx, truth = _validation(synth_dir)
    pred = evaluate.predict(model, crops, 32, index=val_idx, tta=True)
    assert metrics["val_rmse_tta"] == pytest.approx(evaluate.rmse(pred, truth), abs=1e-6)
    assert tree.check_labels(pred, tol=1e-5) == []


def test_int8_quarters_the_file_and_predicts_as_the_float_weights_do(members, synth_dir, tmp_path):
    full, small = tmp_path / "full.pt", tmp_path / "int8.pt"
    ensemble.combine(members, full, synth_dir)
    metrics = ensemble.combine(members, small, synth_dir, storage="int8")
    assert small.stat().st_size < 0.4 * full.stat().st_size
    raw = torch.load(small, weights_only=True)
    assert raw["format_version"] == checkpoint.FORMAT_VERSION
    stored = raw["model"]
    convs = [k for k, v in stored.items() if v.ndim == 4]
    assert convs and all(stored[k].dtype == torch.int8 for k in convs)
    model, _ = checkpoint.load(small)
    exact, _ = checkpoint.load(full)
    for k, v in exact.state_dict().items():  # each weight within half a level of its channel
        if k in convs:
            level = v.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
            assert ((model.state_dict()[k] - v).abs() <= level * 0.5001).all()
    crops, val_idx, truth = _validation(synth_dir)
    pred = evaluate.predict(model, crops, 32, index=val_idx, tta=True)
    assert metrics["val_rmse_tta"] == pytest.approx(evaluate.rmse(pred, truth), abs=1e-6)
    np.testing.assert_allclose(pred, evaluate.predict(exact, crops, 32, index=val_idx, tta=True),
                               atol=0.01)
    assert tree.check_labels(pred, tol=1e-5) == []
    with pytest.raises(ValueError, match="unknown weight storage 'int4'"):
        ensemble.combine(members, tmp_path / "x.pt", synth_dir, storage="int4")


@pytest.mark.slow
def test_members_that_would_leak_or_differ_are_refused(members, synth_dir, tmp_path):
    other_split = tmp_path / "other_split.pt"
    train.fit(synth_dir, replace(MEMBER, seed=5), out=other_split)
    with pytest.raises(CheckpointError, match="other_split.pt.*validation split"):
        ensemble.combine([members[0], other_split], tmp_path / "e.pt", synth_dir)
    other_crop = tmp_path / "other_crop.pt"
    train.fit(synth_dir, replace(MEMBER, preprocess=data.Preprocess(crop_px=200, size=36)), out=other_crop)
    with pytest.raises(CheckpointError, match="other_crop.pt.*preprocess"):
        ensemble.combine([members[0], other_crop], tmp_path / "e.pt", synth_dir)
    with pytest.raises(ValueError, match="at least two"):
        ensemble.combine([members[0]], tmp_path / "e.pt", synth_dir)
    assert not (tmp_path / "e.pt").exists()


def test_explanations_and_neighbours_work_on_an_ensemble(members, synth_dir, tmp_path):
    ensemble.combine(members, tmp_path / "e.pt", synth_dir)
    model, _ = checkpoint.load(tmp_path / "e.pt")
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in ("saliency", "gradcam"):
        a = explain.explain(model, x, 1, "Class1.2", method=method)
        assert a.map.shape == (32, 32) and np.isfinite(a.map).all()
    with torch.no_grad():  # the conditional answer is the mean of the members' conditionals
        conds = [m.head.conditional(m.head.linear(m.embed(x[None]))) for m in model.members]
    a = explain.explain(model, x, 1, "Class1.2", method="saliency")
    assert a.target_value == pytest.approx(float(torch.stack(conds).mean(0)[0, 1]), rel=1e-5)
    crops = (np.random.default_rng(0).random((4, 36, 36, 3)) * 255).astype(np.uint8)
    emb = neighbours.embed(model, crops, 32)
    width = sum(m.backbone.out_features for m in model.members)
    assert emb.shape == (4, width) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_the_spread_is_the_members_and_views_disagreement(members, synth_dir, tmp_path):
    ensemble.combine(members, tmp_path / "e.pt", synth_dir)
    model, _ = checkpoint.load(tmp_path / "e.pt")
    crops, val_idx, truth = _validation(synth_dir)
    mean, spread = evaluate.predict(model, crops, 32, index=val_idx, spread=True)
    singles = np.stack([evaluate.predict(m, crops, 32, index=val_idx) for m in model.members])
    np.testing.assert_allclose(mean, evaluate.predict(model, crops, 32, index=val_idx), atol=1e-6)
    np.testing.assert_allclose(spread, singles.std(0), atol=1e-6)
    one = model.members[0]
    with pytest.raises(ValueError, match="8 test-time views"):
        evaluate.predict(one, crops, 32, index=val_idx, spread=True)
    _, views = evaluate.predict(one, crops[val_idx[:1]], 32, tta=True, spread=True)
    x = explain.model_input(crops[val_idx[0]], 32)
    with torch.no_grad():
        each = torch.cat([one(augment.dihedral(x[None], k)) for k in range(8)]).numpy()
    np.testing.assert_allclose(views[0], each.std(0), atol=1e-5)
    table, rho = evaluate.calibration(spread, mean, truth, bins=4)
    assert table.cells.sum() == truth.size and -1 <= rho <= 1
    assert np.all(np.diff(table.spread) >= 0)  # bins in order of spread


def test_gz_predict_writes_a_spread_per_answer(members, synth_dir, tmp_path):
    import pandas as pd
    ensemble.combine(members, tmp_path / "e.pt", synth_dir)
    run = ["predict", "--data", synth_dir, "--uncertainty"]
    r = gz(*run, "--checkpoint", tmp_path / "e.pt", "--out", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["GalaxyID", *tree.COLUMNS, *(f"{c} spread" for c in tree.COLUMNS)]
    assert (table[[f"{c} spread" for c in tree.COLUMNS]].to_numpy() >= 0).all()
    r = gz(*run, "--checkpoint", members[0], "--no-tta", "--out", tmp_path / "q.csv")
    assert r.returncode != 0 and "8 test-time views" in r.stderr and "Traceback" not in r.stderr
