"""Framing (gzcore.framing): cutouts from another survey rescaled to the framing of the model's
training pictures (Galaxy Zoo 2's: Petrosian R90 = 50 px of 424), rendered as Galaxy Zoo DECaLS
rendered its own, and what was applied recorded; Kaggle's JPEGs cropped byte for byte as before;
a warning where the framing cannot be established (one for a folder); a folder's files framed as
each alone, to the checkpoint's "framing" key."""
import hashlib
import io

import numpy as np
import pytest
import torch
from conftest import REAL_DATA, gz
from PIL import Image
from test_app import app_with, show, texts

from gzcore import checkpoint, data, evaluate, fits, framing, models, upload
from gzcore.dashboard.navigation import BROWSE, YOUR_GALAXY

DECALS = REAL_DATA.parent / "decals-fits"  # real DECaLS g, r, z cutouts and example_a.png (see its README)
needs_decals = pytest.mark.skipif(not (DECALS / "example_a.fits").is_file(),
                                  reason=f"real DECaLS FITS cutouts not found at {DECALS} (../shared absent)")
needs_kaggle = pytest.mark.skipif(not (REAL_DATA / "images_training_rev1").is_dir(),
                                  reason=f"real Galaxy Zoo sample not found at {REAL_DATA}")
SHIPPED_PP = data.Preprocess(crop="roi", crop_px=160, size=72)  # checkpoints/default.pt's

# sha1 (first 16 hex digits) of data.decode's crops of six real Kaggle JPEGs, computed with the code
# before framing existed (commit 9011b14): the shipped model's ROI crop, then the default centre crop
KAGGLE = {"817377.jpg": ("f646f8c7134eda29", "394813cef16e957d"),
          "856236.jpg": ("bc45d38583c322b5", "2c6280f6dd9a8caf"),
          "897703.jpg": ("e8bf0dd041be6a61", "af1a2da506e9c9b5"),
          "936791.jpg": ("3abab31193702ef8", "eb4781d790d4d3d1"),
          "961387.jpg": ("16a851a366a44616", "87ab07a6ecdc865d"),
          "981398.jpg": ("03fcd18095b1d98d", "f5044eb79e5be4c9")}


def _hash(crop: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(crop).tobytes()).hexdigest()[:16]


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def _galaxy(side: int, r_e: float, scale: float = 0.25, seed: int = 0) -> fits.Cutout:
    """g, r, z flux (nanomaggies) of an exponential disc of scale length `r_e` px on sky noise, with a
    WCS-free pixel scale (R90 of an exponential disc = 3.89 scale lengths)."""
    y, x = np.mgrid[:side, :side] - (side - 1) / 2
    disc = 3.0 * np.exp(-np.hypot(x, 1.6 * y) / r_e)
    noise = np.random.default_rng(seed).normal(0, 0.004, (3, side, side))
    flux = disc * np.array([0.5, 1.0, 1.4])[:, None, None] + noise
    return fits.Cutout(flux.astype(np.float32), ("g", "r", "z"), scale)


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(2)
    return checkpoint.load(None)


def _answers(shipped, up: upload.Upload) -> np.ndarray:
    model, ckpt = shipped
    return evaluate.predict(model, up.crop[None], ckpt["input_size"], tta=True)[0]


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# ---------------------------------------------------------------- Kaggle's JPEGs stay as they were

@needs_kaggle
@pytest.mark.parametrize("name", sorted(KAGGLE))
def test_kaggle_jpeg_crops_are_byte_for_byte_unchanged(name):
    path = REAL_DATA / "images_training_rev1" / name
    roi, centre = KAGGLE[name]
    assert _hash(data.decode(path, SHIPPED_PP)) == roi
    assert _hash(data.decode(path, data.Preprocess())) == centre
    mine = upload.read(path, SHIPPED_PP)  # an upload without a pixel scale: cropped as given, as a folder's file
    assert _hash(mine.crop) == roi and not mine.framing.established


def test_a_jpeg_folder_keeps_its_cache_key_and_a_fits_folder_gets_a_new_one(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "1.jpg")
    jpegs = data.images_of(tmp_path)
    before = data.fingerprint(jpegs, data.Preprocess())
    data.FITS_RENDERING += 1  # a new rendering changes nothing for JPEGs …
    try:
        assert data.fingerprint(jpegs, data.Preprocess()) == before
        fits.write(tmp_path / "2.fits", _galaxy(64, 4).pixels, "grz")
        both = data.images_of(tmp_path)
        moved = data.fingerprint(both, data.Preprocess())
    finally:
        data.FITS_RENDERING -= 1
    assert moved != data.fingerprint(both, data.Preprocess())  # … and everything for FITS


# ---------------------------------------------------------------- measuring and framing

@pytest.mark.parametrize("scale_length, side", [(4.0, 160), (9.0, 256), (20.0, 424)])
def test_a_cutout_is_framed_so_that_r90_spans_50_px(scale_length, side):
    cutout = _galaxy(side, scale_length)
    framed, applied = framing.frame_cutout(cutout)
    assert applied.established and framed.pixels.shape == (3, 424, 424)
    assert applied.factor == pytest.approx(50 / applied.r90_px)
    again = framing.petrosian(framed.pixels[1])
    assert again.r90 == pytest.approx(50, rel=0.06)
    assert framed.pixel_scale == pytest.approx(cutout.pixel_scale / applied.factor)
    assert not np.isnan(framed.pixels).any()  # beyond the field: sky noise, not holes
    np.testing.assert_array_equal(framing.frame_cutout(cutout)[0].pixels, framed.pixels)  # seeded


@needs_decals
def test_petrosian_radii_match_the_catalogues():
    """NASA-Sloan Atlas radii that willettk/decals' tests give for example_a (R50 3.464″, R90 10.45″)
    and example_c (7.161″, 24.75″)."""
    for name, (r50, r90) in {"a": (3.464, 10.4538), "c": (7.16148, 24.7535)}.items():
        cutout = fits.read(DECALS / f"example_{name}.fits")
        band = cutout.pixels[framing.size_band(cutout)]
        radii = framing.petrosian(band - framing._sky(band))
        assert radii.r50 * cutout.pixel_scale == pytest.approx(r50, rel=0.05), name
        assert radii.r90 * cutout.pixel_scale == pytest.approx(r90, rel=0.10), name


@needs_decals
def test_our_rendering_is_galaxy_zoo_decals_own():
    """fits.gz_decals_rgb against their dr2_style_rgb as make_png_from_fits calls it, saved by
    matplotlib's imsave (willettk/decals, MIT): the same bytes."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.io import fits as afits

    img = afits.getdata(DECALS / "example_a.fits")
    scales, (mn, mx) = {"g": (2, 0.008), "r": (1, 0.014), "z": (0, 0.019)}, (-0.5, 300)
    rgb = np.zeros(img.shape[1:] + (3,), np.float32)
    for im, band in zip(img, "grz"):
        plane, scale = scales[band]
        rgb[:, :, plane] = (im / scale).astype(np.float32)
    rgb, mn, mx = np.arcsinh(rgb), np.arcsinh(mn), np.arcsinh(mx)
    rgb = (rgb - mn) / (mx - mn)
    cube = np.array([rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]])  # their desaturation, as written
    a = cube.mean(axis=0)
    np.putmask(a, a == 0.0, 1.0)
    wt = np.max(cube / np.resize(a, cube.shape) / 2.5, axis=0)
    np.putmask(wt, wt > 1.0, 1.0)
    wt = np.sin((1 - wt) * np.pi / 2.0)
    rgb = np.moveaxis(cube * wt + a * (1 - wt) + a * (1 - wt) ** 2 * cube, 0, -1)
    out = io.BytesIO()
    plt.imsave(out, np.clip(rgb, 0.0, 1.0), origin="lower", format="png")
    theirs = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(fits.gz_decals_rgb(fits.read(DECALS / "example_a.fits")), theirs)


# ---------------------------------------------------------------- the same galaxy, the same answers

@needs_decals
@pytest.mark.parametrize("name", ["a", *(pytest.param(n, marks=pytest.mark.slow) for n in "bcde")])  # a: fast tier
def test_a_fits_and_galaxy_zoos_png_of_its_pixels_get_the_same_answers(shipped, name):
    """The issue's goal, measured where it can be: the FITS framed by its WCS and its galaxy's size,
    against Galaxy Zoo DECaLS's own rendering of the same pixels (their code, ported) uploaded as
    a PNG with its pixel scale: RMSE <= 0.03 between the shipped model's answers (measured
    0.004, 0.003, 0.015, 0.017, 0.005 for a-e)."""
    blob = (DECALS / f"example_{name}.fits").read_bytes()
    cutout = fits.read(DECALS / f"example_{name}.fits")
    pp, target = checkpoint.preprocess_of(shipped[1]), checkpoint.framing_of(shipped[1])
    from_fits = upload.read_bytes(blob, f"example_{name}.fits", pp, target=target)
    from_png = upload.read_bytes(_png(fits.gz_decals_rgb(cutout)), f"example_{name}.png", pp,
                                 pixel_scale=cutout.pixel_scale, target=target)
    assert from_fits.framing.established and from_png.framing.established
    assert from_png.framing.factor == pytest.approx(from_fits.framing.factor, rel=0.1)
    assert _rmse(_answers(shipped, from_fits), _answers(shipped, from_png)) <= 0.03


@needs_decals
@pytest.mark.xfail(strict=True, reason="example_a.png is not a rendering of example_a.fits's pixels "
                   "(test_example_a_png_shows_another_field): framed, the FITS's answers are 0.33 from "
                   "the PNG's (0.115 before framing); the same pixels as a PNG agree within 0.004")
def test_example_a_fits_and_example_a_png_get_the_same_answers(shipped):
    pp, target = checkpoint.preprocess_of(shipped[1]), checkpoint.framing_of(shipped[1])
    from_fits = upload.read(DECALS / "example_a.fits", pp, target=target)
    from_png = upload.read(DECALS / "example_a.png", pp, target=target)
    assert _rmse(_answers(shipped, from_fits), _answers(shipped, from_png)) <= 0.03


@needs_decals
def test_example_a_png_shows_another_field():
    """The star 24″ north-east of example_a.fits's galaxy (the brightest source off it) is missing
    from example_a.png wherever a north-up cutout at 0.1-0.42″/px would put it: under 5 sigma of
    the PNG's smoothed sky there (measured 3 at most), where the star would be 20 sigma even blurred
    to 5″. (The PNG's galaxy matches the FITS's best turned a quarter, at ~0.42″/px, and blurred.)"""
    from scipy import ndimage

    cutout = fits.read(DECALS / "example_a.fits")
    r = ndimage.gaussian_filter(np.nan_to_num(cutout.pixels[1][::-1]), 3)  # north up, row 0 at the top
    y, x = np.indices(r.shape)
    r[np.hypot(y - 211.5, x - 211.5) < 150] = 0  # not the galaxy (within 15″)
    sy, sx = np.unravel_index(np.argmax(r), r.shape)
    dx, dy = (sx - 211.5) * cutout.pixel_scale, (sy - 211.5) * cutout.pixel_scale  # arcsec, y down
    assert 20 < np.hypot(dx, dy) < 28
    png = np.asarray(Image.open(DECALS / "example_a.png").convert("RGB"))[..., 1] / 255.0
    smooth = ndimage.gaussian_filter(fits.gz_decals_untone(png) * fits.GZ_DECALS_SCALES["r"], 1.5)
    corner = smooth[:100, :100]
    sigma = 1.4826 * np.median(np.abs(corner - np.median(corner)))
    for scale in (0.1, 0.14, 0.2, 0.262, 0.3, 0.35, 0.42):
        x, y = round(211.5 + dx / scale), round(211.5 + dy / scale)
        peak = smooth[y - 2:y + 3, x - 2:x + 3].max() - np.median(smooth[y - 8:y + 9, x - 8:x + 9])
        assert peak < 5 * sigma, scale


# ---------------------------------------------------------------- when the framing is unknown

def test_a_picture_without_its_pixel_scale_is_cropped_as_given_with_a_warning(tmp_path):
    rgb = fits.gz_decals_rgb(_galaxy(200, 6))
    plain = upload.read_bytes(_png(rgb), "mine.png", SHIPPED_PP)
    assert not plain.framing.established and "pixel scale is unknown" in plain.framing.warning()
    assert _hash(plain.crop) == _hash(data.crop_of(Image.fromarray(rgb), SHIPPED_PP))  # as a folder's file
    framed = upload.read_bytes(_png(rgb), "mine.png", SHIPPED_PP, pixel_scale=0.25)
    assert framed.framing.established and framed.framing.warning() is None
    assert framed.framing.r90_arcsec == pytest.approx(framed.framing.r90_px * 0.25)
    rows = dict(framed.framing.lines())
    assert {"rendering", "pixel scale", "galaxy size", "rescale", "crop box"} <= set(rows)
    assert "0.25 ″/px (from --pixel-scale)" in rows["pixel scale"]
    with pytest.raises(data.DataError, match=r"mine\.png: pixel scale -1"):
        upload.read_bytes(_png(rgb), "mine.png", SHIPPED_PP, pixel_scale=-1.0)


def test_a_fits_without_a_galaxy_is_rendered_as_given_with_a_warning(tmp_path):
    noise = np.random.default_rng(2).normal(0, 0.01, (3, 96, 96)).astype(np.float32)
    path = fits.write(tmp_path / "sky.fits", noise, "grz")
    mine = upload.read(path, SHIPPED_PP)
    assert not mine.framing.established and "no galaxy" in mine.framing.warning()
    assert mine.picture.shape == (96, 96, 3)  # as it is, not rescaled


def test_gz_predict_warns_when_the_framing_is_unknown_and_frames_with_a_pixel_scale(tmp_path):
    image = tmp_path / "mine.png"
    image.write_bytes(_png(fits.gz_decals_rgb(_galaxy(200, 6))))
    run = gz("predict", "--data", image, "--out", tmp_path / "p.csv", "--no-tta")
    assert run.returncode == 0, run.stderr
    assert f"warning: {image}: framing not established" in run.stderr
    assert "framing: rendering as given" in run.stdout
    run = gz("predict", "--data", image, "--out", tmp_path / "q.csv", "--no-tta", "--pixel-scale", "0.25")
    assert run.returncode == 0, run.stderr
    assert "framing not established" not in run.stderr
    assert "pixel scale 0.25 ″/px (from --pixel-scale)" in run.stdout and "rescale × " in run.stdout
    run = gz("predict", "--data", image, "--out", tmp_path / "r.csv", "--pixel-scale", "-1")
    assert run.returncode == 2 and "--pixel-scale: '-1': give arcseconds per pixel, a number above 0" in run.stderr


# ---------------------------------------------------------------- a folder, as its files one by one

def _with_wcs(path, cutout: fits.Cutout) -> None:
    """`cutout` as a FITS file whose header's WCS gives its pixel scale (a tangent plane, north up)."""
    side = cutout.pixels.shape[-1]
    fits.write(path, cutout.pixels, "".join(cutout.bands), ctype1="RA---TAN", ctype2="DEC--TAN",
               cunit1="deg", cunit2="deg", crpix1=side / 2, crpix2=side / 2, crval1=150.0, crval2=2.0,
               cdelt1=-cutout.pixel_scale / 3600, cdelt2=cutout.pixel_scale / 3600)


@pytest.fixture
def fits_folder(tmp_path):
    """Three FITS galaxies with a WCS, two without one and one of sky alone (no galaxy to measure)."""
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for k, r_e in enumerate((4.0, 6.0, 9.0), 1):
        _with_wcs(folder / f"{k}.fits", _galaxy(160, r_e, seed=k))
    for k in (4, 5):
        fits.write(folder / f"{k}.fits", _galaxy(160, 5.0, seed=k).pixels, "grz")
    fits.write(folder / "6.fits", np.random.default_rng(2).normal(0, 0.01, (3, 96, 96)).astype(np.float32), "grz")
    return folder


def test_a_folder_of_fits_is_framed_as_its_files_are_one_by_one(fits_folder, tmp_path):
    """Each FITS of a folder gets the crop `gz predict --data FILE` (an upload) gets, to the
    checkpoint's framing, whatever it is (issue 26)."""
    assert fits.read(fits_folder / "1.fits").pixel_scale == pytest.approx(0.25)
    other = framing.Target(name="decals", r90_px=40.0, frame_px=256, rendering="gz-decals")
    for target in (framing.GZ2, other):
        with pytest.warns(data.InputWarning):  # 4-6: not surely framed
            crops, kept = data.load_crops(data.images_of(fits_folder), SHIPPED_PP, cache_dir=tmp_path / "cache",
                                          workers=1, target=target)
        for path, crop in zip(kept.paths, crops):
            np.testing.assert_array_equal(crop, upload.read(path, SHIPPED_PP, target=target).crop, err_msg=str(path))
    assert not np.array_equal(crops[0], data.decode(fits_folder / "1.fits", SHIPPED_PP))  # the target matters


def test_gz_predict_warns_once_of_a_folders_images_whose_framing_is_in_doubt(fits_folder, tmp_path):
    for out in ("p.csv", "p.parquet"):
        run = gz("predict", "--data", fits_folder, "--out", tmp_path / out, "--no-tta")
        assert run.returncode == 0, run.stderr
        warned = [line for line in run.stderr.splitlines() if "warning:" in line]
        assert len(warned) == 1 and "3 image(s) not surely framed as the model's training pictures were" in \
            warned[0], warned
        assert f"{fits_folder / '4.fits'} (no WCS in its header" in warned[0] and "5.fits" in warned[0]
        assert f"{fits_folder / '6.fits'} (no galaxy" in warned[0] and "1.fits" not in warned[0]


def test_the_dashboard_says_which_of_its_folders_images_are_not_surely_framed(fits_folder, dashboard_env,
                                                                             monkeypatch):
    at = show(app_with({**dashboard_env, "GZ_DATA": str(fits_folder)}, monkeypatch), BROWSE)
    assert not at.exception and not at.error, [e.message for e in at.exception] + [texts(at.error)]
    shown = texts(at.warning)
    assert shown.count("not surely framed") == 1 and "3 image(s)" in shown and "4.fits (no WCS" in shown


def test_pixel_scale_frames_a_folder_of_pictures_and_only_another_framing_warns_without_it(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for k, r_e in enumerate((5.0, 7.0), 1):
        (folder / f"{k}.png").write_bytes(_png(fits.gz_decals_rgb(_galaxy(200, r_e, seed=k))))
    images = data.images_of(folder)
    model = models.build("dieleman", width=8)
    ckpt = checkpoint.save(tmp_path / "gz2.pt", model, preprocess=SHIPPED_PP, input_size=64)
    other = checkpoint.save(tmp_path / "other.pt", model, preprocess=SHIPPED_PP, input_size=64,
                            framing_target=framing.Target(name="decals", r90_px=40.0, frame_px=256))
    run = gz("predict", "--data", folder, "--checkpoint", ckpt, "--out", tmp_path / "a.csv", "--no-tta")
    assert run.returncode == 0 and "warning:" not in run.stderr, run.stderr  # as Galaxy Zoo 2's cutouts: Kaggle's
    run = gz("predict", "--data", folder, "--checkpoint", other, "--out", tmp_path / "b.csv", "--no-tta")
    warned = [line for line in run.stderr.splitlines() if "warning:" in line]
    assert run.returncode == 0 and len(warned) == 1 and "2 image(s) not surely framed" in warned[0], run.stderr
    assert "pixel scale is unknown" in warned[0]
    run = gz("predict", "--data", folder, "--checkpoint", other, "--out", tmp_path / "c.csv", "--no-tta",
             "--pixel-scale", "0.25")
    assert run.returncode == 0 and "warning:" not in run.stderr, run.stderr
    target = checkpoint.framing_of(checkpoint.read(other))
    crops, _ = data.load_crops(images, SHIPPED_PP, cache_dir=tmp_path / "cache", workers=1, target=target,
                               pixel_scale=0.25)
    for path, crop in zip(images.paths, crops):  # as one image given its pixel scale
        np.testing.assert_array_equal(crop, upload.read(path, SHIPPED_PP, pixel_scale=0.25, target=target).crop)
    with pytest.warns(data.InputWarning, match="pixel scale is unknown"):
        as_given = data.load_crops(images, SHIPPED_PP, cache_dir=tmp_path / "cache", workers=1, target=target)[0]
    assert not np.array_equal(crops, as_given)


# ---------------------------------------------------------------- the checkpoint records it

def test_the_checkpoint_records_its_framing_and_old_ones_read_as_galaxy_zoo_2s(tmp_path):
    model = models.build("dieleman", width=8)
    path = checkpoint.save(tmp_path / "new.pt", model, preprocess=data.Preprocess(), input_size=64)
    assert checkpoint.framing_of(checkpoint.read(path)) == framing.GZ2
    other = framing.Target(name="decals", r90_px=40.0, frame_px=256, rendering="gz-decals")
    path = checkpoint.save(tmp_path / "other.pt", model, preprocess=data.Preprocess(), input_size=64,
                           framing_target=other)
    assert checkpoint.framing_of(checkpoint.read(path)) == other
    old = torch.load(path, weights_only=True)
    del old["framing"]  # a checkpoint written before the key existed
    torch.save(old, tmp_path / "old.pt")
    assert checkpoint.read(tmp_path / "old.pt")["framing"] == framing.GZ2.to_dict()
    old["framing"] = {"r90_px": -3}
    torch.save(old, tmp_path / "bad.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"bad\.pt: its framing r90_px -3 is not a radius"):
        checkpoint.read(tmp_path / "bad.pt")


def test_the_page_shows_what_was_applied_and_warns_when_it_cannot_frame(dashboard_env, monkeypatch):
    at = show(app_with(dashboard_env, monkeypatch), YOUR_GALAXY)
    blob = _png(fits.gz_decals_rgb(_galaxy(200, 6)))
    at.file_uploader(key="your_galaxy_file").set_value(("mine.png", blob, "image/png")).run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert "mine.png: framing not established" in texts(at.warning)
    assert "- crop box: " in texts(at.markdown) and " px of the picture (" in texts(at.markdown)
    at.number_input(key="your_pixel_scale").set_value(0.25).run()
    assert not at.exception and not at.warning, texts(at.warning)
    shown = texts(at.markdown)
    assert "What was applied" in shown and "0.25 ″/px (from --pixel-scale)" in shown and "rescale: × " in shown
