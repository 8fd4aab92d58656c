"""The light renderers of the pages: a galaxy's answers as HTML (bars), images encoded once per
server (pictures, charts.image as a plain dict) and the frozen heap (heap). Fast: no app runs."""
import base64
import gc
import io
import json
import re
import sys
import types

import numpy as np
import plotly.express as px
import plotly.tools
import pytest
from PIL import Image

from gzcore import tree
from gzcore.dashboard import bars, charts, heap, pictures

Q1 = [a.long for a in tree.QUESTION_BY_NUMBER[1].answers]  # Smooth, Features or disk, Star or artifact


def titles(html: str) -> list[str]:
    return re.findall(r'title="([^"]*)"', html)


def test_the_values_appear_with_their_spread_and_a_second_model():
    html = bars.question(Q1, np.array([0.612, 0.3, 0.088]), np.array([0.587, 0.35, 0.063]), False,
                         np.array([0.031, 0.02, 0.0]), np.array([0.5, 0.4, 0.1]), "other.pt",
                         title=tree.QUESTION_BY_NUMBER[1].title, caption="Reached by 100% of the crowd")
    assert "crowd · Smooth: 0.612" in titles(html) and "model · Smooth: 0.587 ± 0.031" in titles(html)
    assert "other.pt · Star or artifact: 0.100" in titles(html)
    assert "Smooth: crowd 0.612 · model 0.587 ± 0.031 · other.pt 0.500" in titles(html)  # the answer's name
    assert ">0.61<" in html and ">0.59 ± 0.03<" in html and ">0.06 ± 0.00<" in html  # the labels
    assert html.count('class="gzb-e"') == 2  # whiskers where the spread is above 0
    assert "model · Smooth: 0.587 ± 0.0003" in titles(bars.question(["Smooth"], None, np.array([0.587]), False,
                                                                    np.array([0.0003])))  # small, not 0.000
    assert html.count('class="gzb-b"') == 9  # 3 answers x (crowd, model, other)
    for colour in (charts.CROWD, charts.MODEL, charts.OTHER):
        assert html.count(f"background:{colour}") == 3
    assert "Q1. Is the galaxy simply smooth" in html and "Reached by 100% of the crowd" in html
    assert "gzb-few" not in html


def test_greyed_questions_and_answers_nobody_gave():
    html = bars.question(Q1, np.full(3, np.nan), np.array([0.2, np.nan, 0.8]), True)
    assert 'class="gzb-q gzb-few"' in html
    assert charts.CROWD not in html and charts.GREY_CROWD not in html  # no crowd reached it: no bars
    assert html.count(f"background:{charts.GREY_MODEL}") == 2 and charts.MODEL not in html
    assert "model · Features or disk: no value" in titles(html)


def test_names_are_escaped():
    html = bars.block([bars.question(['<img src=x onerror="alert(1)">', "a & b"], None, np.array([0.5, 0.5]),
                                     False, None, np.array([0.1, 0.9]), '"><script>x</script>',
                                     title="<b>t</b>", caption="c < d")])
    assert "<script>x" not in html and "<img" not in html and "<b>t" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html and "a &amp; b" in html
    assert "&quot;&gt;&lt;script&gt;x&lt;/script&gt; · a &amp; b: 0.900" in titles(html)
    assert "c &lt; d" in html


def test_the_bars_stay_on_the_scale():
    html = bars.question(["a", "b"], None, np.array([1.3, -0.2]), False, np.array([0.5, 0.1]))
    widths = [float(w) for w in re.findall(r"var\(--w\) \* ([0-9.]+)\)", html)]
    assert widths and all(0 <= w <= 1 for w in widths)


def test_images_are_px_imshows_figures_encoded_once():
    pixels = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    light = plotly.tools.return_figure_from_figure_or_data(charts.image(pixels, 300), True)  # as st.plotly_chart
    fig = px.imshow(pixels)
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=0, b=0), dragmode="zoom")
    heavy = fig.to_dict()
    uri = light["data"][0].pop("source")
    heavy["data"][0].pop("source")
    assert json.dumps(light, sort_keys=True, default=str) == json.dumps(heavy, sort_keys=True, default=str)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert (decoded == pixels).all()
    assert pictures.png_uri(pixels.copy()) is uri  # the same content: encoded once
    assert charts.attribution(pixels, "inferno", False)["data"][1]["marker"]["showscale"]


def test_thumbnails_are_st_images_jpeg_once_per_file(tmp_path):
    from streamlit.elements.lib.image_utils import _np_array_to_bytes
    path = tmp_path / "g.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(path)
    from gzcore import catalog
    first = pictures.thumbnail(path, 64)
    assert first == _np_array_to_bytes(catalog.image(path, 64), "auto")  # what st.image made of the array
    assert pictures.thumbnail(path, 64) is first
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(path)
    assert pictures.thumbnail(path, 64) != first  # a rewritten file is read again
    store = pictures.Store(10)
    for k in range(5):
        store.get(k, lambda: b"1234")
    assert list(store.items) == [3, 4] and store.size == 8  # least recently used out, within its bytes


def test_the_heap_freezes_once_per_import_in_a_server():
    assert not heap.settle(served=False)
    try:
        sys.modules["_gz_test_new_module"] = types.ModuleType("_gz_test_new_module")
        assert heap.settle(served=True) and gc.get_freeze_count() > 0
        assert not heap.settle(served=True)  # nothing imported since
    finally:
        sys.modules.pop("_gz_test_new_module", None)
        gc.unfreeze()


@pytest.mark.parametrize("columns", [1, 2])
def test_a_block_holds_its_style_and_questions(columns):
    html = bars.block([bars.question(["x"], None, np.array([0.5]), False)] * 3, columns)
    assert html.startswith("<style>") and html.count('class="gzb-q"') == 3 and f"--gzb-cols:{columns}" in html


def _thumbnail_page(path):
    from gzcore.dashboard import pictures
    import streamlit as st
    blob = pictures.shown(path, 32)
    if blob is not None:
        st.image(blob)


def test_a_thumbnail_that_cannot_be_decoded_says_so(tmp_path):
    from streamlit.testing.v1 import AppTest
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    at = AppTest.from_function(_thumbnail_page, args=(str(tmp_path / "bad.jpg"),), default_timeout=30).run()
    assert not at.exception and "bad.jpg: cannot decode image" in at.caption[0].value and not at.get("image")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "good.png")
    at = AppTest.from_function(_thumbnail_page, args=(str(tmp_path / "good.png"),), default_timeout=30).run()
    assert not at.exception and not at.caption and len(at.get("image")) == 1
