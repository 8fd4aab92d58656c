"""The dashboard's pure logic: the catalogue's derived columns, selections and confusion, the spread
it stores and the tables of models of other targets, partial labels, and the visitor's walk through
the tree."""
from dataclasses import asdict

import re

import numpy as np
import pytest
import torch
from conftest import random_tree_rows

from gzcore import catalog, computed, data, evaluate, explain, models, play, targets, tree


def one_hot_conditional(choices: dict[int, np.ndarray]) -> np.ndarray:
    """Weighted rows from per-question conditional distributions (uniform where not given)."""
    cond = np.concatenate([choices.get(q.number, np.full(len(q.answers), 1 / len(q.answers)))
                           for q in tree.QUESTIONS])
    return tree.to_weighted(cond[None])


@pytest.fixture(scope="module")
def table():
    crowd, model = random_tree_rows(500, seed=1), random_tree_rows(500, seed=2)
    return catalog.enrich(evaluate.predictions_table(np.arange(500), model, crowd))


def test_confident_disagreement_follows_its_definition():
    crowd = one_hot_conditional({1: np.array([0.95, 0.05, 0.0])})
    model = one_hot_conditional({1: np.array([0.5, 0.5, 0.0])})
    score, question, crowd_surer = catalog.disagreement(crowd, model)
    assert question[0] == 1 and crowd_surer[0]
    assert score[0] == pytest.approx(1.0 * abs(0.95 - 0.5) * abs(2 * 0.95 - 1))
    assert catalog.disagreement(model, model)[0][0] == pytest.approx(0.0)


def test_enrich_marks_unreached_questions(table):
    assert {"cond Class1.1", "crowd reach Q2", "top Q11", "crowd ptop Q4", "disagreement"} <= set(table)
    star_row = one_hot_conditional({1: np.array([0.0, 0.0, 1.0])})
    star = catalog.enrich(evaluate.predictions_table([1], star_row))
    assert star["top Q2"].iat[0] == -1 and np.isnan(star["ptop Q2"].iat[0]) and star["top Q1"].iat[0] == 2


def test_select_filters_and_sorts_with_nan_last(table):
    rows = catalog.select(table, [catalog.Range("crowd cond Class1.1", 0.5)], "rmse", descending=True)
    assert (table["crowd cond Class1.1"].to_numpy()[rows] >= 0.5).all()
    assert np.all(np.diff(table.rmse.to_numpy()[rows]) <= 0)
    t = table.copy()
    t.loc[0, "rmse"] = np.nan
    assert catalog.select(t, sort_by="rmse")[-1] == 0
    assert catalog.select(t, sort_by="rmse", descending=False)[-1] == 0


def test_a_confusion_cell_and_its_browse_filter_agree(table):
    counts = catalog.confusion(table, 2, confident=True)
    for crowd, model in [(0, 0), (0, 1), (1, 0)]:
        rows = catalog.select(table, catalog.confusion_ranges(2, crowd, model, confident=True))
        assert len(rows) == counts.iat[crowd, model]
    labels = catalog.column_labels(table)
    assert all(c in table for c in labels)
    assert catalog.Range("crowd top Q2", 1, 1).describe(labels) == "crowd top answer to Q2 = not edge-on"


def test_statistics_have_one_entry_per_answer(table):
    assert catalog.answer_correlations(table).shape == (37, 37)
    assert len(catalog.most_confident(table)) == 37
    shares = catalog.top_answer_shares(table)
    assert np.allclose(shares.groupby("question", sort=False).share.sum(), 1.0)
    assert list(catalog.export(table).columns[:2]) == ["GalaxyID", "Class1.1"]


def test_the_walk_follows_the_tree():
    assert play.next_question([]) == 1
    assert play.next_question([(1, 0)]) == 7            # smooth -> how rounded
    assert play.next_question([(1, 0), (7, 1)]) == 6    # then anything odd
    assert play.next_question([(1, 2)]) is None         # a star ends it
    assert play.next_question([(1, 0), (7, 0), (6, 0)]) == 8
    assert play.next_question([(1, 0), (7, 0), (6, 0), (8, 3)]) is None


def test_compare_finds_where_the_visitor_parted_ways():
    crowd = one_hot_conditional({1: np.array([0.1, 0.8, 0.1]), 2: np.array([0.2, 0.8])})
    walk = [(1, 1), (2, 0)]
    comparison = play.compare(walk, crowd, crowd)
    assert comparison["crowd share of your answer"].tolist() == pytest.approx([0.8, 0.2])
    assert play.parted_ways(comparison) == 1 and play.parted_ways(comparison.iloc[:1]) is None


# ------------------------------------------------------------------ build: spread, tasks, partial labels


@pytest.fixture
def folder(tmp_path):
    """Ten galaxies (files only: `build` reads the crops it is given) and a checkpoint file."""
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"{100 + i}.jpg")
        paths[-1].write_bytes(b"x")
    (tmp_path / "model.pt").write_bytes(b"x")
    crops = np.random.default_rng(0).integers(0, 256, (10, 40, 40, 3), dtype=np.uint8)
    return data.GalaxySet(tmp_path, np.arange(100, 110), paths), crops, tmp_path / "model.pt"


def _ckpt(model, task=targets.TREE):
    return {"input_size": 32, "preprocess": asdict(data.Preprocess(crop="centre", crop_px=232, size=40)),
            "task": task.to_dict(), "model_config": model.config}


def _build(folder, model, task=targets.TREE, labels=None):
    galaxies, crops, path = folder
    galaxies = data.GalaxySet(galaxies.root, galaxies.ids, galaxies.paths, labels)
    subject = computed.Subject(galaxies, _ckpt(model, task), path, path.parent / "cache")
    return catalog.build(subject, crops, model)


def test_a_single_models_spread_is_its_8_views_and_its_answers_their_mean(folder, monkeypatch):
    torch.manual_seed(0)
    model = models.build("dieleman").eval()
    crowd = random_tree_rows(10, seed=3).astype(np.float32)
    t = _build(folder, model, labels=crowd)
    pred, spread = evaluate.predict(model, folder[1], 32, tta=True, spread=True)
    np.testing.assert_allclose(catalog.weighted(t), pred, atol=1e-6)
    np.testing.assert_allclose(catalog.values(t, tree.COLUMNS, "spread"), spread, atol=1e-6)
    rms = np.sqrt((spread.astype(np.float64) ** 2).mean(axis=1))  # over the 37 answers
    np.testing.assert_allclose(t.uncertainty, rms, rtol=1e-5, atol=1e-8)  # float32 sums: ~1e-11 apart near 0
    assert catalog.has_spread(t) and "spread cond Class2.1" in t and "uncertainty" in catalog.column_labels(t)
    assert list(catalog.export(t).columns[-2:]) == ["spread Class11.6", "uncertainty"]
    # the outputs come from the cache (its names carry the version; the held-out part is kept on its own,
    # as Evaluate reads it first); the labels are joined afresh
    kept = sorted(p.name for p in (folder[2].parent / "cache" / "predictions").glob("*.parquet"))
    assert len(kept) == 2 and all(name.endswith("-v2.parquet") for name in kept) and "-held-" in kept[0]
    monkeypatch.setattr(evaluate, "predict", lambda *a, **k: pytest.fail("the cache was not used"))
    again = _build(folder, model, labels=crowd[::-1].copy())
    np.testing.assert_allclose(catalog.weighted(again), pred, atol=1e-6)
    np.testing.assert_allclose(catalog.weighted(again, "crowd"), crowd[::-1], atol=1e-6)


def test_an_ensembles_spread_is_its_members_disagreement_without_tta(folder):
    torch.manual_seed(0)
    model = models.Ensemble([models.build("dieleman"), models.build("dieleman")]).eval()
    model.config = {"name": "ensemble", "head": "tree", "members": [m.config for m in model.members]}
    t = _build(folder, model)
    with torch.no_grad():
        x = torch.stack([explain.model_input(c, 32) for c in folder[1]])
        members = torch.stack([m(x) for m in model.members]).numpy()
    np.testing.assert_allclose(catalog.weighted(t), members.mean(0), atol=1e-5)
    np.testing.assert_allclose(catalog.values(t, tree.COLUMNS, "spread"), members.std(0), atol=1e-5)
    assert not catalog.has_crowd(t) and "rmse" not in catalog.column_labels(t)


def test_a_regression_models_table_is_in_the_targets_units(folder):
    torch.manual_seed(0)
    model = models.build("dieleman", head="regression", n_outputs=1).eval()
    task = targets.Task("regression", ("oh",), mean=(8.9,), std=(0.2,))
    truth = np.linspace(8.5, 9.3, 10, dtype=np.float32)[:, None]
    truth[3] = np.nan  # unknown
    t = _build(folder, model, task, truth)
    raw, spread = evaluate.predict(model, folder[1], 32, tta=True, spread=True)
    np.testing.assert_allclose(t.oh, raw[:, 0] * 0.2 + 8.9, rtol=1e-5)
    np.testing.assert_allclose(t["spread oh"], spread[:, 0] * 0.2, rtol=1e-4)
    np.testing.assert_allclose(t["error oh"], t.oh - truth[:, 0], rtol=1e-5)
    np.testing.assert_allclose(t.uncertainty, t["spread oh"], rtol=1e-5)
    assert np.isnan(t.rmse.iat[3]) and t.rmse.iat[0] == pytest.approx(abs(t["error oh"].iat[0]), rel=1e-5)
    labels = catalog.column_labels(t, task)
    assert {"rmse", "uncertainty", "oh", "crowd oh", "error oh", "spread oh"} <= set(labels)
    lines = catalog.summaries(t, task, [0, 3])
    assert re.fullmatch(r"oh 8\.908\d* ± 0\.0000\d+ \(true 8\.5\)", lines[0]), lines[0]  # to the spread's digits
    assert "true" not in lines[1]
    exported = ["GalaxyID", "oh", "crowd oh", "rmse", "spread oh", "uncertainty"]
    assert list(catalog.export(t, task).columns) == exported
    bins, rho = catalog.calibration(t, task, bins=3)
    assert bins.cells.sum() == 9 and -1 <= rho <= 1


def test_a_classifiers_table_has_probabilities_and_classes(folder):
    torch.manual_seed(0)
    model = models.build("dieleman", head="regression", n_outputs=3).eval()
    task = targets.Task("classification", ("bar", "disk", "star"), target="type")
    classes = np.array([0, 1, 2, 1, np.nan, 0, 0, 1, 2, 1], np.float32)[:, None]
    t = _build(folder, model, task, classes)
    probabilities = catalog.values(t, task.columns)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert not catalog.has_spread(t)
    np.testing.assert_allclose(t.uncertainty, 1 - probabilities.max(axis=1), rtol=1e-5)
    assert t["crowd class"].tolist() == [0, 1, 2, 1, -1, 0, 0, 1, 2, 1]
    assert t["p true class"].iat[2] == pytest.approx(probabilities[2, 2])
    assert np.isnan(t["p true class"].iat[4])
    counts = catalog.class_confusion(t, task)
    assert counts.to_numpy().sum() == 9 and counts.sum(axis=1).tolist() == [3, 4, 2]
    assert catalog.majority_class(classes[:, 0]) == 1
    unknown, disk = catalog.summaries(t, task, [4, 1])
    assert unknown.count("%") == 1 and "true" not in unknown and "true disk" in disk


def test_partial_labels_count_where_known_and_never_as_zero():
    crowd, model = random_tree_rows(200, seed=1), random_tree_rows(200, seed=2)
    crowd[:, [tree.QUESTION_OF_COLUMN[c] not in (1, 2, 6, 7, 8) for c in tree.COLUMNS]] = np.nan
    crowd[:50, tree.SLICES[8]] = np.nan  # Q8 known for 150 galaxies only
    t = catalog.enrich(evaluate.predictions_table(np.arange(200), model, crowd))
    assert catalog.question_counts(t) == {1: 200, 2: 200, 3: 0, 4: 0, 5: 0, 6: 200, 7: 200, 8: 150,
                                          9: 0, 10: 0, 11: 0}
    labels = catalog.column_labels(t)
    assert "crowd Class1.1" in labels and "crowd Class3.1" not in labels and "Class3.1" in labels
    assert (t["crowd top Q3"] == -1).all() and catalog.confusion(t, 3).to_numpy().sum() == 0
    assert catalog.confusion(t, 1).to_numpy().sum() > 0
    labelled = {tree.QUESTION_BY_NUMBER[n].label for n in (1, 2, 6, 7, 8)}
    assert set(catalog.top_answer_shares(t).question) == labelled
    assert (catalog.most_confident(t)[["Class3.1", "Class1.1"]] >= 0).tolist() == [False, True]
    # an unknown question never makes a confident disagreement
    assert set(t["disagreement Q"][t.disagreement > 0]) <= {1, 2, 6, 7, 8}
    assert np.isfinite(t.disagreement).all() and np.isfinite(t.rmse).all()


def test_filter_slider_bounds_fit_the_values():
    assert catalog.bounds(np.array([0.0, 1.0])) == (0.0, 1.0, 0.01)
    lo, hi, step = catalog.bounds(np.array([0.0012, 0.047, np.nan]))
    assert (lo, step) == (0.0012, 1e-4) and hi == pytest.approx(0.047)
    assert catalog.bounds(np.array([np.nan])) == (0.0, 1.0, 0.01)
    lo, hi, step = catalog.bounds(np.array([0.5, 0.5]))
    assert lo == 0.5 < hi
