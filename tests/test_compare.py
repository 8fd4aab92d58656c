"""Comparing two models (gzcore.compare, `gz compare`, the Compare page and the Galaxy page beside a
second model): the galaxies neither trained on, paired bootstrap verdicts, the disagreements."""
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, gz, random_tree_rows
from test_app import answers, app_with, bar_values, figures, show, texts

from gzcore import checkpoint, compare, data, evaluate, shipped, targets, train, tree
from gzcore.dashboard.navigation import COMPARE, GALAXY


@pytest.fixture(scope="module")
def two_splits(synth_dir, tmp_path_factory):
    """Two tiny tree models of synth_dir, half of it held out by each, by different split seeds."""
    base = tmp_path_factory.mktemp("compare")
    paths = [base / f"seed{seed}.pt" for seed in (0, 1)]
    for seed, path in zip((0, 1), paths):
        train.fit(synth_dir, replace(TINY, val_fraction=0.5, seed=seed, epochs=1), out=path)  # TINY's crops: cached
    return paths


def test_held_out_galaxies_are_the_intersection_of_both_splits(synth_dir, two_splits):
    galaxies = data.open_folder(synth_dir)
    held = [set(galaxies.ids[checkpoint.split(galaxies, checkpoint.read(p))[1]]) for p in two_splits]
    both = held[0] & held[1]
    assert 0 < len(both) < min(map(len, held))  # different seeds: neither split contains the other
    c = compare.run(*two_splits, synth_dir, tta=False)
    assert c.galaxies == len(both) and c.warning is None
    assert c.basis.startswith(f"{len(both)} galaxies neither model trained on")
    assert set(c.disagreements.GalaxyID) <= both and len(c.disagreements) == min(len(both), compare.TOP)
    assert (c.scores.galaxies[c.scores.level != "question"] == len(both)).all()


def test_no_shared_held_out_galaxy_falls_back_to_the_second_models_with_a_warning():
    student, teacher = np.zeros(20, bool), np.arange(20) % 4 == 0  # a student trained on everything
    rows, basis, warning = compare.held_out(student, teacher, ("student.pt", "teacher.pt"))
    assert list(rows) == list(np.flatnonzero(teacher)) and basis == "5 galaxies held out by teacher.pt only"
    assert "student.pt trained on all 5 galaxies held out by teacher.pt" in warning
    rows, _, warning = compare.held_out(teacher, student, ("teacher.pt", "student.pt"))
    assert list(rows) == list(np.flatnonzero(teacher)) and "student.pt trained on all 5" in warning
    with pytest.raises(data.DataError, match="neither a.pt nor b.pt holds any"):
        compare.held_out(student, student, ("a.pt", "b.pt"))


def test_a_model_against_itself_differs_by_nothing(synth_dir, two_splits, tmp_path):
    same = shutil.copy(two_splits[0], tmp_path / "copy.pt")
    c = compare.run(two_splits[0], same, synth_dir, tta=False)
    assert c.names == ("seed0.pt", "copy.pt")
    assert (c.scores["B − A"] == 0).all() and (c.scores.low == 0).all() and (c.scores.high == 0).all()
    assert set(c.scores.verdict) == {"no difference"}
    assert (c.disagreements.difference == 0).all() and (c.disagreements["top answers"] == "").all()


def test_a_worse_model_scores_worse_where_it_is_worse_and_nowhere_else():
    rng = np.random.default_rng(0)
    truth = random_tree_rows(300, seed=2)
    a = np.clip(truth + rng.normal(0, 0.02, truth.shape), 0, 1)
    b = a.copy()
    q1 = tree.SLICES[1]
    b[:, q1] = np.clip(b[:, q1] + rng.normal(0, 0.2, (300, 3)), 0, 1)  # B is worse on Q1 alone
    ids = np.arange(1000, 1300)
    c = compare.compare(ids, a, b, truth, targets.TREE, ("a.pt", "b.pt"), "all")
    want_a, want_b = evaluate.scores(a, truth), evaluate.scores(b, truth)
    per_q = c.per_question.set_index("name")
    for q in tree.QUESTIONS:
        assert per_q.at[q.label, "RMSE A"] == pytest.approx(want_a["per_question"][q.number])
        assert per_q.at[q.label, "RMSE B"] == pytest.approx(want_b["per_question"][q.number])
    assert per_q.at["Q1 shape", "verdict"] == "A better" and per_q.at["Q1 shape", "low"] > 0
    assert set(per_q.verdict.drop("Q1 shape")) == {"no difference"}
    assert c.overall.verdict == "A better" and c.overall["RMSE B"] == pytest.approx(want_b["rmse"])
    per_a = c.per_answer.set_index("name")
    assert per_a.at["Q1 smooth", "RMSE A"] == pytest.approx(want_a["per_answer"]["Class1.1"])
    diff = np.sqrt(((a - b) ** 2).mean(axis=1))
    assert list(c.disagreements.GalaxyID) == list(ids[np.argsort(-diff)[:compare.TOP]])  # largest first
    assert c.disagreements.difference.is_monotonic_decreasing


def test_scalar_targets_compare_per_output():
    truth = np.array([[8.5], [8.9], [np.nan], [9.1]])
    a, b = truth + 0.1, truth - 0.3
    task = targets.Task("regression", ("oh",), mean=(8.8,), std=(0.2,))
    c = compare.compare(np.arange(4), np.nan_to_num(a, nan=8.7), np.nan_to_num(b, nan=8.6), truth, task,
                        ("a.pt", "b.pt"), "all")
    assert c.per_question.empty and list(c.per_answer.name) == ["oh"]
    assert c.overall["RMSE A"] == pytest.approx(0.1) and c.overall["RMSE B"] == pytest.approx(0.3)
    assert c.overall.galaxies == 3  # the unknown one counts nowhere
    assert c.disagreements["A says"].iat[0].startswith("oh ") and "top answers" not in c.disagreements


def test_models_of_different_outputs_do_not_compare(synth_dir, two_splits, tmp_path):
    other = torch.load(two_splits[1], weights_only=True)
    other["task"] = targets.Task("regression", ("oh",), mean=(8.8,), std=(0.2,)).to_dict()
    torch.save(other, tmp_path / "oh.pt")
    with pytest.raises(checkpoint.CheckpointError) as e:
        compare.run(two_splits[0], tmp_path / "oh.pt", synth_dir)
    assert str(two_splits[0]) in str(e.value) and str(tmp_path / "oh.pt") in str(e.value)
    done = gz("compare", two_splits[0], tmp_path / "oh.pt", "--data", synth_dir)
    assert done.returncode == 2 and "gz compare: error:" in done.stderr
    assert str(two_splits[0]) in done.stderr and "oh.pt predicts regression of oh" in done.stderr


def test_gz_compare_prints_the_table_and_writes_the_scores(synth_dir, two_splits, tmp_path):
    done = gz("compare", *two_splits, "--data", synth_dir, "--no-tta", "--top", "3", "--out", tmp_path / "c.csv")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"A: {two_splits[0]}" in out and "galaxies neither model trained on" in out
    assert all(q.label in out for q in tree.QUESTIONS) and "where they disagree most" in out
    listed = out.split("where they disagree most")[1].split("scores (")[0].splitlines()
    assert len([line for line in listed if line[:1].isdigit()]) == 3  # one line a galaxy
    scores = pd.read_csv(tmp_path / "c.csv")
    assert list(scores.level.value_counts().sort_index()) == [37, 1, 11]  # answer, overall, question
    assert {"RMSE A", "RMSE B", "B − A", "low", "high", "verdict"} <= set(scores.columns)


SYNTHETIC = shipped.folder() / "synthetic.pt"  # a second tree model the dashboard's universe can run


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


def test_the_compare_page_compares_a_chosen_checkpoint_and_opens_a_galaxy(app, dashboard_env):
    at = show(app, COMPARE)
    assert "Choose a second checkpoint" in texts(at.info)
    at.selectbox(key="compare_model").set_value(str(SYNTHETIC)).run()
    assert not at.exception and not at.error, texts(at.error)
    table = at.dataframe[0].value  # per question (the per-answer table follows)
    assert list(table.question) == [q.label for q in tree.QUESTIONS] and table.galaxies.min() > 0
    assert "galaxies neither model trained on" in texts(at.caption)
    chart = figures(at)["compare_per_q"]
    assert {d["name"] for d in chart["data"]} == {"A · quick.pt", "B · synthetic.pt"}
    opens = [b for b in at.button if (b.key or "").startswith("compare_open_")]
    assert len(opens) == min(compare.TOP, int(table.galaxies.iat[0]))
    gid = opens[0].key.split("_")[-1]
    opens[0].click().run()
    assert at.title[0].value == f"Galaxy {gid}"
    assert {"model · Smooth", "synthetic.pt · Smooth"} <= set(bar_values(answers(at)[0]))


def test_the_galaxy_page_shows_a_second_models_bars_until_dropped(app):
    at = show(app, GALAXY, compare_with=str(SYNTHETIC))
    q1 = bar_values(answers(at)[0])
    assert {"crowd · Smooth", "model · Smooth"} <= set(q1)
    assert len([name for name in q1 if name.startswith("synthetic.pt · ")]) == 3  # its bar for each answer
    assert "synthetic.pt" in texts(at.markdown)  # the legend
    assert "synthetic.pt`'s path" in texts(at.markdown)
    at.toggle(key="galaxy_compare").set_value(False).run()
    assert at.session_state["compare_with"] is None
    assert not any(name.startswith("synthetic.pt") for name in bar_values(answers(at)[0]))


@pytest.mark.slow
def test_the_student_teacher_preset_and_a_refused_checkpoint(app, monkeypatch, tmp_path):
    at = show(app, COMPARE)
    preset = next(b for b in at.button if "against its teacher" in b.label)
    preset.click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.session_state["model"].endswith("default.pt") and at.session_state["compare_with"].endswith(
        "ensemble.pt")
    assert {d["name"] for d in figures(at)["compare_per_q"]["data"]} == {"A · default.pt", "B · ensemble.pt"}
    monkeypatch.setenv("GZ_PUBLIC", "1")
    shutil.copy(SYNTHETIC, tmp_path / "elsewhere.pt")
    at.text_input(key="compare_model_path").set_value(str(tmp_path / "elsewhere.pt")).run()
    assert "only opens its own checkpoints" in texts(at.error)
    assert at.session_state["compare_with"].endswith("ensemble.pt")
