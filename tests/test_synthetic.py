"""The synthetic universe: Kaggle layout, labels that obey the tree, determinism, sky-like images,
and a population that covers the tree."""
import dataclasses

import numpy as np
import pytest
from PIL import Image

from gzcore import synthetic, tree

N = 40


def _labels(folder):
    return np.loadtxt(folder / "training_solutions_rev1.csv", delimiter=",", skiprows=1)


def _image(folder, galaxy_id):
    return np.asarray(Image.open(folder / "images_training_rev1" / f"{galaxy_id}.jpg"))


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    calls = []
    folder = synthetic.generate(tmp_path_factory.mktemp("synth"), N, seed=0,
                                progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (N, N) and len(calls) == N
    return folder


def test_kaggle_layout(universe):
    header = (universe / "training_solutions_rev1.csv").read_text().splitlines()[0]
    assert header == "GalaxyID," + ",".join(tree.COLUMNS)
    ids = _labels(universe)[:, 0].astype(int)
    assert list(ids) == list(range(synthetic.FIRST_ID, synthetic.FIRST_ID + N))
    stems = sorted(p.stem for p in (universe / "images_training_rev1").glob("*.jpg"))
    assert stems == [str(i) for i in ids]


def test_labels_obey_the_tree(universe):
    weighted = _labels(universe)[:, 1:]
    assert tree.check_labels(weighted) == []
    assert weighted.min() >= 0 and weighted.max() <= 1
    np.testing.assert_allclose(weighted[:, tree.SLICES[6]].sum(axis=1), 1, atol=1e-5)  # Q6 quirk


def test_unreached_questions_are_zero():
    params = synthetic.sample_params(np.random.default_rng(1))
    for seed in range(20):  # one volunteer walks one path: every other question stays 0
        weighted = synthetic.volunteer_votes(params, np.random.default_rng(seed), n_volunteers=1)
        assert tree.check_labels(weighted) == []
        assert set(np.unique(weighted)) <= {0.0, 1.0}


def test_same_seed_same_bytes_in_any_number_of_processes_other_seed_differs(tmp_path):
    a, b, c = (synthetic.generate(tmp_path / name, 8, seed=seed, workers=workers)
               for name, seed, workers in (("a", 3, 1), ("b", 3, 2), ("c", 4, 2)))
    csv = lambda folder: (folder / "training_solutions_rev1.csv").read_bytes()
    jpg = lambda folder, i: (folder / "images_training_rev1" / f"{i}.jpg").read_bytes()
    ids = range(synthetic.FIRST_ID, synthetic.FIRST_ID + 8)
    assert csv(a) == csv(b)
    assert all(jpg(a, i) == jpg(b, i) for i in ids)
    assert csv(a) != csv(c)
    assert all(jpg(a, i) != jpg(c, i) for i in ids)


def test_galaxy_depends_only_on_seed_and_index(universe, tmp_path):
    small = synthetic.generate(tmp_path, 5, seed=0)
    np.testing.assert_array_equal(_labels(small), _labels(universe)[:5])
    for i in range(synthetic.FIRST_ID, synthetic.FIRST_ID + 5):
        np.testing.assert_array_equal(_image(small, i), _image(universe, i))


def test_images_are_dark_sky_with_a_bright_centre(universe):
    for galaxy_id in _labels(universe)[:, 0].astype(int):
        img = _image(universe, galaxy_id)
        assert img.shape == (424, 424, 3) and img.dtype == np.uint8
        assert np.median(img) < 15
        centre = img[192:232, 192:232].mean()
        edges = np.concatenate([img[:40], img[-40:], img[:, :40], img[:, -40:]], axis=None)
        assert centre > 3 * edges.mean()


def test_population_covers_the_tree(universe):
    weighted = _labels(universe)[:, 1:]
    cond = np.nan_to_num(tree.to_conditional(weighted))
    col = tree.COLUMN_INDEX
    assert (weighted[:, col["Class1.1"]] > 0.6).sum() >= 5   # smooth-dominated
    assert (weighted[:, col["Class1.2"]] > 0.6).sum() >= 5   # features-dominated
    spiral = (cond[:, col["Class4.1"]] > 0.5) & (weighted[:, col["Class2.2"]] > 0.3)
    assert spiral.sum() >= 3
    edge_on = (cond[:, col["Class2.1"]] > 0.5) & (weighted[:, col["Class1.2"]] > 0.3)
    assert edge_on.sum() >= 1


def test_volunteers_follow_the_truth():
    rng = np.random.default_rng(0)
    base = synthetic.sample_params(rng)
    spiral = dataclasses.replace(base, kind="spiral", incl=20.0, axis_ratio=0.94, bulge_frac=0.15,
                                 n_arms=2, arm_strength=0.8, pitch=25.0, r_half=35.0, seeing=2.2,
                                 softening=9.0, companion=0.0, tidal=0.0, clumps=0, dust=0.0)
    edge_on = dataclasses.replace(spiral, incl=88.0, axis_ratio=0.15)
    elliptical = dataclasses.replace(spiral, kind="elliptical", incl=0.0, axis_ratio=0.9,
                                     bulge_frac=1.0, n_arms=0, arm_strength=0.0, pitch=0.0, bar=0.0,
                                     ring=0.0, arc=0.0)
    cond = lambda p: tree.to_conditional(
        synthetic.volunteer_votes(p, np.random.default_rng(1), n_volunteers=50))[0]
    col = tree.COLUMN_INDEX
    assert cond(spiral)[col["Class4.1"]] > 0.6 and cond(spiral)[col["Class11.2"]] > 0.3
    assert cond(edge_on)[col["Class2.1"]] > 0.6
    assert cond(elliptical)[col["Class1.1"]] > 0.6


def _truth(folder):
    import pandas as pd
    return pd.read_csv(folder / synthetic.TRUTH_FILE)


def test_truth_holds_what_was_rendered(universe):
    truth = _truth(universe)
    assert tuple(truth.columns) == synthetic.TRUTH_COLUMNS and truth.columns[0] == "GalaxyID"
    assert list(truth["GalaxyID"]) == list(_labels(universe)[:, 0].astype(int))  # one row per galaxy
    assert set(truth["kind"]) <= set(synthetic.KINDS) and {"spiral", "elliptical"} <= set(truth["kind"])
    for column, lo, hi in [("bulge_frac", 0, 1), ("sersic_n", 1, 4), ("axis_ratio", 0.05, 1),
                           ("incl", 0, 90), ("arm_strength", 0, 1), ("bar", 0, 1), ("r_half", 12, 60)]:
        assert truth[column].between(lo, hi).all(), column
    assert truth["n_arms"].dtype.kind == "i" and truth["clumps"].dtype.kind == "i"
    spiral = truth["kind"] == "spiral"
    assert (truth.loc[spiral, "n_arms"] >= 1).all() and (truth.loc[~spiral, "n_arms"] == 0).all()
    assert (truth.loc[truth["kind"] == "elliptical", "bulge_frac"] == 1).all()
    params = synthetic.sample_params(  # galaxy 3's truth is what _make_one drew for it
        np.random.default_rng(np.random.SeedSequence([0, 3]).spawn(3)[0]))
    row = truth.iloc[3]
    assert row["kind"] == params.kind and row["n_arms"] == params.n_arms
    np.testing.assert_allclose([row["bulge_frac"], row["sersic_n"], row["axis_ratio"]],
                               [params.bulge_frac, params.sersic_n, params.axis_ratio], rtol=1e-5)


def test_truth_is_deterministic_per_seed(universe, tmp_path):
    small = synthetic.generate(tmp_path / "a", 5, seed=0, workers=2)
    assert (small / synthetic.TRUTH_FILE).read_text().splitlines() == \
        (universe / synthetic.TRUTH_FILE).read_text().splitlines()[:6]
    other = synthetic.generate(tmp_path / "b", 5, seed=1, workers=1)
    assert (other / synthetic.TRUTH_FILE).read_bytes() != (small / synthetic.TRUTH_FILE).read_bytes()
