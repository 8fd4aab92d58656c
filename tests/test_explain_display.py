"""Explain's display: maps drawn over the full cutout in the model's box (explain.input_box,
explain.overlay_full), the crowd's and the model's values beside each map, a signed default method
computed at once, and the caption that says why unsigned maps of two answers can look alike."""
import base64
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from test_app import show, texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from gzcore import data, explain, tree
from gzcore.dashboard import charts
from gzcore.dashboard.navigation import EXPLAIN


# ---------------------------------------------------------------- the map over the full cutout


def ring_and_inside(shape, box, width):
    """Masks of the pixels whose centre lies in `box` (fractions) and of the outline `width` px around them."""
    h, w = shape
    ys, xs = np.mgrid[:h, :w] + 0.5
    inside = (xs >= box[0] * w) & (xs < box[2] * w) & (ys >= box[1] * h) & (ys < box[3] * h)
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    around = np.zeros(shape, bool)
    around[max(0, rows[0] - width):rows[-1] + 1 + width, max(0, cols[0] - width):cols[-1] + 1 + width] = True
    return inside, around & ~inside


def test_the_full_image_overlay_paints_the_box_and_its_outline_only():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (90, 400, 3), dtype=np.uint8)  # not square: 2 px of outline (400 / 200)
    box = (0.3, 0.2, 0.7, 0.65)
    heat = np.linspace(-1, 1, 8)[None].repeat(8, 0).astype(np.float32)  # left blue, right red
    out = explain.overlay_full(picture, heat, box, 0.9, "coolwarm", outline=(0, 255, 0))
    assert out.shape == picture.shape and out.dtype == np.uint8
    inside, ring = ring_and_inside(picture.shape[:2], box, width=2)
    untouched = ~inside & ~ring
    assert (out[untouched] == picture[untouched]).all()
    assert (out[ring] == (0, 255, 0)).all() and ring.sum() > 0
    assert (out[inside] != picture[inside]).any(-1).mean() > 0.9  # the map covers the box
    # blue on the left of the box, red on its right
    cols = np.flatnonzero(inside.any(0))
    left, right = out[inside.any(1)][:, cols[:5]], out[inside.any(1)][:, cols[-5:]]
    assert left[..., 2].mean() > left[..., 0].mean() and right[..., 0].mean() > right[..., 2].mean()
    # bilinear, not blocky: the box's 160 columns take many more than the map's 8 values
    flat = explain.overlay_full(np.zeros_like(picture), heat, box, 1.0, "coolwarm")
    assert len(np.unique(flat[45, cols, 0])) > 40
    # no opacity: the picture and the box alone
    bare = explain.overlay_full(picture, heat, box, 0.0)
    assert (bare[~ring] == picture[~ring]).all() and (bare[ring] == 255).all()


def test_colours_saturate_at_the_99th_percentile_and_the_view_frames_the_box():
    spiky = np.zeros((64, 64), np.float32)
    spiky[:2] = np.linspace(-0.3, 0.3, 64)  # 3 % of the pixels: the top 1 % lies among them
    spiky[10, 10] = 1.0
    assert 0.15 < explain.display_scale(spiky) < 0.3  # far below the one spike of 1
    assert explain.display_scale(np.zeros((8, 8))) == 1.0  # an empty Grad-CAM map
    fig = charts.framed(charts.image(np.zeros((424, 424, 3), np.uint8)), (0.3, 0.3, 0.7, 0.7), 424, 424)
    (x0, x1), (y1, y0) = fig["layout"]["xaxis"]["range"], fig["layout"]["yaxis"]["range"]
    assert x0 < 0.3 * 424 < 0.7 * 424 < x1 and y0 < 0.3 * 424 < 0.7 * 424 < y1  # rows grow downwards
    assert x0 >= -0.5 and x1 <= 423.5


@pytest.mark.parametrize("pp", [data.Preprocess(), data.Preprocess(crop="roi", crop_px=160, size=72)],
                         ids=["centre", "roi"])
def test_the_box_is_where_the_model_looks(synth_dir, tmp_path, pp):
    """Resampling the full image inside explain.input_box gives the model's input back."""
    paths = sorted((synth_dir / "images_training_rev1").iterdir())[:3]
    wide = tmp_path / "wide.png"  # a non-square cutout: crop_of takes its central square
    image = Image.open(paths[0])
    canvas = Image.new("RGB", (image.width + 100, image.height))
    canvas.paste(image, (37, 0))
    canvas.save(wide)
    for path in [*paths, wide]:
        seen = explain.model_input(data.decode(path, pp), 64).permute(1, 2, 0).numpy() * 255
        image = data.read_rgb(path, pp)  # a JPEG at a reduced scale: the box is in fractions of it
        box = explain.input_box(image, pp, 64)
        pixels = (box[0] * image.width, box[1] * image.height, box[2] * image.width, box[3] * image.height)
        again = np.asarray(image.resize((64, 64), Image.BILINEAR, box=pixels, reducing_gap=None), np.float32)
        assert np.abs(again - seen).mean() < 1.0, path.name  # grey levels of 255
        assert 0 < box[0] < box[2] < 1 and 0 < box[1] < box[3] < 1


# ---------------------------------------------------------------- the page


def figure_image(at, key) -> np.ndarray:
    """The pixels of a figure's image trace (a PNG data URI)."""
    spec = json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)
    uri = spec["data"][0]["source"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


@pytest.fixture
def app(dashboard_env, monkeypatch):
    for key, value in dashboard_env.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.fixture(scope="module")
def crowd(dashboard_env):
    return pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").set_index("GalaxyID")


def beside_maps(at) -> list[str]:
    """The bold line above each map: 'crowd 93% · model 72%' ('true …' for labels of other targets)."""
    return re.findall(r"\*\*((?:(?:crowd|true) [^*]+ · )?model [^*]+)\*\*", texts(at.markdown))


def test_the_default_method_is_signed_and_drawn_at_once_over_the_full_cutout(app, dashboard_env):
    at = show(app, EXPLAIN)
    assert at.selectbox(key="explain_method").value == explain.DEFAULT_METHOD
    assert explain.DEFAULT_METHOD in explain.SIGNED
    assert "press Compute" not in texts(at.caption)
    assert {"explain_fig0", "explain_fig1"} <= {c.key for c in at.get("plotly_chart")}
    gid = int(re.search(r"Galaxy (\d+)", at.title[0].value).group(1))
    full = np.asarray(Image.open(f"{dashboard_env['GZ_DATA']}/images_training_rev1/{gid}.jpg"))
    assert figure_image(at, "explain_fig0").shape == full.shape  # the 424 px cutout, not the 64 px input
    assert "unsigned" not in texts(at.caption)


def test_unsigned_maps_say_why_two_answers_can_look_the_same(app):
    at = show(app, EXPLAIN)
    at.selectbox(key="explain_method").set_value("saliency").run()
    assert "Saliency (fast) is unsigned" in texts(at.caption)
    assert "|gradient| is the same for both" in texts(at.caption)


def test_crowd_and_model_values_stand_beside_each_map(app, crowd):
    gid = int(crowd.index[5])
    at = show(app, EXPLAIN, galaxy=str(gid))
    number = at.selectbox(key="explain_q").value
    columns = [a.column for a in tree.QUESTION_BY_NUMBER[number].answers]
    weighted = crowd.loc[gid, columns]
    for kind, expected in (("conditional", weighted / weighted.sum()), ("weighted", weighted)):
        lines = beside_maps(at)
        assert len(lines) == 2, lines
        for side, line in enumerate(lines):
            picked = at.selectbox(key=f"explain_a{side}_q{number}")
            assert line == f"crowd {expected[picked.value]:.0%} · model " + \
                re.search(r"\(model (\S+)\)$", picked.options[picked.index]).group(1)
        assert f"{kind}:" in texts(at.markdown)
        at.toggle(key="explain_conditional").set_value(False).run()


def test_without_labels_only_the_model_stands_beside_the_maps(app, tmp_path, dashboard_env):
    images = tmp_path / "unlabelled" / "images_test_rev1"
    shutil.copytree(f"{dashboard_env['GZ_DATA']}/images_training_rev1", images)
    at = show(app, EXPLAIN, data=str(images.parent))
    lines = beside_maps(at)
    assert len(lines) == 2 and all(line.startswith("model ") for line in lines), lines


def test_a_model_of_other_targets_shows_the_true_value_beside_its_map(target_env, monkeypatch):
    for key, value in {"GZ_DATA": target_env["GZ_DATA"], "GZ_CHECKPOINT": target_env["GZ_CHECKPOINT"],
                       "GZ_LABELS": target_env["labels"]}.items():
        monkeypatch.setenv(key, value)
    labels = pd.read_csv(target_env["labels"]).dropna()
    at = show(AppTest.from_file(str(ROOT / "app.py"), default_timeout=120), EXPLAIN, galaxy=str(labels.id.iat[0]))
    assert beside_maps(at) == [f"true {labels.oh.iat[0]:.3g} · model "
                               + re.search(r"\(model (\S+)\)$", at.selectbox[-1].options[0]).group(1)]
