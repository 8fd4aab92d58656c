"""A first model of your own target from the Train page (issue 26, part 2), and uploads that are one of
the loaded galaxies (part 3): units read from a header or typed in, kept in the checkpoint and shown
in one format everywhere; the image folder inside the one given suggested; a labels CSV with any id
column taken while a tree model is loaded; fine-tuning from the shipped model; the whole path headless
(AppTest), and in Chromium (tests/test_browser_target.py)."""
import io
import re
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DASHBOARD, gz, tiny_cli
from PIL import Image
from test_app import app_with, figures, show, texts

from gzcore import checkpoint, data, runs, targets, train, upload
from gzcore.dashboard import charts, learn
from gzcore.dashboard.navigation import (BROWSE, COMPARE, EVALUATE, EXPLAIN, GALAXY, HOME, TRAIN,
                                        YOUR_GALAXY)


@pytest.fixture(scope="module")
def survey(dashboard_env, tmp_path_factory):
    """A survey folder as astronomers bring one: `images/<objID>.jpg` (dashboard_env's universe) and
    beside them `labels.csv` with `objID`, a number whose header gives its units (`oh [dex]`: 8.4 +
    the crowd's smooth fraction, which the images show), a class name and a small integer code."""
    folder = tmp_path_factory.mktemp("survey") / "my-survey"
    shutil.copytree(f"{dashboard_env['GZ_DATA']}/{data.IMAGE_DIRS[0]}", folder / "images")
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")
    smooth = crowd["Class1.1"]
    pd.DataFrame({"objID": crowd.GalaxyID, "oh [dex]": 8.4 + smooth,
                  "kind": np.where(smooth > 0.5, "elliptical", "spiral"),
                  "code": (smooth > 0.5).astype(int)}).to_csv(folder / "labels.csv", index=False)
    return folder


# ---------------------------------------------------------------- the library


def test_values_are_shown_in_one_format_with_their_units():
    assert targets.value_text(8.9412, 0.0213, "dex") == "8.94 ± 0.02 dex"
    assert targets.value_text(8.9412, 0.15, "dex") == "8.94 ± 0.15 dex"  # a leading 1 keeps two digits
    assert targets.value_text(8.9412, None, "dex") == "8.94 dex"
    assert targets.value_text(8.9412) == "8.94"
    assert targets.value_text(1234.5, 56, "km/s") == "1230 ± 60 km/s"
    assert targets.value_text(float("nan"), 0.1, "dex") == "–"
    task = targets.Task("regression", ("oh", "mass"), units=("dex", ""))
    assert task.format("oh", 8.9412, 0.0213) == "8.94 ± 0.02 dex" and task.format("mass", 10.512) == "10.5"
    assert task.shared_unit == "" and replace(task, units=("dex", "dex")).shared_unit == "dex"
    assert task.named("oh") == "oh (dex)" and task.named("mass") == "mass"
    assert targets.header_units("oh_p50 [dex]") == "dex" and targets.header_units("M (log Msun)") == "log Msun"
    assert targets.header_units("oh_p50") == ""


def test_a_labels_csv_gives_its_columns_units_and_classes(survey, tmp_path):
    id_column, columns = targets.columns(survey / "labels.csv")
    assert id_column == "objID"
    assert [(c.name, c.kind, c.units, c.known) for c in columns] == [
        ("oh [dex]", "regression", "dex", 96), ("kind", "classification", "", 96), ("code", "regression", "", 96)]
    assert targets.read(survey / "labels.csv", ["oh [dex]"])[2].units == ("dex",)  # from the header
    assert targets.read(survey / "labels.csv", ["oh [dex]"], units=["mag"])[2].units == ("mag",)  # typed in
    _, values, task = targets.read(survey / "labels.csv", ["code"], classes=True)
    assert task.kind == "classification" and task.columns == ("0", "1") and set(values[:, 0]) == {0, 1}
    with pytest.raises(data.DataError, match="2 units for 1 targets"):
        targets.read(survey / "labels.csv", ["oh [dex]"], units=["dex", "mag"])
    assert targets.labels_near(survey / "images") == [survey / "labels.csv"]
    assert targets.Task.from_dict({"kind": "regression", "columns": ["oh"]}).units == ()  # older checkpoints
    pd.DataFrame({"objID": [1]}).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(data.DataError, match="only one column"):
        targets.columns(tmp_path / "one.csv")


def test_a_folder_without_images_names_the_one_inside_that_has_them(survey, tmp_path):
    assert data.image_folders_inside(survey) == [survey / "images"]
    with pytest.raises(data.DataError, match=f"its folder images/ holds images: use {survey / 'images'}"):
        data.find_images(survey)
    result = gz("train", "--data", survey, "--labels", survey / "labels.csv", "--target", "oh [dex]",
                "--out", tmp_path / "m.pt")
    assert result.returncode != 0 and f"use {survey / 'images'}" in result.stderr


@pytest.mark.slow  # trains two models
def test_units_travel_in_the_checkpoint(survey, tmp_path):
    out = tmp_path / "oh.pt"
    result = gz("train", "--data", survey / "images", "--labels", survey / "labels.csv", "--target", "oh [dex]",
                "--units", "dex", *tiny_cli(1), "--out", out)
    assert result.returncode == 0, result.stderr
    task = targets.of_checkpoint(checkpoint.read(out))
    assert task.units == ("dex",) and runs.describe(out)["task"].units == ("dex",)
    shown = gz("evaluate", "--data", survey / "images", "--labels", survey / "labels.csv", "--checkpoint", out)
    assert shown.returncode == 0 and "oh [dex] (dex)" in shown.stdout
    with pytest.raises(ValueError, match="2 units"):
        train.TrainConfig(labels="x.csv", targets=("a",), units=("dex", "mag"))
    result = gz("train", "--data", survey / "images", "--labels", survey / "labels.csv", "--target", "code",
                "--classes", *tiny_cli(1), "--out", tmp_path / "code.pt")
    assert result.returncode == 0, result.stderr
    assert targets.of_checkpoint(checkpoint.read(tmp_path / "code.pt")).columns == ("0", "1")  # numbers as classes


def test_an_upload_that_is_a_loaded_galaxy_is_recognised_by_its_pixels(dashboard_env):
    galaxies = data.open_folder(dashboard_env["GZ_DATA"])
    pp = data.Preprocess(**checkpoint.read(dashboard_env["GZ_CHECKPOINT"])["preprocess"])
    crops, galaxies = data.load_crops(galaxies, pp)
    path = galaxies.paths[7]
    mine = upload.read_bytes(path.read_bytes(), "renamed.jpg", pp)  # its name does not matter, its pixels do
    assert upload.known_galaxy(mine.crop, crops, galaxies.ids) == galaxies.ids[7]
    again = io.BytesIO()
    Image.open(path).save(again, "JPEG", quality=80)  # re-encoded: other pixels
    assert upload.known_galaxy(upload.read_bytes(again.getvalue(), "again.jpg", pp).crop, crops, galaxies.ids) is None
    assert upload.known_galaxy(mine.crop[:-1], crops, galaxies.ids) is None  # another crop size


# ---------------------------------------------------------------- the pages, headless


def _start_tiny(at):
    """Start the Train page's run with 1 epoch (by epochs, not minutes), wait for it, rerun the page."""
    at.number_input(key="train_minutes").set_value(0.0)
    at.number_input(key="train_epochs").set_value(1)
    next(b for b in at.button if b.label == "Start training").click().run()
    from gzcore.dashboard import state
    run = state.run_slot()["run"]
    run.thread.join(timeout=300)
    assert run.error is None and run.result, run.status()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return run


def test_the_train_page_suggests_the_image_folder_and_defaults_to_a_first_target_model(survey, dashboard_env,
                                                                                     monkeypatch):
    """With a tree model loaded: the folder above `images/` is not refused blindly, the labels CSV
    beside the images (objID, not GalaxyID) is offered, its first numeric column picked with the
    header's units, and the form takes FIRST_TARGET's defaults."""
    at = show(app_with(dashboard_env, monkeypatch), TRAIN)
    assert at.segmented_control(key="train_learn").value == learn.TREE  # a Kaggle folder and a tree model
    at.text_input(key="train_data").set_value(str(survey)).run()
    assert "its folder `images/` does" in texts(at.warning)
    assert next(b for b in at.button if b.label == "Start training").disabled
    at.button(key="train_use_inside").click().run()
    assert at.text_input(key="train_data").value == str(survey / "images") and not at.error, texts(at.error)
    assert at.segmented_control(key="train_learn").value == learn.CSV
    assert at.text_input(key="train_labels").value == str(survey / "labels.csv")
    assert at.multiselect(key="train_targets").value == ["oh [dex]"]
    assert at.text_input(key="train_units").value == "dex"
    assert f"Trains oh [dex] from `{survey / 'labels.csv'}` (dex), from scratch" in texts(at.caption)
    defaults = runs.FIRST_TARGET
    assert {k: at.number_input(key=f"train_{k}").value for k in ("minutes", "subset", "val", "batch")} == {
        "minutes": defaults.minutes, "subset": 0, "val": defaults.val_fraction, "batch": defaults.batch_size}
    at.multiselect(key="train_targets").set_value(["code"]).run()  # few distinct numbers: classes may be asked
    at.segmented_control(key="train_kind").set_value("classes").run()
    assert "its values are the class names" in texts(at.caption)
    at.segmented_control(key="train_start").set_value(learn.SHIPPED).run()
    assert "fine-tuning `default.pt`" in texts(at.caption) and at.selectbox(key="train_model").disabled


@pytest.mark.slow
def test_a_first_target_model_from_the_app_then_every_page_shows_its_units(survey, dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), TRAIN, train_data=str(survey / "images"))
    run = _start_tiny(at)
    assert run.config.labels == str(survey / "labels.csv") and run.config.targets == ("oh [dex]",)
    assert run.config.units == ("dex",) and run.config.val_fraction == runs.FIRST_TARGET.val_fraction
    assert targets.of_checkpoint(checkpoint.read(run.out)).units == ("dex",)
    assert "Before and after" in texts(at.subheader)
    assert [m.value.endswith(" dex") for m in at.metric] == [True]  # no before: the tree model predicts otherwise
    shown = figures(at)
    assert shown["train_curves"]["layout"]["yaxis"]["title"]["text"] == "RMSE (dex)"  # the run's own "task" event
    assert shown["train_compare"]["layout"]["yaxis"]["title"]["text"] == "RMSE (dex)"
    next(b for b in at.button if b.label == "Use the new model everywhere").click().run()
    assert at.session_state["model"] == str(run.out) and at.session_state["data"] == str(survey / "images")
    assert at.session_state["labels"] == str(survey / "labels.csv")
    show(at, EVALUATE)
    assert "RMSE in the labels' units (dex)" in texts(at.caption)
    assert "(dex)" in figures(at)["eval_scatter"]["layout"]["yaxis"]["title"]["text"]
    show(at, BROWSE)
    assert " dex" in texts(at.caption) + texts(at.markdown)
    show(at, GALAXY)
    assert at.metric[0].value.endswith(" dex") and "vs true" in at.metric[0].delta


@pytest.mark.slow
def test_fine_tuning_the_shipped_model_from_the_page(survey, dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), TRAIN, train_data=str(survey / "images"))
    at.segmented_control(key="train_start").set_value(learn.SHIPPED).run()
    at.number_input(key="train_subset").set_value(32)
    run = _start_tiny(at)
    assert run.config.init == str(checkpoint.default()) and run.config.backbone_lr == runs.FIRST_TARGET.backbone_lr
    assert checkpoint.read(run.out)["model_config"]["name"] == train.with_init(run.config).model == "xresnet18"
    assert "Before and after" in texts(at.subheader)


def _upload(at, name: str, blob: bytes):
    at.file_uploader(key="your_galaxy_file").set_value((name, blob, "application/octet-stream")).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_your_galaxy_says_when_the_upload_is_a_loaded_galaxy(dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), YOUR_GALAXY)
    path = sorted((data.find_images(dashboard_env["GZ_DATA"])).glob("*.jpg"))[5]
    at = _upload(at, "upload.jpg", path.read_bytes())
    assert f"This is galaxy {path.stem} of the loaded data" in texts(at.success), texts(at.success)
    assert "Crowd's path:" in texts(at.markdown) and "Model's path:" in texts(at.markdown)
    at.button(key="your_known_open").click().run()
    assert at.title[0].value == f"Galaxy {path.stem}"
    other = io.BytesIO()
    Image.open(path).rotate(90).save(other, "PNG")  # another image: no claim
    at = _upload(show(at, YOUR_GALAXY), "other.png", other.getvalue())
    assert not at.success and "Crowd's path:" not in texts(at.markdown)


# ---------------------------------------------------------------- units on every page (issue 26)

@pytest.fixture(scope="module")
def dex_model(survey, tmp_path_factory):
    """A tiny model of `oh [dex]` (its units from the header) on the survey's images, one epoch, and
    a copy of it to compare it with."""
    out = tmp_path_factory.mktemp("dex") / "oh.pt"
    train.fit(survey / "images", replace(DASHBOARD, labels=str(survey / "labels.csv"), targets=("oh [dex]",)),
              out=out)
    shutil.copy(out, out.with_name("oh-again.pt"))
    return out


def _with(dex_model, survey, monkeypatch, page, **session):
    env = {"GZ_DATA": str(survey / "images"), "GZ_CHECKPOINT": str(dex_model)}
    at = show(app_with(env, monkeypatch), page, labels=str(survey / "labels.csv"), **session)
    assert not at.exception and not at.error, (page, texts(at.error), [e.message for e in at.exception])
    return at


@pytest.mark.slow
def test_compare_shows_its_values_in_the_targets_units(dex_model, survey, monkeypatch):
    at = _with(dex_model, survey, monkeypatch, COMPARE, compare_with=str(dex_model.with_name("oh-again.pt")))
    assert [m.value.endswith(" dex") for m in at.metric[:2]] == [True, True]
    assert at.dataframe[0].value.output.tolist() == ["oh [dex] (dex)"]
    assert figures(at)["compare_per_q"]["layout"]["yaxis"]["title"]["text"] == "RMSE (dex)"
    shown = texts(at.caption)
    assert re.search(r"differ \d\.\d{3} dex", shown)
    assert re.search(r"A \(\d\.\d{3} dex\): oh \[dex\] \d\.\d+ dex", shown)  # its error, and what it says


@pytest.mark.slow
@pytest.mark.parametrize("page", [HOME, BROWSE, GALAXY, EVALUATE, EXPLAIN, YOUR_GALAXY], ids=lambda page: page.name)
def test_every_page_shows_target_values_with_units(dex_model, survey, monkeypatch, page):
    at = _with(dex_model, survey, monkeypatch, page)
    if page == BROWSE:  # each galaxy's line begins with the value sorted on
        at.selectbox(key="browse_sort").set_value("rmse").run()
    if page == YOUR_GALAXY:
        at = _upload(at, "mine.jpg", sorted((survey / "images").glob("*.jpg"))[3].read_bytes())
    shown = " | ".join([str(e.value) for e in [*at.caption, *at.markdown]] +
                       [f"{m.value} {m.delta}" for m in at.metric])
    assert " dex" in shown, shown
    number = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"  # a value of the target, or a score of it, without its units:
    unitless = re.findall(rf"(?:oh \[dex\]|RMSE|uncertainty|true|error|spread|differ) \(?({number})(?![\d.e])"
                          rf"(?! ?(?:±|dex))", shown)
    unitless += re.findall(rf"(?:^|\) |\| )({number}) · oh", shown)  # Browse's value sorted on, before a line
    assert not unitless, (unitless, shown)
    for key, figure in figures(at).items():
        titles = [figure["layout"].get(axis, {}).get("title", {}).get("text") or "" for axis in ("xaxis", "yaxis")]
        assert all("dex" in t for t in titles if re.search("RMSE|spread|oh", t)), (key, titles)


def test_the_live_training_curve_is_in_the_targets_units(dashboard_env, monkeypatch):
    """The loss compares standardised targets: the Train page's batch and train curves are turned into
    the labels' units (× the target's spread), as the validation curve is, and the axis names them."""
    from gzcore.dashboard import state
    task = targets.Task("regression", ("oh",), mean=(8.9,), std=(0.25,), units=("dex",))
    run = runs.Run(Path(dashboard_env["GZ_DATA"]), replace(runs.FIRST_TARGET, labels="oh.csv", targets=("oh",)),
                   Path(dashboard_env["GZ_CHECKPOINT"]).with_name("curves.pt"))
    run.events = [("task", {"task": task}), ("step", {"epoch": 0, "progress": 0.5, "loss": 0.64}),
                  ("epoch", {"epoch": 1, "train_rmse": 0.8, "val_rmse": 0.21, "best_val_rmse": 0.21, "seconds": 1})]
    assert run.steps().rmse.tolist() == [pytest.approx(0.2)] and run.epochs().train_rmse.tolist() == [0.2]
    run.thread = threading.Thread(target=run.stop.wait, daemon=True)  # running: the page draws the curves
    run.thread.start()
    slot = state.run_slot()
    slot.update(run=run, owner=None)
    try:
        figure = figures(show(app_with(dashboard_env, monkeypatch), TRAIN))["train_curves"]
    finally:
        run.stop.set()
        slot.update(run=None, owner=None, baseline=None)
    assert figure["layout"]["yaxis"]["title"]["text"] == "RMSE (dex)"
    assert [t["name"] for t in figure["data"]] == ["batch (sqrt loss)", "train RMSE", "validation RMSE"]
    two = replace(task, columns=("oh", "mass"), mean=(8.9, 10.0), std=(0.25, 0.5), units=("dex", "dex"))
    figure = charts.curves(run.steps(), run.epochs(), two)  # no one factor: standardised, said so
    assert figure.layout.yaxis.title.text == "RMSE" and figure.data[2].name == "validation RMSE (dex)"
    assert figure.data[1].name == "train RMSE (standardised)"
