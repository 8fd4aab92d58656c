"""An image a user brings (gzcore.upload): its limits, each refused with a message naming the file;
the same crop and prediction as the same file read from a folder; `gz predict --data IMAGE`; and the
"Your galaxy" page (AppTest), for a tree and a regression model, and for a bad file."""
import gzip
import io
import re
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DATA, ROOT, gz, random_tree_rows
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_app import answers, app_with, bar_values, figures, show, texts

from gzcore import catalog, checkpoint, cli, data, evaluate, fits, tree, upload
from gzcore.dashboard.navigation import YOUR_GALAXY

PP = data.Preprocess(size=48)
DECALS = REAL_DATA.parent / "decals-fits"  # real DECaLS cutouts, a truncated one among them (see its README)


def _sky(side: int = 96) -> np.ndarray:
    """uint8 RGB (side, side, 3): a bright elliptical blob on dark noise."""
    y, x = np.mgrid[:side, :side] - side / 2
    blob = 220 * np.exp(-(x ** 2 / 0.02 + y ** 2 / 0.006) / side ** 2)
    noise = np.random.default_rng(0).normal(20, 4, (side, side, 3))
    return np.clip(blob[..., None] * [1.0, 0.9, 0.7] + noise, 0, 255).astype(np.uint8)


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG that only declares its size (no pixel data)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _fits_bytes(pixels: np.ndarray, tmp_path) -> bytes:
    return fits.write(tmp_path / "cube.fits", pixels, "grz").read_bytes()


def _cube(side: int = 96) -> np.ndarray:
    """float32 (3, side, side) g, r, z fluxes: a galaxy on sky noise (nanomaggies)."""
    y, x = np.mgrid[:side, :side] - side / 2
    galaxy = 2.0 * np.exp(-(x ** 2 + 3 * y ** 2) / (0.01 * side ** 2))
    noise = np.random.default_rng(1).normal(0, 0.005, (3, side, side))
    return (galaxy * np.array([0.5, 1.0, 1.4])[:, None, None] + noise).astype(np.float32)


# ---------------------------------------------------------------- limits, each naming the file

def test_too_many_bytes_are_refused_before_reading(tmp_path, monkeypatch):
    blob = b"\xff\xd8\xff" + bytes(upload.PUBLIC.bytes)
    with pytest.raises(data.DataError, match=r"^big\.jpg: 10\.0 MB \(10,485,763 bytes\), more than the 10 MB"):
        upload.read_bytes(blob, "big.jpg", PP, public=True)
    path = tmp_path / "photo.png"
    path.write_bytes(_encoded(_sky(), "PNG") + bytes(upload.MB))
    monkeypatch.setattr(upload, "LOCAL", upload.Limits(upload.MB, data.MAX_PIXELS))
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("read before its size was checked"))
    with pytest.raises(data.DataError, match=rf"^{re.escape(str(path))}: 1\.0 MB .*, more than the 1 MB"):
        upload.read(path, PP)


@pytest.mark.parametrize("name, make", [
    ("wide.png", lambda tmp: _png_declaring(5000, 5000)),
    ("wide.fits.gz", lambda tmp: gzip.compress(b"".join(f"{card:<80}".encode() for card in [
        "SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
        "NAXIS1  =                 5000", "NAXIS2  =                 5000", "END"]).ljust(2880, b" ")
        + bytes(5000 * 5000), compresslevel=1)),
])
def test_too_many_pixels_are_refused_from_the_header_more_strictly_in_public(tmp_path, name, make):
    """5000 x 5000 (25 Mpx) is within a local tool's cap and over a public demo's: refused there from
    the header (the PNG has no pixel data at all; the gzipped FITS file is complete, 25 KB packed)."""
    blob = make(tmp_path)
    assert len(blob) < upload.PUBLIC.bytes
    with pytest.raises(data.DataError, match=rf"^{re.escape(name)}.*5000x5000 pixels, more than the 16,000,000"):
        upload.read_bytes(blob, name, PP, public=True)
    if name.endswith(".png"):  # locally it is decoded, and found to have no pixels
        with pytest.raises(data.DataError, match=rf"^{re.escape(name)}: cannot decode image"):
            upload.read_bytes(blob, name, PP)


@pytest.mark.parametrize("blob, name, message", [
    (b"%PDF-1.4 not a galaxy", "galaxy.jpg", "not a JPEG, PNG or FITS image, whatever its name says"),
    (b"", "empty.png", "not a JPEG, PNG or FITS image, whatever its name says (empty)"),
    (_encoded(_sky(), "GIF"), "animated.png", "not a JPEG, PNG or FITS image"),
    (_encoded(_sky(), "PNG"), "galaxy.txt", "not an image file name"),
    (_encoded(_sky(), "JPEG"), "galaxy.fits", "a JPEG file under a FITS file's name"),
    (b"SIMPLE  =                    T", "galaxy.jpg", "a FITS file under a picture file's name"),
    (gzip.compress(b"not FITS inside"), "galaxy.fits.gz", "not a FITS file"),
])
def test_a_file_that_is_no_allowed_image_is_refused_by_its_content(blob, name, message):
    with pytest.raises(data.DataError, match=rf"^{re.escape(name)}: .*{re.escape(message)}"):
        upload.read_bytes(blob, name, PP)


def test_a_truncated_fits_cutout_is_refused_naming_it():
    path = DECALS / "example_incomplete.fits"
    if not path.is_file():
        pytest.skip(f"the DECaLS FITS cutouts are not at {DECALS} (set GZ_REAL_DATA beside them)")
    blob = path.read_bytes()
    with pytest.raises(data.DataError, match=r"^example_incomplete\.fits: truncated: HDU 0's data needs"):
        upload.read_bytes(blob, "example_incomplete.fits", PP)


def test_public_caps_are_stricter_and_match_streamlits():
    assert upload.limits(True) == upload.PUBLIC and upload.limits(False) == upload.LOCAL
    assert upload.PUBLIC.bytes < upload.LOCAL.bytes and upload.PUBLIC.pixels < upload.LOCAL.pixels
    assert upload.LOCAL.pixels == data.MAX_PIXELS
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert f"maxUploadSize = {upload.LOCAL.bytes // upload.MB}\n" in config


# ---------------------------------------------------------------- the same as a folder's file

def test_an_upload_gives_the_folders_crop_and_prediction(tmp_path):
    """JPEG, PNG, FITS and .fits.gz: the crop and the model's answers (8-view TTA) are those of
    the same file read from a folder by gzcore.data."""
    folder = tmp_path / "folder"
    folder.mkdir()
    files = {"1.jpg": _encoded(_sky(), "JPEG"), "2.png": _encoded(_sky(80)[:, :64], "PNG"),
             "3.fits": _fits_bytes(_cube(), tmp_path)}
    files["4.fits.gz"] = gzip.compress(files["3.fits"])
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    model, ckpt = checkpoint.load(None)  # the shipped default model
    pp = checkpoint.preprocess_of(ckpt)
    crops, galaxies = data.load_crops(data.images_of(folder), pp, cache_dir=tmp_path / "cache", workers=1)
    uploaded = [upload.read_bytes(files[p.name], p.name, pp) for p in galaxies.paths]
    for path, crop, mine in zip(galaxies.paths, crops, uploaded):
        np.testing.assert_array_equal(mine.crop, crop, err_msg=path.name)
        assert mine.picture.ndim == 3 and mine.picture.dtype == np.uint8
    ours = evaluate.predict(model, np.stack([u.crop for u in uploaded]), ckpt["input_size"], tta=True)
    np.testing.assert_array_equal(ours, evaluate.predict(model, crops, ckpt["input_size"], tta=True))


def test_gz_predict_takes_one_image_and_prints_its_answers(tmp_path, capsys):
    image = tmp_path / "mine.jpg"
    image.write_bytes(_encoded(_sky(), "JPEG"))
    run = gz("predict", "--data", image, "--out", tmp_path / "p.csv", "--uncertainty")
    assert run.returncode == 0, run.stderr
    assert "most likely path: " in run.stdout and "Q11 can't tell" in run.stdout
    assert "wrote predictions for 1 galaxies" in run.stdout
    written = pd.read_csv(tmp_path / "p.csv")
    model, ckpt = checkpoint.load(None)
    crop = upload.read(image, checkpoint.preprocess_of(ckpt)).crop
    expected = evaluate.predict(model, crop[None], ckpt["input_size"], tta=True)[0]
    np.testing.assert_allclose(written[list(tree.COLUMNS)].to_numpy()[0], expected, atol=1e-6)
    (tmp_path / "junk.png").write_bytes(b"just text")
    assert cli.main(["predict", "--data", str(tmp_path / "junk.png"), "--out", str(tmp_path / "q.csv")]) == 2
    assert "junk.png: not a JPEG, PNG or FITS image" in capsys.readouterr().err


# ---------------------------------------------------------------- the page

def _upload(at, name: str, blob: bytes):
    at.file_uploader(key="your_galaxy_file").set_value((name, blob, "application/octet-stream")).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_page_shows_the_tree_saliency_and_similar_galaxies(dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), YOUR_GALAXY)
    assert "Upload an image" in texts(at.info)
    at = _upload(at, "mine.png", _encoded(_sky(), "PNG"))
    assert not at.error, texts(at.error)
    shown = figures(at)
    assert len(answers(at)) == 11  # every question
    assert {"your_image", "your_input", "your_saliency"} <= set(shown)
    assert "Model's path:** Q1" in texts(at.markdown) and "8-view TTA" in texts(at.markdown)
    near = [b for b in at.button if b.key and b.key.startswith("your_near_")]
    assert len(near) == 8
    at.get("button_group")[0].set_value("weighted").run()
    assert not at.exception
    near[0].click().run()
    assert at.title[0].value == f"Galaxy {near[0].key.removeprefix('your_near_')}"


def test_a_regression_model_shows_its_targets(target_env, monkeypatch):
    env = {k: v for k, v in target_env.items() if k != "labels"}
    at = show(app_with(env, monkeypatch), YOUR_GALAXY, labels=target_env["labels"])
    at = _upload(at, "mine.jpg", _encoded(_sky(), "JPEG"))
    assert not at.error, texts(at.error)
    assert [m.label for m in at.metric] == ["oh"]
    assert "your_target_0" in figures(at) and not answers(at)
    assert "pixels that drive oh" in texts(at.caption)
    assert len([b for b in at.button if b.key and b.key.startswith("your_near_")]) == 8


def test_a_bad_file_shows_the_error_and_no_traceback(dashboard_env, monkeypatch, tmp_path):
    """In public mode (its upload cap in the uploader); then a good .fits.gz replaces it."""
    at = show(app_with({**dashboard_env, "GZ_PUBLIC": "1"}, monkeypatch), YOUR_GALAXY)
    assert at.file_uploader(key="your_galaxy_file").proto.max_upload_size_mb == upload.PUBLIC.bytes // upload.MB
    at = _upload(at, "holiday.jpg", b"MZ\x90\x00 an executable")
    assert "holiday.jpg: not a JPEG, PNG or FITS image" in texts(at.error)
    assert not figures(at) and not answers(at)
    at = _upload(at, "cutout.fits.gz", gzip.compress(_fits_bytes(_cube(), tmp_path)))
    assert not at.error and len(answers(at)) == 11


def _answers_page(table, beside):
    """A page of the shared answers view alone (AppTest runs this function's source as a script)."""
    from gzcore import targets
    from gzcore.dashboard import answers
    answers.paths(table, 0, beside)
    answers.outputs(table, 0, targets.TREE, "weighted", key="shared", beside=beside)


def test_the_shared_answers_view_shows_a_second_model_beside():
    """gzcore.dashboard.answers, as the Galaxy page and this one show a galaxy's tree."""
    table, other = (catalog.enrich(evaluate.predictions_table([7], random_tree_rows(1, seed))) for seed in (1, 2))
    at = AppTest.from_function(_answers_page, args=(table, (other, 0, "other.pt")), default_timeout=30).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Model's path" in texts(at.markdown) and "`other.pt`'s path" in texts(at.markdown)
    q1 = bar_values(answers(at)[0])
    assert {name.split(" · ")[0] for name in q1} == {"model", "other.pt"}  # no labels: no crowd
    assert [q1[f"other.pt · {a.long}"] for a in tree.QUESTION_BY_NUMBER[1].answers] == \
        pytest.approx(other[["Class1.1", "Class1.2", "Class1.3"]].iloc[0].tolist(), abs=5e-4)  # 3 decimals
