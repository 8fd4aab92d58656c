"""Round 3 of issue 27, the dashboard: a public demo shows nothing of the server's folders, a
visitor's training run is theirs alone, the Oddballs marks CSV is capped and read strictly, and odd
values in the URL never crash a page. Property tests (hypothesis) drive every page's query
parameters through AppTest, and edited checkpoint configs through `checkpoint.load`."""
import io
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_app import app_with, show, texts
from test_public import public_env  # noqa: F401  (a fixture)

from gzcore import checkpoint, data, oddballs, runs, train
from gzcore.dashboard import access, choices, navigation, state
from gzcore.dashboard.navigation import DATASET, EVALUATE, GALAXY, HOME, ODDBALLS, PAGES, TRAIN

TINY_CKPT = ROOT / "tests" / "data" / "checkpoints" / "format-1.pt"  # dieleman of width 2
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


def rendered(at) -> str:
    """Everything a browser receives from a page run: every element's message as text (labels,
    values, help, options, tables, charts) and the query string."""
    parts = [text_format.MessageToString(node.proto, as_utf8=True)
             for node in at._tree if getattr(node, "proto", None) is not None]
    return "\n".join(parts + [f"{k}={v}" for k, v in at.query_params.items()])


def server_folders() -> list[str]:
    """Absolute folders of this server a visitor must never see: the tests' temporary folders (the
    data, the checkpoint, the cache and its runs) and the repository (the shipped checkpoints)."""
    return [str(Path(data.default_cache_dir()).parent), str(ROOT)]


def through_app(at):
    """Run the page again through app.py (its URL sync and sidebar): AppTest runs a page's script alone
    after a session's first run (it resets Streamlit's pages-folder mode every run), a browser never."""
    at.session_state[navigation.FRAMED] = False
    return at.run()


def assert_shows_no_folder(at):
    page = rendered(at)
    leaked = [f for f in server_folders() if f in page]
    assert not leaked, f"{leaked} shown: …{page[page.find(leaked[0]) - 200:page.find(leaked[0]) + 200]}…"


# ------------------------------------------------------------------ 1. public mode shows no folder


def test_a_galaxy_not_in_the_data_is_said_without_the_data_path(public_env, monkeypatch):
    at = app_with(public_env, monkeypatch)
    at.query_params["galaxy"] = "1"
    at = show(at, GALAXY)
    assert "GalaxyID 1 is not in the loaded galaxies (`universe`); showing the first galaxy" in texts(at.warning)
    assert_shows_no_folder(at)


@pytest.mark.parametrize("value", [".", "", "./"])
def test_a_data_value_with_no_name_in_it_is_judged_not_a_crash(public_env, monkeypatch, value):
    at = app_with(public_env, monkeypatch)  # hypothesis found ?data=. crashing every page in public mode
    at.query_params["data"] = value
    at = show(at, EVALUATE)
    assert not at.exception and at.title
    assert_shows_no_folder(at)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_shows_the_servers_folders_in_public_mode(public_env, monkeypatch, page):
    at = show(app_with(public_env, monkeypatch), page)
    assert not at.exception
    assert_shows_no_folder(at)


def test_the_data_boxes_hold_names_that_are_read_back(public_env, monkeypatch, tmp_path):
    at = show(app_with(public_env, monkeypatch), HOME)
    assert at.text_input(key="home_data").value == "universe"  # GZ_DATA's name, not its path
    at.text_input(key="home_data").set_value("allowed/copy").run()  # a folder of GZ_ALLOW, by its name
    assert not at.error and at.session_state["data"] == str(tmp_path / "allowed" / "copy")
    through_app(at)
    assert at.query_params["data"] == "allowed/copy" and at.metric[0].value == "96"
    assert_shows_no_folder(at)
    at = show(at, TRAIN)
    assert at.text_input(key="train_data").value == "allowed/copy"
    assert_shows_no_folder(at)
    at = app_with(public_env, monkeypatch)  # the name in a link is read back as the folder
    at.query_params["data"] = "allowed/copy"
    at = show(at, DATASET)
    assert at.session_state["data"] == str(tmp_path / "allowed" / "copy") and "galaxies in `allowed/copy`" in \
        texts(at.caption)


def test_the_train_pages_labels_box_holds_a_name_that_is_read_back(public_env, monkeypatch, tmp_path):
    """Issue 27: the labels CSV offered beside the images is named as a visitor may see it, never by
    the server's path, and the name typed back is read as the file."""
    folder = tmp_path / "allowed" / "copy"
    crowd = pd.read_csv(folder / data.LABELS_FILE)
    pd.DataFrame({"objID": crowd.GalaxyID, "oh [dex]": 8.4 + crowd["Class1.1"]}).to_csv(folder / "oh.csv", index=False)
    at = show(app_with({**public_env, "GZ_DATA": str(folder)}, monkeypatch), TRAIN)
    at.segmented_control(key="train_learn").set_value("csv").run()
    assert at.text_input(key="train_labels").value == "copy/oh.csv"
    assert not at.error and at.multiselect(key="train_targets").value == ["oh [dex]"], texts(at.error)
    assert "Trains oh [dex] from `oh.csv` (dex)" in texts(at.caption)
    assert_shows_no_folder(at)


def test_locally_the_boxes_and_the_url_hold_whole_paths(dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), HOME)
    assert at.text_input(key="home_data").value == dashboard_env["GZ_DATA"]  # a local tool: its user's paths


# ------------------------------------------------------------------ 2. a visitor's run is theirs


def fake_run(env, out: Path, *, error: str | None = None, steps: int = 3, running: bool = False) -> runs.Run:
    """A run in the server's slot without training: `steps` batches recorded, a result (or `error`),
    and while `running` a thread that waits until the run's stop is set."""
    run = runs.Run(Path(env["GZ_DATA"]), train.TrainConfig(minutes=1.0, epochs=3, subset=64), out)
    run.events = [("step", {"epoch": 1, "progress": (i + 1) / 10, "loss": 0.05}) for i in range(steps)]
    run.error = error
    if not error and not running:
        run.result = {"val_rmse": 0.2, "device": "cpu", "precision": "fp32"}
    if running:
        run.thread = threading.Thread(target=run.stop.wait, daemon=True)
        run.thread.start()
    return run


@pytest.fixture
def slot():
    found = state.run_slot()
    yield found
    if found.get("run") is not None:
        found["run"].stop.set()
    found.update(run=None, owner=None, baseline=None)


def visitor(env, monkeypatch, name: str, mine: list[str] = ()):
    at = app_with(env, monkeypatch)
    at.session_state["_visitor"] = name
    at.session_state[state.MY_RUNS] = list(mine)
    return at


def test_another_visitors_run_shows_only_that_the_server_is_busy(public_env, monkeypatch, slot):
    out = Path(public_env["GZ_CHECKPOINT"]).parent / "20261201-000000-dieleman.pt"
    slot.update(run=fake_run(public_env, out, running=True), owner="first", baseline=public_env["GZ_CHECKPOINT"])
    mine = show(visitor(public_env, monkeypatch, "first", [str(out)]), TRAIN)
    assert "train_curves" in {c.key for c in mine.get("plotly_chart")} and mine.button(key="train_stop")
    other = show(visitor(public_env, monkeypatch, "second"), TRAIN)
    assert "The server is busy with another visitor's run (about 1 minute left)" in texts(other.info)
    assert not other.get("plotly_chart") and not other.get("progress")
    assert not any(b.key == "train_stop" for b in other.button) and out.name not in rendered(other)
    assert next(b for b in other.get("button") if b.proto.label == "Start training").proto.disabled


def test_a_finished_run_its_results_and_adoption_are_its_starters_alone(public_env, monkeypatch, slot):
    runs_dir = data.default_cache_dir() / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    out = runs_dir / "20261201-000000-dieleman.pt"
    out.write_bytes(Path(public_env["GZ_CHECKPOINT"]).read_bytes())
    try:
        slot.update(run=fake_run(public_env, out), owner="first", baseline=public_env["GZ_CHECKPOINT"])
        other = show(visitor(public_env, monkeypatch, "second"), TRAIN)
        page = rendered(other)
        assert "No run yet" in texts(other.info) and out.name not in page and "Before and after" not in page
        assert not any(b.proto.label == "Use the new model everywhere" for b in other.get("button"))
        guest = visitor(public_env, monkeypatch, "third")  # its name in a link: still not theirs
        guest.query_params["model"] = f"runs/{out.name}"
        guest = show(guest, HOME)
        assert "the model chosen is not available here" in texts(guest.error) and not guest.session_state["model"]

        mine = show(visitor(public_env, monkeypatch, "first", [str(out)]), TRAIN)
        assert "Before and after" in texts(mine.subheader)
        next(b for b in mine.button if b.label == "Use the new model everywhere").click().run()
        assert mine.session_state["model"] == str(out)
        through_app(mine)
        assert mine.query_params["model"] == f"runs/{out.name}"  # its name, resolved on the server
        assert_shows_no_folder(mine)
    finally:
        out.unlink()


def test_a_failed_run_says_its_error_once_to_its_starter_alone(public_env, monkeypatch, slot):
    out = Path(public_env["GZ_CHECKPOINT"]).parent / "failed.pt"
    slot.update(run=fake_run(public_env, out, error=f"{public_env['GZ_DATA']}/7.jpg: cannot decode", steps=0),
                owner="first", baseline=public_env["GZ_CHECKPOINT"])
    mine = show(visitor(public_env, monkeypatch, "first"), TRAIN)
    page = rendered(mine)
    assert page.count("7.jpg: cannot decode") == 1 and not mine.get("plotly_chart")  # once, and no empty chart
    assert_shows_no_folder(mine)
    other = show(visitor(public_env, monkeypatch, "second"), TRAIN)
    assert "cannot decode" not in rendered(other) and "No run yet" in texts(other.info)


def test_locally_a_run_is_everyones_and_a_failed_one_draws_its_curves_if_it_has_some(dashboard_env, monkeypatch,
                                                                                     slot):
    out = Path(dashboard_env["GZ_CHECKPOINT"]).parent / "failed.pt"
    slot.update(run=fake_run(dashboard_env, out, error="out of memory", steps=4), owner="first")
    at = show(visitor(dashboard_env, monkeypatch, "second"), TRAIN)
    assert rendered(at).count("out of memory") == 1 and at.get("plotly_chart")


def test_a_second_start_while_a_run_goes_on_starts_nothing(public_env, slot, monkeypatch):
    first = fake_run(public_env, Path("/nonexistent/a.pt"), running=True)
    slot.update(run=first, owner="first")
    monkeypatch.setattr(runs.Run, "start", lambda self: pytest.fail("a second run started"))
    later = runs.Run(Path(public_env["GZ_DATA"]), train.TrainConfig(), Path("/nonexistent/b.pt"))
    assert state.start_run(slot, later, Path("x")) is False and slot["run"] is first and slot["owner"] == "first"


# ------------------------------------------------------------------ 3. the Oddballs marks CSV


def test_marks_are_read_strictly_and_capped():
    for cells, why in ((["²"], "row 2 has no GalaxyID (found '²': a GalaxyID is made of the digits 0-9)"),
                       (["7", "١٢"], "row 3 has no GalaxyID (found '١٢'"),
                       (["1" * 26], "row 2 has no GalaxyID (found '111111111111111111111111…': beyond "
                                    "9,223,372,036,854,775,807"),
                       (["9223372036854775808"], "beyond 9,223,372,036,854,775,807"),
                       (["7", "  "], "row 3 has no GalaxyID (its cell is empty)"),
                       (["-3"], "row 2 has no GalaxyID (found '-3'")):
        with pytest.raises(data.DataError) as e:
            oddballs.read_marks(_io("GalaxyID,mark\n" + "".join(f"{c},seed\n" for c in cells)), "m.csv")
        assert str(e.value).startswith("m.csv: ") and why in str(e.value)
    assert oddballs.read_marks(_io("GalaxyID,mark\n9223372036854775807,seed\n"), "m.csv") == {2 ** 63 - 1: "seed"}
    with pytest.raises(data.DataError, match=r"^m\.csv: 10,001 rows; a marks CSV holds at most 10,000$"):
        oddballs.read_marks(_io("GalaxyID,mark\n" + "".join(f"{i},seed\n" for i in range(10_001))), "m.csv")
    began = time.perf_counter()
    with pytest.raises(data.DataError, match=r"^m\.csv: more than 1 MB; a marks CSV holds at most 10,000 rows$"):
        oddballs.read_marks(_io("GalaxyID,mark\n" + "".join(f"{i},seed\n" for i in range(1_000_000))), "m.csv")
    assert time.perf_counter() - began < 2  # read no further than the cap


def _io(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode())


def _marks_csv(ids, mark="seed") -> bytes:
    return ("GalaxyID,mark\n" + "".join(f"{i},{mark}\n" for i in ids)).encode()


@pytest.fixture
def oddballs_page(dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), ODDBALLS)
    assert at.file_uploader(key="odd_upload").proto.max_upload_size_mb == 1
    return at


@pytest.mark.parametrize("cell, why", [("²", "found '²'"), ("1" * 26, "found '111111111111111111111111…': beyond 9,223,372,036,854,775,807"),
                                       ("", "its cell is empty")], ids=["superscript two", "26 digits", "blank"])
def test_an_odd_id_in_a_marks_csv_is_a_message_and_the_page_stays_usable(oddballs_page, cell, why):
    at = oddballs_page
    at.file_uploader(key="odd_upload").set_value(("marks.csv", _marks_csv([cell]), "text/csv")).run()
    assert not at.exception and f"marks.csv: row 2 has no GalaxyID ({why}" in texts(at.error)
    assert at.button(key="odd_clear") and at.button(key="odd_more")
    at.run()  # every later run of the page too
    assert not at.exception and at.button(key="odd_clear")


def test_a_marks_csv_over_the_caps_is_refused(oddballs_page):
    at = oddballs_page
    at.file_uploader(key="odd_upload").set_value(("many.csv", _marks_csv(range(10_001)), "text/csv")).run()
    assert "many.csv: 10,001 rows; a marks CSV holds at most 10,000" in texts(at.error) and not at.exception
    at.file_uploader(key="odd_upload").set_value(("big.csv", _marks_csv(range(200_000)), "text/csv")).run()
    assert "big.csv: more than 1 MB" in texts(at.error) and not at.exception


def test_unknown_ids_are_counted_never_a_negative(oddballs_page, dashboard_env):
    at = oddballs_page
    known = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID.tolist()[:2]
    unknown = range(10 ** 12, 10 ** 12 + 300)
    at.file_uploader(key="odd_upload").set_value(("m.csv", _marks_csv([*known, *unknown]), "text/csv")).run()
    assert not at.exception and "300 of the 302 marked galaxies are not among the loaded galaxies" in texts(at.warning)
    assert "2 seed(s), 0 marked interesting, 0 not" in texts(at.caption)
    at.file_uploader(key="odd_upload").set_value(("none.csv", _marks_csv(unknown), "text/csv")).run()
    assert "300 of the 300 marked" in texts(at.warning) and "Tick **Seed**" in texts(at.info)


def test_start_over_is_drawn_before_anything_the_marks_can_break(oddballs_page, monkeypatch):
    def broken(*args):
        raise RuntimeError("marks the page cannot use")
    monkeypatch.setattr(oddballs, "split_marks", broken)
    at = oddballs_page
    at.run()
    assert at.exception and at.button(key="odd_clear")  # drawn, so the visitor can start over


# ------------------------------------------------------------------ 4. odd values in the URL


ODD = ["²", "١٢٣", "1\x00", "9" * 10_000, "1" * 26, "9223372036854775808", "-1", " 7 ", "0x10", "1e3",
       "[x](https://evil.example)", "../../../etc/passwd", "/etc", "~nobody-here/x", "a\x00b",
       "x" * 300, "/" * 2000, "%00", "runs/../../../../etc", "universe/../..", ""]
VALUES = st.one_of(st.sampled_from(ODD), st.text(max_size=40))  # a URL holds no lone surrogate (UTF-8)


@pytest.mark.parametrize("value", ODD, ids=range(len(ODD)))
def test_odd_galaxy_values_never_crash_the_galaxy_page(dashboard_env, monkeypatch, value):
    at = app_with(dashboard_env, monkeypatch)
    at.query_params["galaxy"] = value
    at = show(at, GALAXY)
    assert at.title[0].value.startswith("Galaxy ")
    assert "evil.example" not in texts(at.markdown) + texts(at.warning) + texts(at.error)


@pytest.mark.parametrize("key", ["model", "data"])
def test_a_model_or_folder_that_is_not_there_is_an_error_not_a_crash(dashboard_env, monkeypatch, key):
    """What the property test found: locally, ?model= naming no file was a FileNotFoundError."""
    at = app_with(dashboard_env, monkeypatch)
    at.query_params[key] = "/nonexistent/²"
    at = show(at, HOME)
    assert "/nonexistent/²" in texts(at.error) and at.page_link  # said, with the way back to a choice


def test_the_url_is_parsed_in_one_place_with_bounds():
    assert choices.galaxy_id("007") == 7 and choices.galaxy_id(str(2 ** 63 - 1)) == 2 ** 63 - 1
    for odd in ("²", "١٢٣", "1\x00", "9" * 10_000, str(2 ** 63), "-1", "1.5", ""):
        assert choices.galaxy_id(odd) is None
    for key, odd in (("galaxy", "²"), ("data", "a\x00b"), ("data", "x" * 2000), ("model", "~nobody-here/m.pt"),
                     ("labels", "y" * 300 + ".csv"), ("images", "\ud800")):
        with pytest.raises(access.Refused) as e:
            choices.parse(key, odd)
        assert odd[:50] not in str(e.value) or odd == "²" and "²" not in str(e.value)


@pytest.mark.slow  # 15 s: the fast tier keeps the every-page parametrised checks
@FEW
@given(params=st.dictionaries(st.sampled_from(choices.URL_KEYS), VALUES, min_size=1, max_size=3))
def test_any_query_parameters_on_galaxy_and_home_render_without_a_folder_in_public_mode(public_env, monkeypatch,
                                                                                        params):
    for page in (GALAXY, HOME):
        at = app_with(public_env, monkeypatch)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(page.script).run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.title
        assert_shows_no_folder(at)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(params=st.dictionaries(st.sampled_from(choices.URL_KEYS), VALUES, min_size=1, max_size=4))
def test_any_query_parameters_on_every_page_render_without_a_folder_in_public_mode(public_env, monkeypatch, page,
                                                                                   params):
    at = app_with(public_env, monkeypatch)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page.script).run()
    assert not at.exception, [e.message for e in at.exception]
    assert_shows_no_folder(at)


LOCAL_VALUES = st.one_of(st.sampled_from(ODD), st.text(max_size=40).map(lambda t: "/nonexistent-" + t))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(params=st.dictionaries(st.sampled_from(choices.URL_KEYS), LOCAL_VALUES, min_size=1, max_size=4))
def test_any_query_parameters_on_every_page_render_locally(dashboard_env, monkeypatch, page, params):
    """Locally any folder opens (a local tool): odd values, and folders that are not there."""
    at = app_with(dashboard_env, monkeypatch)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page.script).run()
    assert not at.exception, [e.message for e in at.exception]


# ------------------------------------------------------------------ 5. edited checkpoint configs


DELETE = object()
PLAIN = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3), max_leaves=6)
BASE = torch.load(TINY_CKPT, weights_only=True)
WHERE = {"model_config": sorted(BASE["model_config"]) + ["members", "n_outputs", "depth"],
         "preprocess": sorted(BASE["preprocess"]) + ["zoom"],
         "": ["input_size", "task", "answers", "format_version", "model_config", "preprocess", "metrics",
              "weight_scales", "model"]}


@FEW
@given(edits=st.lists(st.tuples(st.sampled_from(list(WHERE)), st.data()), min_size=1, max_size=3))
def test_an_edited_checkpoint_loads_or_is_one_checkpoint_error_naming_the_file(tmp_path, edits):
    ckpt = torch.load(TINY_CKPT, weights_only=True)
    for where, draw in edits:
        key = draw.draw(st.sampled_from(WHERE[where]) | st.text(max_size=8), label="key")
        value = draw.draw(st.just(DELETE) | PLAIN, label="value")
        target = ckpt if not where else ckpt.get(where)
        if not isinstance(target, dict):
            continue
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    try:
        model, loaded = checkpoint.load(path)
    except checkpoint.CheckpointError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e)
    else:
        assert isinstance(model, torch.nn.Module) and isinstance(loaded["input_size"], int)


@pytest.mark.parametrize("where, key, value", [("model_config", "name", ["dieleman"]), ("model_config", "head", []),
                                              ("preprocess", "crop", ["roi"])], ids=["name", "head", "crop"])
def test_a_name_that_is_not_text_is_a_checkpoint_error(tmp_path, where, key, value):
    """What the property test found: a list where a name is read was a TypeError (unhashable)."""
    ckpt = torch.load(TINY_CKPT, weights_only=True)
    ckpt[where][key] = value
    torch.save(ckpt, tmp_path / "edited.pt")
    named = re.escape(f"{tmp_path / 'edited.pt'}: ") + ".*" + re.escape(f"{key} {value!r} is not one")
    with pytest.raises(checkpoint.CheckpointError, match=f"^{named}"):
        checkpoint.load(tmp_path / "edited.pt")


def test_the_property_tests_reach_a_loadable_checkpoint():
    assert checkpoint.load(TINY_CKPT)[1]["input_size"] == 32 and np.isfinite(BASE["metrics"]["val_rmse"])
