"""FITS cutouts: cubes and one image per HDU, bands -> channels, missing and negative pixels,
truncated and foreign files, the Lupton render beside Galaxy Zoo's own, FITS folders through
`gz predict --skip-bad`, and the synthetic universe written as FITS."""
import gzip

import numpy as np
import pytest
from astropy.io import fits as afits
from conftest import REAL_DATA, ROOT, gz
from PIL import Image

from gzcore import checkpoint, data, fits, models, synthetic

DECALS = REAL_DATA.parent / "decals-fits"  # real DECaLS g, r, z cutouts (see its README)
needs_decals = pytest.mark.skipif(not (DECALS / "example_a.fits").is_file(),
                                  reason=f"real DECaLS FITS cutouts not found at {DECALS}")
BAD_PIX_ZEROS = 266_910  # exact zeros in example_bad_pix.fits (its README)
FIELD_RATIO = 4.5        # Galaxy Zoo's example_a.png shows a field this much wider than the FITS


def _sky(rng, bands=3, side=64):
    """Noise with a bright, slightly red blob in the middle: flux (bands, side, side)."""
    y, x = np.mgrid[:side, :side] - side / 2
    blob = np.exp(-(x ** 2 + y ** 2) / 60)
    colour = np.linspace(1, 2, bands)[:, None, None]
    return (0.004 * rng.standard_normal((bands, side, side)) + 0.5 * colour * blob).astype(np.float32)


def _truncate(path, keep: int):
    blob = path.read_bytes()
    path.write_bytes(blob[:keep])


# ---------------------------------------------------------------- reading

def test_a_cube_keeps_its_bands_and_values(tmp_path):
    flux = _sky(np.random.default_rng(0))
    path = fits.write(tmp_path / "1.fits", flux, "grz")
    cutout = fits.read(path)
    assert cutout.bands == ("g", "r", "z") and cutout.pixels.dtype == np.float32
    np.testing.assert_array_equal(cutout.pixels, flux)
    assert (cutout.pixels < 0).any()  # sky noise stays negative where it is


def test_one_image_per_hdu_becomes_one_band_each(tmp_path):
    flux = _sky(np.random.default_rng(1), bands=4)
    hdus = [afits.PrimaryHDU()] + [afits.ImageHDU(plane, name=band.upper())
                                   for plane, band in zip(flux, "griz")]
    afits.HDUList(hdus).writeto(tmp_path / "multi.fits")
    cutout = fits.read(tmp_path / "multi.fits")
    assert cutout.bands == ("g", "r", "i", "z")
    np.testing.assert_array_equal(cutout.pixels, flux)
    assert fits.rgb_bands(cutout.bands) == (3, 1, 0)  # more than three: g, r, z -> B, G, R
    afits.HDUList([afits.PrimaryHDU(flux[0]), afits.ImageHDU(flux[1, :32])]).writeto(tmp_path / "x.fits")
    with pytest.raises(fits.FitsError, match="x.fits.*differ in size"):
        fits.read(tmp_path / "x.fits")


@pytest.mark.parametrize("bands, rgb", [
    (("z", "r", "g"), (0, 1, 2)),        # ordered by wavelength, not by position
    (("", "", ""), (2, 1, 0)),           # no names: the file's order is blue to red
    (("u", "g", "r", "i", "z"), (4, 2, 1)),
    (("g", "r", "i", "y"), (2, 1, 0)),   # no z: g, r, i
    (("u", "i", "z", "y"), (3, 2, 0)),   # neither: bluest, middle, reddest
])
def test_which_bands_make_the_picture(bands, rgb):
    assert fits.rgb_bands(bands) == rgb


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_bands_render_grey(tmp_path, n):
    path = fits.write(tmp_path / "g.fits", _sky(np.random.default_rng(2), bands=n), "gr"[:n])
    rgb = fits.to_rgb(fits.read(path))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb[32, 32, 0] > 150 and np.median(rgb) < 60  # bright centre, dark sky


def test_missing_pixels_become_nan_and_render_without_a_colour_cast(tmp_path):
    flux = _sky(np.random.default_rng(3))
    flux[:2, :, :20] = 0.0           # g and r missing on the left (the survey's edge)
    flux[:, 50:, :] = np.nan         # nothing at the bottom
    flux[2, 10, 40] = np.inf
    cutout = fits.read(fits.write(tmp_path / "m.fits", flux, "grz"))
    assert cutout.missing[:2, :, :20].all() and cutout.missing[:, 50:].all() and cutout.missing[2, 10, 40]
    assert cutout.missing.sum() == 2 * 64 * 20 + 3 * 14 * 64 - 2 * 14 * 20 + 1
    rgb = fits.to_rgb(cutout).astype(int)[::-1]  # back to FITS row order
    left = rgb[:50, :20]  # only z there: filled grey, not red
    assert np.abs(left[..., 0] - left[..., 2]).max() <= 1
    assert (rgb[50:] == rgb[60, 5]).all()  # all missing: flat sky
    negative = cutout.pixels[2] < -0.008
    assert rgb[negative].mean() < rgb[~negative & ~cutout.missing[2]].mean()


def test_integer_zeros_are_data(tmp_path):
    afits.PrimaryHDU(np.arange(16, dtype=np.int16).reshape(4, 4)).writeto(tmp_path / "i.fits")
    cutout = fits.read(tmp_path / "i.fits")
    assert not cutout.missing.any() and cutout.pixels[0, 0, 0] == 0 and cutout.bands == ("",)


def test_truncated_and_foreign_files_are_errors_naming_them(tmp_path):
    flux = _sky(np.random.default_rng(4))
    path = fits.write(tmp_path / "t.fits", flux, "grz")
    data_end = 2880 + flux.nbytes  # one header block, then the data, then padding to 2880
    _truncate(path, data_end)      # only the padding gone: complete
    np.testing.assert_array_equal(fits.read(path).pixels, flux)
    _truncate(path, data_end - 4)  # one pixel short
    with pytest.raises(fits.FitsError, match=r"t\.fits: truncated"):
        fits.read(path)
    with pytest.raises(data.DataError, match=r"t\.fits: truncated"):
        data.decode(path, data.Preprocess())
    gz_path = tmp_path / "z.fits.gz"
    gz_path.write_bytes(gzip.compress(fits.write(tmp_path / "z.fits", flux, "grz").read_bytes()))
    np.testing.assert_array_equal(fits.read(gz_path).pixels, flux)
    _truncate(gz_path, 1000)
    with pytest.raises(fits.FitsError, match=r"z\.fits\.gz: cannot read"):
        fits.read(gz_path)
    for name, blob in [("j.fits", b"\xff\xd8\xff\xe0 a JPEG"), ("h.fits", b"SIMPLE  =" + b"?" * 3000),
                       ("e.fits", b"")]:
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(data.DataError, match=name.replace(".", r"\.")):
            data.decode(tmp_path / name, data.Preprocess())
    flux[:] = 0.0
    with pytest.raises(fits.FitsError, match="every pixel is missing"):
        fits.read(fits.write(tmp_path / "0.fits", flux, "grz"))


@needs_decals
def test_real_cutouts_read_as_decals_grz():
    cutout = fits.read(DECALS / "example_a.fits")
    assert cutout.bands == ("g", "r", "z") and cutout.pixels.shape == (3, 424, 424)
    assert not cutout.missing.any() and (cutout.pixels < 0).mean() > 0.05
    bad = fits.read(DECALS / "example_bad_pix.fits")
    assert bad.missing.sum() == BAD_PIX_ZEROS
    rgb = fits.to_rgb(bad).astype(int)[::-1]
    only_z = bad.missing[0] & bad.missing[1] & ~bad.missing[2]
    assert only_z.sum() > 100_000
    assert np.abs(rgb[only_z][:, 0] - rgb[only_z][:, 2]).max() <= 1  # grey, not red
    with pytest.raises(data.DataError, match="example_incomplete.fits: truncated"):
        data.decode(DECALS / "example_incomplete.fits", data.Preprocess())


# ---------------------------------------------------------------- the look

def _border(rgb, width=60):
    return np.concatenate([rgb[:width], rgb[-width:], rgb[:, :width].transpose(1, 0, 2),
                           rgb[:, -width:].transpose(1, 0, 2)]).reshape(-1, 3)


@needs_decals
def test_render_of_example_a_resembles_galaxy_zoos():
    """Our render beside Galaxy Zoo's own PNG of the same galaxy, written for a person to look at:
    ours (north up) | theirs | ours turned and shrunk to their field, enlarged | their middle, enlarged.

    Their PNG shows a field FIELD_RATIO times wider than the FITS cutout, a quarter turn from north
    up (the FITS holds only its middle), so the comparison shrinks our render to that middle."""
    ours = fits.to_rgb(fits.read(DECALS / "example_a.fits"))
    theirs = np.asarray(Image.open(DECALS / "example_a.png").convert("RGB"))
    side = round(424 / FIELD_RATIO)
    lo = 212 - side // 2
    middle = theirs[lo:lo + side, lo + 1:lo + 1 + side]  # their galaxy sits 1 px right of centre
    small = np.asarray(Image.fromarray(np.ascontiguousarray(np.rot90(ours, -1))).resize(
        (side, side), Image.BOX))
    enlarge = lambda rgb: np.asarray(Image.fromarray(rgb).resize((424, 424), Image.NEAREST))  # noqa: E731
    gap = np.full((424, 8, 3), 255, np.uint8)
    out = ROOT / "artifacts" / "fits" / "example_a_side_by_side.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([ours, gap, theirs, gap, enlarge(small), gap, enlarge(middle)],
                                   axis=1)).save(out)
    lum = lambda rgb: rgb.astype(float) @ [0.299, 0.587, 0.114]  # noqa: E731
    assert np.corrcoef(lum(small).ravel(), lum(middle).ravel())[0, 1] > 0.92  # measured 0.936
    np.testing.assert_allclose(small.reshape(-1, 3).mean(axis=0), middle.reshape(-1, 3).mean(axis=0),
                               atol=6)  # the same brightness and tint (measured within 5 levels)
    sky = np.median(_border(fits.to_rgb(fits.read(DECALS / "example_c.fits"))))
    assert abs(sky - np.median(_border(theirs))) <= 3  # the same dark-grey sky (16)


# ---------------------------------------------------------------- folders and the CLI

@pytest.fixture(scope="module")
def fits_universe(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("fits") / "u", 6, seed=5, image_format="fits")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    checkpoint.save(path, models.build("dieleman", width=8), preprocess=data.Preprocess(), input_size=64)
    return path


def test_synthetic_fits_universe_opens_and_renders_like_its_jpegs(fits_universe, tmp_path):
    files = sorted((fits_universe / data.IMAGE_DIRS[0]).iterdir())
    assert [p.suffix for p in files] == [".fits"] * 6
    header = afits.getheader(files[0])
    assert header["BANDS"] == "gri" and header["GALAXYID"] == synthetic.FIRST_ID
    jpegs = synthetic.generate(tmp_path / "j", 6, seed=5)
    for name in ("training_solutions_rev1.csv", synthetic.TRUTH_FILE):  # the same galaxies
        assert (jpegs / name).read_bytes() == (fits_universe / name).read_bytes()
    galaxies = data.open_folder(fits_universe)
    assert len(galaxies) == 6 and galaxies.labels is not None
    crops, kept = data.load_crops(galaxies, data.Preprocess(size=48))
    assert crops.shape == (6, 48, 48, 3) and len(kept) == 6
    for path in files[:3]:
        ours = fits.to_rgb(fits.read(path)).astype(float).mean(axis=2)
        jpeg = np.asarray(Image.open(jpegs / data.IMAGE_DIRS[0] / f"{path.stem}.jpg")).mean(axis=2)
        assert np.corrcoef(ours.ravel(), jpeg.ravel())[0, 1] > 0.95  # measured 0.99


def test_gz_synth_format_fits(tmp_path):
    r = gz("synth", "--n", 3, "--out", tmp_path / "u", "--seed", 2, "--format", "fits")
    assert r.returncode == 0 and "fits images" in r.stdout, r.stderr
    assert len(list((tmp_path / "u" / data.IMAGE_DIRS[0]).glob("*.fits"))) == 3


@pytest.mark.parametrize("source", ["synthetic", "decals"])
def test_predict_skips_and_reports_a_truncated_fits(source, fits_universe, tiny_checkpoint, tmp_path):
    folder = tmp_path / "cutouts"
    folder.mkdir()
    if source == "decals":
        if not (DECALS / "example_incomplete.fits").is_file():
            pytest.skip(f"real DECaLS FITS cutouts not found at {DECALS}")
        for path in DECALS.glob("*.fits"):
            (folder / path.name).write_bytes(path.read_bytes())
        bad = "example_incomplete.fits"
    else:
        for path in sorted((fits_universe / data.IMAGE_DIRS[0]).iterdir()):
            (folder / path.name).write_bytes(path.read_bytes())
        bad = "999.fits"
        (folder / bad).write_bytes((folder / f"{synthetic.FIRST_ID}.fits").read_bytes()[:100_000])
    n_good = len(list(folder.iterdir())) - 1
    sub = tmp_path / "s.csv"
    r = gz("predict", "--data", folder, "--checkpoint", tiny_checkpoint, "--no-tta", "--out", sub)
    assert r.returncode == 2 and bad in r.stderr and "truncated" in r.stderr
    assert "Traceback" not in r.stderr
    r = gz("predict", "--data", folder, "--checkpoint", tiny_checkpoint, "--no-tta", "--out", sub,
           "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "skipped 1 bad input" in r.stdout and bad in r.stdout and "truncated" in r.stdout
    assert len(sub.read_text().splitlines()) == 1 + n_good
