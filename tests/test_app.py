"""Every dashboard page, headless (streamlit.testing AppTest) on a tiny synthetic universe."""
import shutil
from dataclasses import replace

import pandas as pd
import pytest
import torch
from conftest import DASHBOARD, ROOT
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from gzcore import checkpoint
from gzcore.dashboard.navigation import BROWSE, EVALUATE, EXPLAIN, GALAXY, HOME, PAGES, PLAY, TRAIN


@pytest.fixture
def app(dashboard_env, monkeypatch):
    for key, value in dashboard_env.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def show(at, page, **session):
    for key, value in session.items():
        at.session_state[key] = value
    at.switch_page(page.script).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements):
    return " ".join(str(e.value) for e in elements)


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


def test_browse_filters_and_opens_a_galaxy(app):
    at = show(app, BROWSE)
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
    assert len(at.get("plotly_chart")) >= 12  # image + 11 questions
    assert "Q11. How many spiral arms are there?" in texts(at.markdown)
    at.get("button_group")[0].set_value("weighted").run()
    assert not at.exception
    assert "Model's path" in texts(at.markdown)


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
    assert at.success or at.warning
    assert len(at.dataframe) == 1


def test_train_runs_in_the_background_and_compares(app):
    at = show(app, TRAIN)
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_subset").set_value(64)
    at.button[0].click().run()  # the form's submit button
    from gzcore.dashboard import state
    run = state.run_slot()["run"]
    run.thread.join(timeout=120)
    assert run.error is None and run.result, run.status()
    at.run()
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
