"""Property-based tests (hypothesis): no input makes the readers of user files crash or hang. Each
either returns well-formed data or raises the one error type the CLI and the dashboard turn into a
message naming the file (data.DataError)."""
import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gzcore import data, large_catalog, tree

SETTINGS = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADERS = ["GalaxyID", "id", *tree.COLUMNS[:6], "Class11.6", "crowd Class1.1", "junk", "", "Class1.1 spread"]
CELLS = st.one_of(st.floats(-2, 3).map(repr), st.floats().map(repr), st.integers(-5, 10 ** 20).map(str),
                  st.sampled_from(["", " ", "nan", "NaN", "inf", "-0", "1e400", "0x10", "'", '"', '"a,b"', "1,5",
                                   "\u00a0", "é", "\x00"]),
                  st.text(max_size=6))


@st.composite
def csv_texts(draw) -> bytes:
    """A CSV as a user might hand one over: some of the right columns (maybe twice), wrong ones, a
    BOM, Windows line endings, ragged rows, odd cells, or none at all."""
    header = draw(st.lists(st.sampled_from(HEADERS), min_size=0, max_size=8))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=len(header) + 2), max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(",".join(r) for r in [header, *rows]) + draw(st.sampled_from(["", newline]))
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    """A small real-looking JPEG: a bright blob on noisy sky."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:96, :96]
    blob = 200 * np.exp(-((x - 48) ** 2 + (y - 48) ** 2) / 80)
    pixels = np.clip(blob[..., None] + rng.normal(20, 5, (96, 96, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@SETTINGS
@given(blob=st.one_of(csv_texts(), st.binary(max_size=300)))
def test_the_labels_reader_returns_checked_labels_or_names_the_file(tmp_path, blob):
    path = tmp_path / "labels.csv"
    path.write_bytes(blob)
    try:
        ids, labels = data.read_labels(path)
    except data.DataError as e:
        assert "labels.csv" in str(e)
        return
    assert ids.dtype == np.int64 and len(np.unique(ids)) == len(ids) and labels.shape == (len(ids), tree.N_ANSWERS)
    known = labels[~np.isnan(labels)]
    assert ((known >= 0) & (known <= 1)).all()


@SETTINGS
@given(blob=st.one_of(csv_texts(), st.binary(max_size=300)))
def test_the_predictions_reader_indexes_or_names_the_file(tmp_path, blob):
    path = tmp_path / f"p{abs(hash(blob))}.csv"
    path.write_bytes(blob)
    try:
        catalogue = large_catalog.Catalogue(large_catalog.build(path, tmp_path / "cache"))
    except data.DataError as e:
        assert path.name in str(e)
        return
    assert len(catalogue) >= 1 and "GalaxyID" in catalogue


@SETTINGS
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
       suffix=st.sampled_from([".jpg", ".png", ".jpeg"]), crop=st.sampled_from(["roi", "centre"]))
def test_the_decoder_gives_a_crop_or_names_the_file(tmp_path, jpeg, cut, flips, suffix, crop):
    """A real JPEG truncated anywhere and with bytes overwritten, under any image extension."""
    blob = bytearray(jpeg[:cut] if cut < len(jpeg) else jpeg)
    for at, value in flips:
        if at < len(blob):
            blob[at] = value
    path = tmp_path / f"123{suffix}"
    path.write_bytes(bytes(blob))
    pp = data.Preprocess(crop=crop, size=32)
    try:
        out = data.decode(path, pp)
    except data.DataError as e:
        assert path.name in str(e)
        return
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


@SETTINGS
@given(blob=st.binary(max_size=2000), suffix=st.sampled_from([".jpg", ".png", ".fits"]))
def test_any_bytes_under_an_image_name_decode_or_name_the_file(tmp_path, blob, suffix):
    path = tmp_path / f"7{suffix}"
    path.write_bytes(blob)
    try:
        data.decode(path, data.Preprocess(size=16))
    except data.DataError as e:
        assert path.name in str(e)
    finally:
        os.unlink(path)
