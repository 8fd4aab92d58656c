"""Every figure is held-out honest (issue 25): Atlas, Oddballs and Compare show and filter by the
model's split and say which galaxies each figure counts, with no filter where no split applies; every
figure, table and number of Evaluate follows its held-out / all toggle. Headless (AppTest) on the
dashboard's 96-galaxy universe, whose one-epoch model holds 10 of them out."""
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DASHBOARD
from test_app import app_with, array, figures, show, texts
from test_atlas import select

from gzcore import catalog, checkpoint, data, shipped, train
from gzcore.dashboard.navigation import ATLAS, COMPARE, EVALUATE, ODDBALLS


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


def with_config(env: dict, folder, name: str, **changes) -> dict:
    """`env` with its checkpoint copied to folder/name, train_config changed (None: key removed)."""
    ckpt = checkpoint.read(env["GZ_CHECKPOINT"])
    cfg = {**ckpt["train_config"], **changes}
    ckpt["train_config"] = {k: v for k, v in cfg.items() if v is not None}
    torch.save(ckpt, folder / name)
    return {**env, "GZ_CHECKPOINT": str(folder / name)}


@pytest.fixture(scope="module")
def no_split(dashboard_env, tmp_path_factory):
    """The dashboard's model as a checkpoint that records no validation split (made elsewhere)."""
    return with_config(dashboard_env, tmp_path_factory.mktemp("nosplit"), "nosplit.pt", val_fraction=None, seed=None)


def held(env: dict, ids) -> np.ndarray:
    return checkpoint.held_out(np.asarray(ids, np.int64), checkpoint.read(env["GZ_CHECKPOINT"]))


def control(at, key: str):
    """The page's segmented control `key`, or None."""
    return next((g for g in at.get("button_group") if g.key == key), None)


def atlas_points(at) -> dict:
    return figures(at)[next(k for k in figures(at) if k and k.endswith("atlas_map"))]["data"][0]


# ------------------------------------------------------------------ Atlas


def test_atlas_filters_by_split_and_marks_each_point(app, dashboard_env):
    at = show(app, ATLAS)
    assert control(at, "atlas_split").value == "all"
    points = atlas_points(at)
    drawn = array(points["customdata"])
    split = held(dashboard_env, drawn)
    assert len(drawn) == 96 and 0 < split.sum() < 96
    assert list(points["text"]) == ["held out" if h else "training split" for h in split]  # on hover
    assert "%{text}" in points["hovertemplate"]
    assert f"96 galaxies on the PCA map of quick.pt's embedding · drawn: all 96 galaxies ({split.sum()} held out, " \
           f"{96 - split.sum()} in the training split)" in texts(at.caption)

    at.selectbox(key="atlas_colour").set_value(catalog.HELD_OUT).run()  # colour by split
    points = atlas_points(at)
    assert (array(points["marker"]["color"]) == held(dashboard_env, array(points["customdata"]))).all()
    assert points["marker"]["colorbar"]["ticktext"] == ["training split", "held out"]

    control(at, "atlas_split").set_value("held out").run()
    drawn = array(atlas_points(at)["customdata"])
    assert len(drawn) == split.sum() and held(dashboard_env, drawn).all()
    assert f"{split.sum()} galaxies on the PCA map of quick.pt's embedding · drawn: the {split.sum()} held-out " \
           f"galaxies (never trained on)" in texts(at.caption)
    at = select(at, [1], how="points")  # the map's second point: a held-out galaxy, its neighbours held out too
    assert f"Galaxy {drawn[1]} and the" in texts(at.subheader)
    shown = [c.value for c in at.caption if c.value.split(" · ")[0].isdigit()]
    assert len(shown) == min(9, split.sum()) and all(c.endswith(" · :green-badge[held out]") for c in shown)

    control(at, "atlas_split").set_value("training").run()
    drawn = array(atlas_points(at)["customdata"])
    assert len(drawn) == 96 - split.sum() and not held(dashboard_env, drawn).any()
    at = select(at, range(20))
    assert "Share held out: 0 here, 0 over the " in texts(at.caption)


def test_atlas_without_a_split_says_so_and_has_no_filter(no_split, monkeypatch):
    at = show(app_with(no_split, monkeypatch), ATLAS)
    assert control(at, "atlas_split") is None
    assert "No split: `nosplit.pt` records no validation split" in texts(at.caption)
    assert "text" not in atlas_points(at) and catalog.HELD_OUT not in at.selectbox(key="atlas_colour").options
    assert "96 galaxies on the PCA map of nosplit.pt's embedding · drawn: all 96 galaxies (no split: see above)" \
        in texts(at.caption)


# ------------------------------------------------------------------ Oddballs


def oddest(at) -> tuple[list[int], list[str]]:
    """The oddest grid's GalaxyIDs and their captions."""
    ids = [int(b.key.split("_")[-1]) for b in at.button if (b.key or "").startswith("odd_open_")]
    return ids, [c.value for c in at.caption if c.value.startswith("oddness ")]


def test_oddballs_filters_by_split_and_says_each_galaxys(app, dashboard_env):
    at = show(app, ODDBALLS)
    assert control(at, "odd_split").value == "all"
    ids, captions = oddest(at)
    split = held(dashboard_env, ids)
    assert len(ids) == 24 and [":green-badge[held out]" in c for c in captions] == split.tolist()
    assert all(":green-badge[held out]" in c or ":orange-badge[training split]" in c for c in captions)
    table = at.dataframe[0].value
    assert table.GalaxyID.tolist() == ids and table.split.tolist() == ["held out" if h else "training split"
                                                                        for h in split]
    assert "Ranked among all 96 galaxies (" in texts(at.caption)

    control(at, "odd_split").set_value("held out").run()
    ids, captions = oddest(at)
    n = held(dashboard_env, pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID).sum()
    assert len(ids) == min(24, n) and held(dashboard_env, ids).all()
    assert f"The {len(ids)} oddest held-out galaxies" in texts(at.subheader)
    assert f"Ranked among the {n} held-out galaxies (never trained on)" in texts(at.caption)
    for box in [c for c in at.checkbox if c.key.startswith("odd_pick_")][:2]:
        box.check().run()
    at.button(key="odd_more").click().run()  # more like these: among the held-out galaxies too
    liked = [int(b.key.split("_")[-1]) for b in at.button if (b.key or "").startswith("like_interesting_")]
    assert 0 < len(liked) and held(dashboard_env, liked).all()
    assert "ranked among the " in texts(at.caption)

    control(at, "odd_split").set_value("training").run()
    ids, _ = oddest(at)
    assert len(ids) == 24 and not held(dashboard_env, ids).any()
    assert at.dataframe[0].value.split.eq("training split").all()


def test_oddballs_without_a_split_says_so_and_has_no_filter(no_split, monkeypatch):
    at = show(app_with(no_split, monkeypatch), ODDBALLS)
    assert control(at, "odd_split") is None and "No split: `nosplit.pt` records no validation split" in \
        texts(at.caption)
    assert "split" not in at.dataframe[0].value and not any("badge[" in c for c in oddest(at)[1])


# ------------------------------------------------------------------ Compare


@pytest.fixture(scope="module")
def other_split(dashboard_env, tmp_path_factory):
    """The dashboard's model as if trained with another split seed, whose held-out galaxies the
    dashboard's model trained on: no galaxy is held out by both."""
    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID.to_numpy()
    mine = held(dashboard_env, ids)
    seed = next(s for s in range(1, 200) if not (mine & data.in_validation(ids, 0.1, s)).any()
                and data.in_validation(ids, 0.1, s).sum() >= 5)
    return with_config(dashboard_env, tmp_path_factory.mktemp("other"), "other.pt", seed=seed)["GZ_CHECKPOINT"]


def listed(at) -> tuple[list[int], list[str]]:
    ids = [int(b.key.split("_")[-1]) for b in at.button if (b.key or "").startswith("compare_open_")]
    return ids, [c.value for c in at.caption if c.value.startswith("**")]


def test_compare_says_which_galaxies_every_figure_counts_and_filters_the_list(app):
    at = show(app, COMPARE)
    at.selectbox(key="compare_model").set_value(str(shipped.folder() / "synthetic.pt")).run()
    assert not at.exception and not at.error, texts(at.error)
    basis = next(c.value for c in at.caption if c.value.startswith("A `")).split(" · ")[2]
    assert "galaxies neither model trained on" in basis
    assert f"Table and bars: both models over the {basis}" in texts(at.caption)  # per question: table and chart
    assert f"Over the {basis}" in texts(at.caption)  # per answer
    assert all(m.proto.help == f"Over the {basis}" for m in at.metric[:2])
    ids, captions = listed(at)
    assert ids and all(" · :green-badge[held out by both] · " in c for c in captions)
    assert f"The {len(ids)} galaxies whose outputs differ most" in texts(at.caption)
    assert [o for o in control(at, "compare_split").proto.options] and control(at, "compare_split").value == "all"
    control(at, "compare_split").set_value("training").run()
    assert listed(at)[0] == [] and f"None of the {len(ids)} listed is in A's or B's training split" in texts(at.info)
    control(at, "compare_split").set_value("held out").run()
    assert listed(at)[0] == ids


def test_compare_marks_and_filters_galaxies_one_model_trained_on(app, other_split):
    at = show(app, COMPARE, compare_with=other_split)
    assert "No galaxy here is held out by both models" in texts(at.warning)
    ids, captions = listed(at)
    assert ids and all(" · :orange-badge[in A's training split] · " in c for c in captions)
    control(at, "compare_split").set_value("training").run()
    assert listed(at)[0] == ids and f"the {len(ids)} in A's or B's training split" in texts(at.caption)
    control(at, "compare_split").set_value("held out").run()
    assert listed(at)[0] == [] and "None of the" in texts(at.info)


# ------------------------------------------------------------------ Evaluate


def rendered(at) -> dict[str, str]:
    """Every figure (its data), table and number of the page, by key or label."""
    out = {f"figure {k}": json.dumps(f["data"], sort_keys=True) for k, f in figures(at).items()}
    out |= {f"table {d.key or i}": d.value.to_json() for i, d in enumerate(at.dataframe)}
    return out | {f"metric {m.label}": m.value for m in at.metric}


def follows_the_toggle(at, expected: set[str]) -> None:
    """Each of `expected` (and everything else the page renders) differs between held out and all,
    and each caption that named the held-out galaxies names all of them after the toggle."""
    assert control(at, "eval_scope").value == "held out"
    before, named = rendered(at), sum("held-out galaxies (never trained on)" in c.value for c in at.caption)
    control(at, "eval_scope").set_value("all").run()
    assert not at.exception, [e.message for e in at.exception]
    after = rendered(at)
    assert expected <= set(before) and set(before) == set(after)
    ignored = [k for k in before if before[k] == after[k]]
    assert not ignored, f"{ignored} ignore the held-out / all toggle"
    assert named >= 2 and "held-out galaxies (never trained on)" not in texts(at.caption)
    assert sum("of the training split included" in c.value for c in at.caption) == named


def test_every_evaluate_figure_follows_the_held_out_toggle(app):
    follows_the_toggle(show(app, EVALUATE), {
        "figure eval_overall", "figure eval_per_q", "figure eval_per_a", "figure eval_density",
        "figure eval_residuals", "figure eval_confusion_False", "figure eval_confusion_True",
        "figure eval_calibration", "metric Spearman ρ (spread vs |error|)"})


def test_every_evaluate_figure_of_a_regression_model_follows_the_toggle(target_env, monkeypatch):
    env = {k: v for k, v in target_env.items() if k != "labels"}
    at = show(app_with(env, monkeypatch), EVALUATE, labels=target_env["labels"])
    follows_the_toggle(at, {"figure eval_overall", "figure eval_scatter", "figure eval_calibration",
                            "metric Spearman ρ (spread vs |error|)"})


def test_every_evaluate_figure_of_a_classifier_follows_the_toggle(dashboard_env, tmp_path, monkeypatch):
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")
    classes = np.where(crowd["Class1.1"] >= crowd["Class1.2"], "smooth", "features")
    pd.DataFrame({"id": crowd.GalaxyID, "shape": classes}).to_csv(tmp_path / "shape.csv", index=False)
    train.fit(dashboard_env["GZ_DATA"], replace(DASHBOARD, labels=str(tmp_path / "shape.csv"), targets=("shape",)),
              out=tmp_path / "shape.pt")
    env = {"GZ_DATA": dashboard_env["GZ_DATA"], "GZ_CHECKPOINT": str(tmp_path / "shape.pt")}
    at = show(app_with(env, monkeypatch), EVALUATE, labels=str(tmp_path / "shape.csv"))
    follows_the_toggle(at, {"figure eval_overall", "figure eval_class_confusion", "metric Accuracy",
                            "metric Majority class (from the training split)"})
