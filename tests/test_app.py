"""Every dashboard page, headless (streamlit.testing AppTest) on a tiny synthetic universe: a tree
model, an ensemble, a regression and a classifier model with their labels CSVs, a partial-label
folder, and the uncertainty views."""
import base64
import json
import re
import shutil
from dataclasses import replace
from html import unescape

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DASHBOARD, ROOT
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from gzcore import checkpoint, data, train
from gzcore.dashboard.navigation import (BROWSE, DATASET, EVALUATE, EXPLAIN, GALAXY, HOME, PAGES, PLAY,
                                         TRAIN)


def show(at, page, **session):
    for key, value in session.items():
        at.session_state[key] = value
    at.switch_page(page.script).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements):
    return " ".join(str(e.value) for e in elements)


def figures(at) -> dict[str, dict]:
    """The page's Plotly figures by widget key, as JSON."""
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def answers(at) -> list[str]:
    """The page's answers (one st.html block of gzcore.dashboard.bars): the HTML of each question."""
    body = "".join(h.proto.body for h in at.get("html") if 'class="gzb"' in h.proto.body)
    return body.split('<div class="gzb-q')[1:]


def bar_titles(html: str) -> list[str]:
    """The exact values a question's bars show on hover: 'SOURCE · ANSWER: VALUE[ ± SPREAD]', and
    per answer 'ANSWER: SOURCE VALUE · ...'."""
    return [unescape(t) for t in re.findall(r'title="([^"]*)"', html)]


def bar_values(html: str) -> dict[str, float]:
    """A question's bars: {'SOURCE · ANSWER': value}."""
    return {name: float(value.split()[0]) for name, value in (t.split(": ", 1) for t in bar_titles(html))
            if " · " in name and value != "no value"}


def array(value) -> np.ndarray:
    """A figure's data array (Plotly writes numeric ones as {'bdata': base64, 'dtype': ...})."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"])
    return np.asarray(value)


def app_with(env: dict, monkeypatch) -> AppTest:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_page_renders_without_errors(app, page):
    at = show(app, page)
    assert not at.error, texts(at.error)
    assert at.title, "every page has a title"


def test_a_deep_link_on_a_fresh_server_runs_app_first(app, monkeypatch, dashboard_env):
    """Until st.navigation has run in the process, Streamlit runs a deep-linked pages/ script alone
    (test_browser checks the same in Chromium)."""
    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)  # as on a fresh server
    gid = pd.read_csv(f"{dashboard_env['GZ_DATA']}/training_solutions_rev1.csv").GalaxyID.iat[-1]
    app.query_params["galaxy"] = str(gid)
    at = show(app, GALAXY)
    assert at.title[0].value == f"Galaxy {gid}"  # app.py's URL sync
    assert "Data: `universe`" in texts(at.sidebar.caption)  # app.py's sidebar


def test_home_says_what_is_loaded(app, dashboard_env):
    at = show(app, HOME)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Galaxies"] == "96" and metrics["Model"] == "dieleman"
    stored = checkpoint.read(dashboard_env["GZ_CHECKPOINT"])["metrics"]["val_rmse"]
    assert metrics["Validation RMSE"] == f"{stored:.4f}"
    assert at.text_input(key="home_data").value.endswith("universe")


def test_browse_filters_and_opens_a_galaxy(app, dashboard_env):
    at = show(app, BROWSE)  # sorted by confident disagreement: the held-out galaxies alone
    opens = [int(b.label.split()[1]) for b in at.button if b.label.startswith("Open ")]
    assert 0 < len(opens) < 24 and checkpoint.held_out(opens, checkpoint.read(dashboard_env["GZ_CHECKPOINT"])).all()
    assert "galaxies match, held out (never trained on)" in texts(at.caption)
    at.toggle(key="browse_fitted").set_value(True).run()
    assert len([b for b in at.button if b.label.startswith("Open ")]) == 24
    at.selectbox(key="browse_column").set_value("crowd cond Class1.1").run()
    at.slider(key="browse_range_crowd cond Class1.1").set_value((0.5, 1.0)).run()
    at.button[0].click().run()  # "Add filter" (the first button on the page)
    caption = texts(at.caption)
    matched = int(caption.split(" of 96 galaxies match")[0].split()[-1])
    assert 0 < matched < 96
    assert any(b.label.startswith("✕") for b in at.button)
    first = next(b for b in at.button if b.label.startswith("Open "))
    first.click().run()
    assert at.title[0].value == f"Galaxy {first.label.split()[-1]}"


def test_galaxy_shows_all_questions_and_switches_to_weighted(app):
    at = show(app, GALAXY)
    assert "galaxy_image" in figures(at)
    shown = answers(at)
    assert len(shown) == 11 and "Q11. How many spiral arms are there?" in shown[10]
    assert {"crowd · Smooth", "model · Smooth", "crowd · Star or artifact"} <= set(bar_values(shown[0]))
    assert sum(bar_values(shown[0])[f"model · {a}"] for a in ("Smooth", "Features or disk", "Star or artifact")) \
        == pytest.approx(1, abs=0.01)  # Q1's conditional answers
    for html in shown:  # few reached it: said and greyed
        assert ("(few: greyed)" in html) == html.startswith(' gzb-few"')
    at.get("button_group")[0].set_value("weighted").run()
    assert not at.exception
    assert bar_values(answers(at)[1])["model · Yes"] <= bar_values(shown[1])["model · Yes"] + 1e-9  # times its reach
    assert "Model's path" in texts(at.markdown)
    other = next(b.label for b in at.button if b.key and b.key.startswith("near_"))  # a neighbour's id
    at.text_input(key="galaxy_id").set_value(other).run()  # text: ids beyond 2**53 stay exact
    assert at.title[0].value == f"Galaxy {other}"


def test_explain_fast_method_at_once_slow_on_demand(app):
    at = show(app, EXPLAIN)
    assert len(at.get("plotly_chart")) == 2  # saliency for two answers
    at.selectbox(key="explain_method").set_value("smoothgrad").run()
    assert "press Compute" in texts(at.caption) and "SmoothGrad (16 passes) · model" not in texts(at.caption)
    at.button(key="explain_go0").click().run()
    assert "SmoothGrad (16 passes) · model" in texts(at.caption)


def test_evaluate_confusion_cell_opens_the_gallery_filtered(app):
    at = show(app, EVALUATE)
    assert len(at.get("plotly_chart")) >= 6
    at.button(key="eval_browse_False").click().run()
    assert at.title[0].value == "Browse"
    assert "top answer to Q1" in " ".join(b.label for b in at.button)


def test_play_walks_the_tree_to_a_verdict(app):
    at = show(app, PLAY)
    for _ in range(12):
        answers = [b for b in at.button if (b.key or "").startswith("play_")]
        if not answers:
            break
        answers[0].click().run()
    assert "How you compare" in texts(at.subheader) and not at.warning  # a summary, not warnings (issue 28)


def train_tiny(at):
    """Start a one-epoch run on 64 galaxies from the Train page, wait for it, and rerun the page."""
    at.number_input(key="train_minutes").set_value(0.0)  # by epochs (a labels CSV's target defaults to minutes)
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_subset").set_value(64)
    at.button[0].click().run()  # the form's submit button
    from gzcore.dashboard import state
    run = state.run_slot()["run"]
    run.thread.join(timeout=120)
    assert run.error is None and run.result, run.status()
    at.run()
    return run


@pytest.mark.slow
def test_train_runs_in_the_background_and_compares(app):
    train_tiny(show(app, TRAIN))
    assert "Before and after" in texts(app.subheader) and len(app.metric) == 2


@pytest.mark.slow
def test_train_distils_the_loaded_model(app, dashboard_env):
    at = show(app, TRAIN)
    at.checkbox(key="train_distil").check()
    run = train_tiny(at)
    teacher = dashboard_env["GZ_CHECKPOINT"]
    assert run.config.teacher == teacher and checkpoint.read(run.out)["train_config"]["teacher"] == teacher
    assert any(event == "teacher" for event, _ in run.events)
    assert "Before and after" in texts(at.subheader) and len(at.metric) == 2


def test_bad_inputs_show_a_message_not_a_traceback(app, tmp_path, dashboard_env):
    (tmp_path / "empty").mkdir()
    not_a_checkpoint = tmp_path / "junk.pt"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    other = torch.load(dashboard_env["GZ_CHECKPOINT"], weights_only=True)
    other["model_config"]["name"] = "resnet18"
    torch.save(other, tmp_path / "other.pt")
    cases = [({"data": str(tmp_path / "missing")}, "no such folder"),
             ({"data": str(tmp_path / "empty")}, "not a Galaxy Zoo folder"),
             ({"model": str(not_a_checkpoint)}, "not a readable gzcore checkpoint"),
             ({"model": str(tmp_path / "other.pt")}, "weights do not fit")]
    for session, message in cases:
        at = show(app, HOME, **session)
        assert message in texts(at.error), (session, texts(at.error))
        show(at, BROWSE)
        assert message in texts(at.error)
        show(at, HOME)  # the pickers stay usable: choosing a good folder or model recovers
        if "data" in session:
            at.text_input(key="home_data").set_value(dashboard_env["GZ_DATA"]).run()
        else:
            at.text_input(key="home_model_path").set_value(dashboard_env["GZ_CHECKPOINT"]).run()
        assert not at.error, (session, texts(at.error))
        assert {m.label: m.value for m in at.metric}["Galaxies"] == "96"
        at.session_state["data"] = at.session_state["model"] = None


def test_bad_labels_show_a_message_and_clearing_them_recovers(app, tmp_path, target_env):
    pd.DataFrame({"id": [1, 2], "oh": [8.5, 8.6]}).to_csv(tmp_path / "elsewhere.csv", index=False)
    pd.read_csv(target_env["labels"]).rename(columns={"oh": "z"}).to_csv(tmp_path / "z.csv", index=False)
    cases = [(tmp_path / "missing.csv", "cannot be read as CSV"), (tmp_path / "z.csv", "no column 'oh'"),
             (tmp_path / "elsewhere.csv", "none of its images has a label")]
    for labels, message in cases:
        at = show(app, HOME, model=target_env["GZ_CHECKPOINT"], labels=str(labels), home_labels=str(labels))
        assert message in texts(at.error), (labels, texts(at.error))
        assert message in texts(show(at, GALAXY).error)
        at = show(at, HOME)
        at.text_input(key="home_labels").set_value("").run()  # no labels: predictions only
        assert not at.error and "No labels for this model's targets" in texts(at.info)


def test_a_corrupt_image_is_skipped_and_reported(app, tmp_path, dashboard_env, monkeypatch):
    folder = shutil.copytree(dashboard_env["GZ_DATA"], tmp_path / "universe")
    next((folder / "images_training_rev1").glob("*.jpg")).write_bytes(b"\xff\xd8 broken")
    monkeypatch.setenv("GZ_DATA", str(folder))
    at = show(app, HOME)
    assert "Skipped 1 unreadable" in texts(at.warning)
    assert {m.label: m.value for m in at.metric}["Galaxies"] == "95"


def test_first_start_renders_the_default_universe(app, monkeypatch):
    from gzcore.dashboard import choices, state
    monkeypatch.delenv("GZ_DATA")
    monkeypatch.setattr(choices, "UNIVERSE_N", 12)
    at = show(app, HOME)
    assert (state.universe_dir() / "training_solutions_rev1.csv").is_file()
    assert {m.label: m.value for m in at.metric}["Galaxies"] == "12"


def test_a_folder_without_labels_shows_the_model_alone(app, tmp_path, dashboard_env):
    images = tmp_path / "unlabelled" / "images_test_rev1"
    shutil.copytree(f"{dashboard_env['GZ_DATA']}/images_training_rev1", images)
    at = show(app, HOME, data=str(images.parent))
    assert {m.label: m.value for m in at.metric}["Crowd labels"] == "no"
    for page in PAGES[1:]:
        show(at, page)
        assert not at.error, (page, texts(at.error))
    assert "has no labels" in texts(show(at, EVALUATE).info)
    at = show(at, EVALUATE, labels=f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")  # Kaggle answers elsewhere
    assert not at.info and {"eval_overall", "eval_per_q", "eval_calibration"} <= set(figures(at))


@pytest.mark.slow
def test_an_ensemble_checkpoint_drives_the_model_pages(dashboard_env, monkeypatch, tmp_path):
    from gzcore import ensemble, train
    other = tmp_path / "other.pt"
    train.fit(dashboard_env["GZ_DATA"], replace(DASHBOARD, init_seed=1), out=other)
    ensemble.combine([dashboard_env["GZ_CHECKPOINT"], other], tmp_path / "e.pt", dashboard_env["GZ_DATA"])
    monkeypatch.setenv("GZ_DATA", dashboard_env["GZ_DATA"])
    monkeypatch.setenv("GZ_CHECKPOINT", str(tmp_path / "e.pt"))
    at = show(AppTest.from_file(str(ROOT / "app.py"), default_timeout=120), HOME)
    assert {m.label: m.value for m in at.metric}["Model"] == "ensemble of 2"
    assert "2 models averaged" in texts(at.caption)
    for page in (BROWSE, GALAXY, EXPLAIN, EVALUATE):
        assert not show(at, page).error, texts(at.error)


def test_a_regression_model_drives_every_page(target_env, monkeypatch):
    env = {k: v for k, v in target_env.items() if k != "labels"}
    at = show(app_with(env, monkeypatch), HOME, labels=target_env["labels"])
    assert "**The model predicts** the target oh (regression)" in texts(at.markdown)
    assert {m.label: m.value for m in at.metric}["Labels"] == "yes"
    for page in PAGES:
        assert not show(at, page).error, (page, texts(at.error))
        assert at.title, page
    for page in (DATASET, PLAY):  # made for the tree: they say so
        assert "for Galaxy Zoo decision-tree models" in texts(show(at, page).info)

    at = show(at, BROWSE)
    assert "(true " in texts(at.caption) and "oh 8." in texts(at.caption)
    assert {"error · oh (model − true)", "spread · oh", "uncertainty: the model's spread (descending: least "
            "certain first)"} <= set(at.selectbox(key="browse_sort").options)  # as shown
    at.selectbox(key="browse_sort").set_value("error oh").run()
    at.selectbox(key="browse_column").set_value("crowd oh").run()
    at.slider(key="browse_range_crowd oh").set_value((8.9, 9.4)).run()
    at.button[0].click().run()  # "Add filter"
    assert "8.9 ≤ true · oh ≤ 9.4" in " ".join(b.label for b in at.button)

    known = pd.read_csv(target_env["labels"]).dropna().id.iat[0]
    at = show(at, GALAXY, galaxy=str(known))
    target = next(m for m in at.metric if m.label == "oh")
    assert "±" in target.value and "vs true" in target.delta
    assert len(array(figures(at)["galaxy_target_0"]["data"][-1]["error_x"]["array"])) == 1  # ± spread

    at = show(at, EVALUATE)
    shown = figures(at)
    assert {"eval_overall", "eval_scatter", "eval_calibration"} <= set(shown)
    assert "mean of each target" in json.dumps(shown["eval_overall"])  # beside the baselines
    assert "Spearman ρ (spread vs |error|)" in [m.label for m in at.metric]
    assert "galaxies with a true oh · RMSE" in texts(at.caption)

    at = show(at, EXPLAIN)
    assert len(at.get("plotly_chart")) == 1 and "Integrated Gradients (32 passes) · model oh " in texts(at.caption)

    at = show(at, HOME, labels=None)  # without labels: predictions only
    assert "No labels for this model's targets" in texts(at.info)
    assert "No labels for this model's oh" in texts(show(at, EVALUATE).info)
    for page in (BROWSE, GALAXY, EXPLAIN):
        assert not show(at, page).error, (page, texts(at.error))


@pytest.mark.slow
def test_train_follows_a_regression_model(target_env, monkeypatch):
    env = {"GZ_DATA": target_env["GZ_DATA"], "GZ_CHECKPOINT": target_env["GZ_CHECKPOINT"],
           "GZ_LABELS": target_env["labels"]}  # the labels CSV from the environment, as in the README
    at = show(app_with(env, monkeypatch), TRAIN)
    assert f"Trains oh from `{target_env['labels']}`" in texts(at.caption)
    run = train_tiny(at)
    assert run.config.targets == ("oh",) and run.config.labels == target_env["labels"]
    assert not at.exception and "Before and after" in texts(at.subheader) and len(at.metric) == 2
    assert "oh" in json.dumps(figures(at)["train_compare"])


@pytest.mark.slow
def test_a_classifier_drives_the_model_pages(dashboard_env, tmp_path, monkeypatch):
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")
    classes = np.where(crowd["Class1.1"] >= crowd["Class1.2"], "smooth", "features")
    pd.DataFrame({"id": crowd.GalaxyID, "shape": classes}).to_csv(tmp_path / "shape.csv", index=False)
    train.fit(dashboard_env["GZ_DATA"], replace(DASHBOARD, labels=str(tmp_path / "shape.csv"),
                                                targets=("shape",)), out=tmp_path / "shape.pt")
    env = {"GZ_DATA": dashboard_env["GZ_DATA"], "GZ_CHECKPOINT": str(tmp_path / "shape.pt")}
    at = show(app_with(env, monkeypatch), HOME, labels=str(tmp_path / "shape.csv"))
    assert "the class of `shape`: one of features, smooth (a classifier)" in texts(at.markdown)
    for page in (BROWSE, GALAXY, EXPLAIN, EVALUATE, DATASET, PLAY):
        assert not show(at, page).error, (page, texts(at.error))
    at = show(at, EVALUATE)
    assert {"Accuracy", "Majority class (from the training split)"} <= {m.label for m in at.metric}
    assert "eval_class_confusion" in figures(at) and "eval_calibration" not in figures(at)
    classes = answers(show(at, GALAXY))
    assert len(classes) == 1 and {"model · smooth", "model · features"} <= {t.split(":")[0] for t in bar_titles(classes[0])}
    assert "true " in texts(show(at, BROWSE).caption)


def test_partial_labels_show_the_questions_they_have(app, partial_dir):
    at = show(app, HOME, data=str(partial_dir))
    assert {m.label: m.value for m in at.metric}["Crowd labels"] == "yes (partial)"
    assert "Crowd labels for Q1 (96 galaxies), Q2 (96 galaxies), Q6 (96 galaxies), Q7 (96 galaxies), " \
           "Q8 (86 galaxies); none for the other questions (6 of 11)" in texts(at.caption)
    for page in PAGES[1:]:
        if page is not TRAIN:
            assert not show(at, page).error, (page, texts(at.error))
    at = show(at, EVALUATE)
    per_q = figures(at)["eval_per_q"]["data"][0]["x"]
    assert per_q == ["Q1 shape (n=10)", "Q2 edge-on (n=10)", "Q6 odd (n=10)", "Q7 roundness (n=10)",
                     "Q8 odd feature (n=9)"]  # the 10 held-out galaxies, one without Q8
    assert "Partial labels: 5 of 11 questions" in texts(at.caption)
    at = show(at, GALAXY)
    assert "no crowd labels for this question" in answers(at)[2]  # Q3
    assert "no crowd labels for this question" not in answers(at)[0]
    at = show(at, BROWSE)
    options = at.selectbox(key="browse_column").options
    assert "crowd conditional · Q1 smooth" in options and "crowd conditional · Q3 bar" not in options
    assert "model conditional · Q3 bar" in options


def test_uncertainty_error_bars_least_certain_first_and_calibration(app):
    at = show(app, GALAXY)
    model = [t for t in bar_titles(answers(at)[0]) if t.startswith("model · ")]
    spreads = [float(t.split(" ± ")[1]) for t in model]
    assert len(spreads) == 3 and max(spreads) > 0 and 'class="gzb-e"' in answers(at)[0]  # whiskers
    assert "± spread: the standard deviation of the model's 8 test-time views" in texts(at.caption)

    at = show(at, BROWSE)
    at.selectbox(key="browse_sort").set_value("uncertainty").run()
    first = [float(c.value.split(" · ")[0]) for c in at.caption
             if " · " in c.value and "galaxies match" not in c.value]
    assert len(first) == 24 and first == sorted(first, reverse=True) and first[0] > 0  # least certain first

    at = show(at, EVALUATE)
    calibration = figures(at)["eval_calibration"]["data"]
    assert len(array(calibration[0]["x"])) == 10  # bins of equal count
    assert (array(calibration[1]["x"]) == array(calibration[1]["y"])).all()  # the diagonal
    rho = float(next(m.value for m in at.metric if m.label.startswith("Spearman")))
    assert -1 <= rho <= 1
    assert "model (8-view TTA)" in json.dumps(figures(at)["eval_overall"])


def test_a_models_filters_do_not_follow_another_model(app, target_env):
    at = show(app, BROWSE)
    at.selectbox(key="browse_sort").set_value("disagreement").run()
    at.button[0].click().run()  # a filter on the tree model's first column
    assert any(b.label.startswith("✕") for b in at.button)
    at = show(at, BROWSE, model=target_env["GZ_CHECKPOINT"], labels=target_env["labels"])
    assert not at.error and not any(b.label.startswith("✕") for b in at.button)
    assert at.selectbox(key="browse_sort").value != "disagreement"


def test_the_galaxy_page_says_whether_the_model_trained_on_the_galaxy(app, dashboard_env):
    ckpt = checkpoint.read(dashboard_env["GZ_CHECKPOINT"])
    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/training_solutions_rev1.csv").GalaxyID.to_numpy()
    held = checkpoint.held_out(ids, ckpt)
    for gid, expected in ((ids[held][0], "held out"), (ids[~held][0], "in the training split")):
        at = show(app, GALAXY, galaxy=str(gid))
        assert f":{'green' if expected == 'held out' else 'orange'}-badge[{expected}]" in texts(at.markdown)


def test_explain_opens_on_the_question_in_dispute(app):
    at = show(app, GALAXY)
    disputed = int(re.search(r"largest at Q(\d+)", texts(at.caption)).group(1))
    at = show(at, EXPLAIN)
    assert at.selectbox(key="explain_q").value == disputed
    at.selectbox(key="explain_q").set_value(1 if disputed != 1 else 2).run()  # the visitor's choice stays
    at = show(at, EXPLAIN)
    assert at.selectbox(key="explain_q").value == (1 if disputed != 1 else 2)
