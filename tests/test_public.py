"""GZ_PUBLIC=1: a demo safe to expose. Folders and checkpoints only from the allowed roots (URL and
widgets, `..` and symbolic links resolved), no server paths in messages, training capped and owned,
a visitor's runs private; and, in every mode, a galaxy is a number (never markdown)."""
import os
import shutil

import pytest
from test_app import app_with, show, texts

from gzcore.dashboard import access
from gzcore.dashboard.navigation import BROWSE, COMPARE, GALAXY, HOME, TRAIN
from gzcore.dashboard.state import COMPARE_WITH


@pytest.fixture
def public_env(dashboard_env, tmp_path):
    """dashboard_env served in public mode, with one more allowed root (GZ_ALLOW) holding a copy of
    the data, and a folder outside every root."""
    allowed = tmp_path / "allowed"
    shutil.copytree(dashboard_env["GZ_DATA"], allowed / "copy")
    shutil.copytree(dashboard_env["GZ_DATA"], tmp_path / "outside")
    return {**dashboard_env, "GZ_PUBLIC": "1", "GZ_ALLOW": str(allowed)}


def chosen(at, key):
    return at.session_state[key] if key in at.session_state else None


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("query", ["outside", "allowed/../outside", "allowed/link", "model"])
def test_a_deep_link_outside_the_allowed_roots_is_refused_and_nothing_is_read(public_env, monkeypatch, tmp_path,
                                                                              query):
    os.symlink(tmp_path / "outside", tmp_path / "allowed" / "link")  # inside the root, pointing out
    (tmp_path / "outside" / "m.pt").write_bytes(b"")
    at = app_with(public_env, monkeypatch)
    if query == "model":
        at.query_params["model"] = str(tmp_path / "outside" / "m.pt")
    else:
        at.query_params["data"] = str(tmp_path / query)
    at = show(at, HOME)
    refusal = texts(at.error)
    assert f"the {'model' if query == 'model' else 'data'} chosen is not available here" in refusal
    assert str(tmp_path) not in refusal  # and it says nothing of what exists there
    assert metrics(at)["Galaxies"] == "96" and not chosen(at, "data" if query != "model" else "model")
    assert "data" not in at.query_params and "model" not in at.query_params


def test_widgets_are_held_to_the_allowed_roots_too(public_env, monkeypatch, tmp_path):
    at = show(app_with(public_env, monkeypatch), HOME)
    at.text_input(key="home_data").set_value(str(tmp_path / "outside")).run()
    assert "not available here" in texts(at.error) and chosen(at, "data") is None
    at.text_input(key="home_data").set_value(str(tmp_path / "allowed" / "copy")).run()  # GZ_ALLOW
    assert not at.error and at.session_state["data"] == str(tmp_path / "allowed" / "copy")
    at.text_input(key="home_predictions").set_value("/etc/passwd").run()
    assert "not available here" in texts(at.error) and not chosen(at, "predictions")


def test_the_compare_pages_second_model_is_held_to_the_allowed_roots(public_env, monkeypatch, tmp_path):
    outside = tmp_path / "outside" / "m.pt"
    shutil.copy(public_env["GZ_CHECKPOINT"], outside)  # a real checkpoint, outside every root
    at = show(app_with(public_env, monkeypatch), COMPARE)
    at.text_input(key="compare_model_path").set_value(str(outside)).run()
    assert "the model chosen is not available here" in texts(at.error) and str(tmp_path) not in texts(at.error)
    assert chosen(at, COMPARE_WITH) is None and not at.dataframe


def test_public_errors_name_files_not_the_servers_folders(public_env, monkeypatch, tmp_path):
    broken = tmp_path / "allowed" / "broken.pt"
    broken.write_bytes(b"")  # a 0-byte checkpoint in an allowed root
    at = app_with(public_env, monkeypatch)
    at.query_params["model"] = str(broken)
    at = show(at, BROWSE)
    shown = texts(at.error)
    assert "broken.pt" in shown and str(tmp_path) not in shown
    assert not at.exception


def test_a_galaxy_in_the_url_is_a_number_never_markdown(dashboard_env, monkeypatch):
    at = app_with(dashboard_env, monkeypatch)  # in every mode
    at.query_params["galaxy"] = "[click](https://evil.example) ![x](https://evil.example/t.png)"
    at = show(at, GALAXY)
    page = texts(at.markdown) + texts(at.warning) + texts(at.caption)
    assert "evil.example" not in page and at.title[0].value.startswith("Galaxy ")


@pytest.mark.slow
def test_public_training_is_capped_and_only_its_starter_may_stop_it(public_env, monkeypatch):
    at = show(app_with(public_env, monkeypatch), TRAIN)
    assert at.text_input(key="train_data").disabled
    assert at.number_input(key="train_epochs").max == access.TRAINING["epochs"]
    assert at.number_input(key="train_subset").max == access.TRAINING["subset"]
    assert "at most 1 minute" in texts(at.caption)
    at.number_input(key="train_subset").set_value(64)
    at.button[0].click().run()  # Start training (the form's submit button)
    from gzcore.dashboard import state
    run = state.run_slot()["run"]
    try:
        assert run.config.minutes == access.TRAINING["minutes"] and run.config.threads == 1
        assert any(b.key == "train_stop" for b in at.button)  # the starter sees Stop
        other = show(app_with(public_env, monkeypatch), TRAIN)  # another visitor, same server
        assert not any(b.key == "train_stop" for b in other.button)
    finally:
        run.stop.set()
        run.thread.join(timeout=120)
    assert run.out.is_file(), run.status()
    def listed(at):
        return any(o.startswith(run.out.name) for o in show(at, HOME).selectbox(key="home_model").options)
    assert listed(at) and not listed(other)  # in the starter's model list, not in another visitor's
