"""Your own labels: partial Kaggle answers, several folders, any target (regression or classes),
fine-tuning from a checkpoint; the `gz` contract for them."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, gz, tiny_cli

from gzcore import checkpoint, data, evaluate, models, targets, train, tree

PARTIAL = ["Class1.1", "Class1.2", "Class1.3", "Class2.1", "Class2.2", "Class6.1", "Class6.2"]


@pytest.fixture(scope="module")
def labelled(synth_dir, tmp_path_factory):
    """A CSV of targets for the synthetic universe's images: a number that the images show (the
    crowd's smooth fraction, rescaled to a metallicity-like range) and a class name."""
    crowd = pd.read_csv(synth_dir / data.LABELS_FILE)
    table = pd.DataFrame({"objID": crowd.GalaxyID, "oh": 8.4 + crowd["Class1.1"],
                          "kind": np.where(crowd["Class1.1"] > 0.5, "elliptical", "spiral")})
    table.loc[4, "oh"] = np.nan  # unknown for one galaxy: no loss, no score
    path = tmp_path_factory.mktemp("targets") / "labels.csv"
    table.to_csv(path, index=False)
    return path, table


def _partial_folder(synth_dir, folder, rows):
    """A copy of some synthetic galaxies whose labels hold Q1, Q2 and Q6 only."""
    images = folder / data.IMAGE_DIRS[0]
    images.mkdir(parents=True)
    crowd = pd.read_csv(synth_dir / data.LABELS_FILE).iloc[rows]
    for gid in crowd.GalaxyID:
        (images / f"{gid}.jpg").write_bytes((synth_dir / data.IMAGE_DIRS[0] / f"{gid}.jpg").read_bytes())
    crowd[["GalaxyID", *PARTIAL]].to_csv(folder / data.LABELS_FILE, index=False)
    return folder


def test_read_finds_the_task_and_names_bad_rows(labelled, tmp_path):
    path, table = labelled
    ids, values, task = targets.read(path, ["oh"])
    assert task.kind == "regression" and task.columns == ("oh",)
    assert np.array_equal(ids, table.objID) and np.isnan(values[4, 0]) and values[0, 0] == pytest.approx(table.oh[0])
    ids, values, task = targets.read(path, ["kind"])
    assert task.kind == "classification" and task.columns == ("elliptical", "spiral")
    assert np.array_equal(values[:, 0], (table.kind == "spiral").to_numpy())
    big = pd.DataFrame({"objID": ["1237648720693755918"], "oh": [8.9]})  # beyond float64's integers
    big.to_csv(tmp_path / "big.csv", index=False)
    assert targets.read(tmp_path / "big.csv", ["oh"])[0][0] == 1237648720693755918
    cases = [(["missing"], "no column 'missing'"), (["oh", "kind"], "'kind' holds text")]
    for columns, message in cases:
        with pytest.raises(data.DataError, match=message):
            targets.read(path, columns)
    table.assign(objID=["x"] + list(table.objID[1:])).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(data.DataError, match="bad.csv, line 2: id 'x' is not an integer"):
        targets.read(tmp_path / "bad.csv", ["oh"])
    table.assign(kind="lenticular").to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(data.DataError, match="class 'lenticular' is not one the model knows"):
        targets.read(tmp_path / "new.csv", task=task)


def test_unknown_labels_add_no_loss_and_no_score():
    pred = torch.zeros(2, 3, requires_grad=True)
    target = torch.tensor([[1.0, float("nan"), 0.0], [float("nan"), float("nan"), 1.0]])
    loss = train.loss_fn(pred, target, None)
    loss.backward()
    assert loss.item() == pytest.approx(2 / 3)  # the three known cells alone
    assert pred.grad[0, 1] == 0 and pred.grad[1, 0] == 0 and pred.grad[1, 1] == 0
    logits = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    assert train.class_loss(logits, torch.tensor([[0.0], [float("nan")]])).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0])).item())
    truth = np.array([[0.5, np.nan], [np.nan, np.nan]])
    assert evaluate.rmse(np.zeros((2, 2)), truth) == pytest.approx(0.5)
    assert np.isnan(evaluate.rmse(np.zeros(2), truth[1]))


@pytest.mark.slow
def test_a_partial_label_folder_trains_beside_a_full_one_without_moving_the_split(synth_dir, tmp_path):
    """`--data A --data B`: B's absent questions are unknown; A's galaxies keep their side of the
    split, as each galaxy's side is a hash of its own id."""
    crowd = pd.read_csv(synth_dir / data.LABELS_FILE)
    full = _partial_folder(synth_dir, tmp_path / "b", np.arange(30, 48))
    (full / data.LABELS_FILE).unlink()
    crowd.iloc[30:48].to_csv(full / data.LABELS_FILE, index=False)
    partial = _partial_folder(synth_dir, tmp_path / "p", np.arange(30))
    alone = train.prepare(full, TINY)
    both = train.prepare([full, partial], TINY)
    assert len(both.galaxies) == 48 and np.isnan(both.galaxies.labels[18:, 7:13]).all()
    assert not np.isnan(both.galaxies.labels[:18]).any()
    held = set(alone.galaxies.ids[alone.val_idx])
    assert held == set(both.galaxies.ids[both.val_idx]) & set(alone.galaxies.ids)
    result = train.fit([full, partial], TINY)
    assert np.isfinite(result["val_rmse"]) and result["task"] == targets.TREE
    pred = evaluate.predict(result["model"], both.crops, TINY.input_size, index=both.val_idx)
    scores = evaluate.scores(pred, both.galaxies.labels[both.val_idx])
    labelled_q3 = (~np.isnan(both.galaxies.labels[both.val_idx, 5])).sum()
    assert scores["question_labelled"][3] == labelled_q3 < scores["question_labelled"][1] == len(both.val_idx)
    assert tree.check_labels(pred, tol=1e-5) == []  # the tree head still answers all 37


@pytest.mark.slow
def test_the_gz_contract_for_a_regression_target(synth_dir, labelled, tmp_path):
    path, table = labelled
    folder = synth_dir / data.IMAGE_DIRS[0]  # any folder of <id>.jpg
    out = tmp_path / "oh.pt"
    r = gz("train", "--data", folder, "--labels", path, "--target", "oh", *tiny_cli(3), "--out", out)
    assert r.returncode == 0, r.stderr
    assert "oh (regression)" in r.stdout
    ckpt = checkpoint.read(out)
    assert ckpt["task"]["kind"] == "regression" and ckpt["task"]["columns"] == ["oh"]
    r = gz("predict", "--data", folder, "--checkpoint", out, "--no-tta", "--out", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["id", "oh"] and len(pred) == 48
    assert 7.9 < pred.oh.min() and pred.oh.max() < 9.9  # in the target's units, not standardised
    r = gz("evaluate", "--data", folder, "--labels", path, "--checkpoint", out, "--no-tta")
    assert r.returncode == 0, r.stderr
    for text in ("baseline: mean of each target", "baseline: central and outer colours (linear)",
                 "oh  "):
        assert text in r.stdout
    r = gz("evaluate", "--data", folder, "--checkpoint", out)
    assert r.returncode == 2 and "pass their CSV with --labels" in r.stderr


@pytest.mark.slow
def test_a_column_of_class_names_trains_a_classifier(synth_dir, labelled, tmp_path):
    path, _ = labelled
    folder = synth_dir / data.IMAGE_DIRS[0]
    result = train.fit(folder, replace(TINY, labels=str(path), targets=("kind",)), out=tmp_path / "c.pt")
    assert result["task"].columns == ("elliptical", "spiral") and 0 <= result["val_accuracy"] <= 1
    r = gz("predict", "--data", folder, "--checkpoint", tmp_path / "c.pt", "--no-tta", "--out", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["id", "elliptical", "spiral", "kind"]
    np.testing.assert_allclose(pred.elliptical + pred.spiral, 1, atol=1e-5)
    assert set(pred.kind) <= {"elliptical", "spiral"}
    r = gz("evaluate", "--data", folder, "--labels", path, "--checkpoint", tmp_path / "c.pt", "--no-tta")
    assert r.returncode == 0 and "baseline: always" in r.stdout, r.stderr


@pytest.mark.slow
def test_fine_tuning_keeps_the_backbone_and_its_crops(synth_dir, labelled, tmp_path):
    path, _ = labelled
    base = tmp_path / "base.pt"
    train.fit(synth_dir, replace(TINY, width=8), out=base)
    cfg = train.with_init(replace(TINY, labels=str(path), targets=("oh",), init=str(base), backbone_lr=0.1))
    source, ckpt = checkpoint.load(base)
    assert (cfg.model, cfg.width, cfg.preprocess, cfg.input_size) == \
        ("dieleman", 8, checkpoint.preprocess_of(ckpt), ckpt["input_size"])
    prep = train.prepare(synth_dir / data.IMAGE_DIRS[0], cfg)
    learner = train.Learner.create(cfg, train.Setup.choose("cpu", "fp32"), prep, torch.Generator())
    for k, v in source.backbone.state_dict().items():
        torch.testing.assert_close(learner.model.backbone.state_dict()[k], v)
    assert isinstance(learner.model.head, models.RegressionHead)
    assert learner.model.config["mean"] == source.config["mean"]  # the backbone's own normalisation
    assert [g["scale"] for g in learner.opt.param_groups] == [0.1, 1.0]
    learner.step(*next(iter(train.Batches(prep.crops, prep.encoded, prep.train_idx, 8, torch.device("cpu"),
                                          torch.Generator()))), lr=1e-3)
    assert [g["lr"] for g in learner.opt.param_groups] == pytest.approx([1e-4, 1e-3])
    result = train.fit(synth_dir / data.IMAGE_DIRS[0], cfg, out=tmp_path / "tuned.pt")
    assert np.isfinite(result["val_rmse"]) and checkpoint.read(tmp_path / "tuned.pt")["task"]["columns"] == ["oh"]


@pytest.mark.slow
def test_fine_tuning_an_ensemble_starts_from_its_best_member(synth_dir, tmp_path):
    from gzcore import ensemble
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    train.fit(synth_dir, replace(TINY, epochs=1, width=8), out=paths[0])
    train.fit(synth_dir, replace(TINY, epochs=1, width=8, init_seed=4), out=paths[1])
    metrics = ensemble.combine(paths, tmp_path / "e.pt", synth_dir)
    best = int(np.argmin(metrics["member_val_rmse_tta"]))
    tuned = train.fine_tuned(tmp_path / "e.pt", targets.TREE)
    member = checkpoint.load(paths[best])[0]
    for k, v in member.state_dict().items():  # the tree task keeps the tree head as well
        torch.testing.assert_close(tuned.state_dict()[k], v)


@pytest.mark.slow
def test_a_physical_target_of_the_synthetic_universe_is_learnt(universe400):
    """truth.csv holds what each galaxy was rendered from: its axis ratio shows in the images, and a
    tiny model predicts it far better than any baseline (measured: 0.41 of the training mean's
    RMSE, 0.46 of the best linear colour fit's)."""
    from gzcore import synthetic
    cfg = replace(TINY, epochs=30, batch_size=32, lr=3e-3, labels=str(universe400 / synthetic.TRUTH_FILE),
                  targets=("axis_ratio",))
    prep = train.prepare(universe400, cfg)
    result = train.fit(universe400, cfg, prepared=prep)
    base = evaluate.baselines(prep.crops, prep.galaxies.labels, prep.train_idx, prep.val_idx, prep.task)
    assert result["val_rmse"] < 0.6 * min(base.values())


def test_the_real_metallicity_set_and_partial_labels_read_as_documented(shared_data):
    folder = shared_data / "sdss-metallicity"
    galaxies, task = targets.open_labelled(folder / "images", folder / "metallicity.csv", ["oh_p50"])
    assert len(galaxies) == 400 and task.kind == "regression"
    assert all(p.stem == str(i) for p, i in zip(galaxies.paths, galaxies.ids))  # ids beyond float64
    assert 8.1 < np.nanmin(galaxies.labels) and np.nanmax(galaxies.labels) < 9.3
    ids, labels = data.read_labels(shared_data / "galaxy-zoo-2014-partial" / data.LABELS_FILE)
    known = ~np.isnan(labels)
    # the answers of Q1, Q2, Q6, Q7 and Q8 (17 columns: its README says 18), known for every galaxy
    present = {tree.QUESTION_OF_COLUMN[tree.COLUMNS[j]] for j in np.flatnonzero(known.all(axis=0))}
    assert len(ids) == 5000 and present == {1, 2, 6, 7, 8} and known.sum(axis=1).tolist() == [17] * 5000
