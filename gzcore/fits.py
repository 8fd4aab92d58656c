"""FITS cutouts: any number of bands in, an RGB picture out, rendered as Galaxy Zoo renders DECaLS.

`read(path)` gives a `Cutout`: float32 pixels (bands, H, W) from one HDU holding a (bands, H, W)
cube or from one 2-D image per HDU, with the band names the header gives (`BANDS='grz'`,
`BAND0..n`, or `BAND` / `FILTER` / `EXTNAME` per HDU). Rows stay as FITS stores them (row 0 is the
bottom of the sky). Missing data becomes NaN: NaN or infinite pixels, and exact zeros in
floating-point data (cutout services fill what lies outside the survey with 0.0; sky-subtracted
noise is never exactly 0). Negative pixels are kept: they are sky noise, and the stretch maps them
to black. A truncated, corrupt or non-FITS file, or one with no valid pixel, raises `FitsError`
naming the file (`gzcore.data` turns it into a `DataError`, which `--skip-bad` skips and reports).

`render(cutout)` is what the pipeline shows a model (after `gzcore.framing` has rescaled the
cutout): g, r, z as Galaxy Zoo DECaLS rendered them for its volunteers (`gz_decals_rgb`, ported from
their code), other bands by `to_rgb`. `read` also gives the WCS pixel scale (arcsec per pixel).

`to_rgb(cutout)` renders it north up (row 0 at the top) with the asinh stretch of Lupton et al.
(2004, PASP 116, 133), applied to each pixel's mean intensity so that colours do not change with
brightness, plus Galaxy Zoo's dark-grey sky, softer colours and white cores (`Stretch`). Which bands
make the picture:
- 1 or 2 bands: grey, from the mean of the scaled bands;
- 3 bands: bluest -> blue, middle -> green, reddest -> red (g, r, z -> B, G, R as Galaxy Zoo DECaLS);
- more: g, r, z if all are present, else g, r, i, else the bluest, middle and reddest band.
Named bands are ordered by wavelength (u g r i z y); if any band has no known name, file order is
taken as blue to red. The parameters are `Stretch`'s, tuned so that example_a.fits looks like
example_a.png (tests/test_fits.py writes the two side by side), which turned out to show the galaxy
in another, wider field (README, "Framing"); its tone and sky still match Galaxy Zoo DECaLS's.
"""
from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")  # file names gzcore.data reads as FITS
WAVELENGTH_ORDER = "ugrizy"           # bluest first
PREFERRED = ("grz", "gri")            # which three of more than three bands make the picture


class FitsError(ValueError):
    """A FITS file that cannot be used; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Cutout:
    """One multi-band image."""
    pixels: np.ndarray        # float32 (bands, H, W), FITS row order (row 0 = bottom); NaN = missing
    bands: tuple[str, ...]    # lower-case band names ('g', 'r', 'z'), '' where the file says none
    pixel_scale: float | None = None  # arcsec per pixel from the header's WCS; None: it gives none

    @property
    def missing(self) -> np.ndarray:
        """bool (bands, H, W): pixels with no data."""
        return np.isnan(self.pixels)


@dataclass(frozen=True)
class Stretch:
    """Lupton et al. (2004) asinh stretch, with a black level and a colour contrast. (Decoded crops
    are cached: a change to the defaults needs a new `data.FITS_RENDERING`.)

    Each band is divided by its scale (the listed ones are nanomaggies per display unit, for DECaLS
    and SDSS; a band without one, or data in other units with `scales=()`, is divided by
    `noise_scale` times its sky noise). The black level `minimum` is subtracted, then every channel
    of a pixel is multiplied by the same factor asinh(Q I / stretch) / (Q I) of the pixel's mean
    intensity I, so that colours do not change with brightness. `saturation` then scales each
    pixel's colour (its distance from grey), and channels above 1.0 (white) are clipped, so bright
    cores turn white as in Galaxy Zoo's renders (Lupton et al. scale such a pixel down whole to
    keep its colour).

    The defaults were fitted to Galaxy Zoo's own PNG of example_a.fits (least squares over the RGB
    pixels after shrinking our render to the PNG's wider field), with the sky of example_b, c and d
    held at the PNG's grey level (16). The g, r, z scales came out within 0-25% of Galaxy Zoo's
    DECaLS scales (0.0066-0.008, 0.014, 0.019-0.025); u, i, y are their neighbours'. Galaxy Zoo's
    per-channel asinh washes colours out (its example_a is grey-white): with saturation free the fit
    went to 0; 0.5 keeps half the colour, which models use (red ellipticals, blue arms), at a small
    cost in likeness (tests/test_fits.py writes the two side by side and asserts the similarity)."""
    scales: tuple[tuple[str, float], ...] = (  # nanomaggies per display unit, per band
        ("u", 0.0067), ("g", 0.0067), ("r", 0.0124), ("i", 0.0152), ("z", 0.0186), ("y", 0.0186))
    Q: float = 7.3            # asinh softening: linear below I ~ stretch / Q, logarithmic above
    stretch: float = 3.9      # linear range: with Q -> 0, intensity `stretch` would be white
    minimum: float = -0.28    # display units mapped to black: the sky (0) shows as a dark grey
    saturation: float = 0.5   # colour contrast: 1 keeps Lupton's colours, 0 is grey
    noise_scale: float = 1.5  # bands without a listed scale: display unit = 1.5 sky-noise sigmas

    def scale(self, band: str, pixels: np.ndarray) -> float:
        listed = dict(self.scales).get(band)
        if listed is not None:
            return listed
        valid = pixels[np.isfinite(pixels)]
        if not valid.size:
            return 1.0
        sigma = 1.4826 * np.median(np.abs(valid - np.median(valid)))  # robust: the galaxy is an outlier
        return float(self.noise_scale * sigma) if sigma > 0 else 1.0


DECALS = Stretch()


# ---------------------------------------------------------------- reading

def _band_names(header, n: int) -> list[str]:
    """Band names of an HDU holding `n` planes, from its header ('' where it says none)."""
    listed = [str(header.get(f"BAND{k}", "")).strip().lower() for k in range(n)]
    if all(listed):
        return listed
    bands = str(header.get("BANDS", "")).strip().lower().replace(",", " ").split()
    if len(bands) == 1 and len(bands[0]) == n:  # 'grz'
        bands = list(bands[0])
    if len(bands) == n:
        return bands
    for key in ("BAND", "FILTER", "EXTNAME") if n == 1 else ():
        value = str(header.get(key, "")).strip().lower()
        if value and (key != "EXTNAME" or (len(value) == 1 and value in WAVELENGTH_ORDER)):
            return [value]
    return [""] * n


def _data_bytes(header) -> int:
    """Bytes of data an HDU's raw header announces (FITS standard 4.4.1, padding excluded)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = int(np.prod([int(header[f"NAXIS{k}"]) for k in range(1, naxis + 1)], dtype=np.int64))
    return abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1)) * (
        int(header.get("PCOUNT", 0)) + count)


def _open(blob: bytes, name, max_pixels: int | None) -> list[tuple[np.ndarray, list[str], float | None]]:
    """The image planes (with their band names and WCS pixel scale) of a FITS file held in memory,
    after checking that every HDU's data is all there: astropy only warns of a truncated file, then
    fails on reading its data with "cannot reshape array" or "buffer is too small", which names
    nothing. An image with an axis of length 0 has no data (FITS standard 4.4.1); one whose planes
    have more than `max_pixels` is refused before its data is read."""
    from astropy.io import fits as afits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns of truncation; we check it ourselves below
        with afits.open(io.BytesIO(blob), memmap=False, lazy_load_hdus=False) as hdul:
            images = []
            for k, hdu in enumerate(hdul):
                info = hdul.fileinfo(k)
                raw = afits.Header.fromstring(blob[info["hdrLoc"]:info["datLoc"]])  # as on disk
                end = info["datLoc"] + _data_bytes(raw)
                if end > len(blob):
                    raise FitsError(f"{name}: truncated: HDU {k}'s data needs {end:,} bytes, the file "
                                    f"has {len(blob):,} (an interrupted download? fetch it again)")
                naxis = int(hdu.header.get("NAXIS", 0))
                axes = [int(hdu.header.get(f"NAXIS{n}", 0)) for n in range(1, naxis + 1)]
                if not hdu.is_image or not axes or 0 in axes:
                    continue
                if max_pixels and len(axes) > 1 and axes[0] * axes[1] > max_pixels:
                    raise FitsError(f"{name}, HDU {k}: {axes[0]}x{axes[1]} pixels, more than the "
                                    f"{max_pixels:,} allowed")
                planes = _planes(hdu.data, raw["BITPIX"] < 0, f"{name}, HDU {k}")
                images.append((planes, _band_names(hdu.header, len(planes)), pixel_scale(hdu.header)))
            return images


def pixel_scale(header) -> float | None:
    """Arcseconds per pixel of an image HDU's celestial WCS (the mean of its two axes, which a
    cutout service makes equal), or None when the header has no celestial WCS."""
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        wcs = WCS(header, naxis=2).celestial
        if not wcs.has_celestial:
            return None
        arcsec = proj_plane_pixel_scales(wcs) * 3600  # degrees -> arcsec (the CUNITs are degrees)
    except Exception:  # astropy raises many types for odd WCS cards: then there is no scale to use
        return None
    arcsec = float(np.mean(arcsec))
    return arcsec if np.isfinite(arcsec) and arcsec > 0 else None


def _planes(data: np.ndarray, floating: bool, where: str) -> np.ndarray:
    """An HDU's image or cube as float32 (bands, H, W), with NaN where data is missing."""
    if data.ndim < 2 or np.prod(data.shape[:-3], dtype=np.int64) != 1:
        raise FitsError(f"{where}: data of shape {data.shape}; expected (H, W) or (bands, H, W)")
    planes = np.array(data, dtype=np.float32).reshape((-1,) + data.shape[-2:])
    if floating:  # exact zeros in float data are the cutout service's "no data here"
        planes[planes == 0] = np.nan
    planes[~np.isfinite(planes)] = np.nan
    return planes


def read(path, max_pixels: int | None = None, blob: bytes | None = None) -> Cutout:
    """All the bands of a FITS file (one cube, or one image per HDU), as a `Cutout`. With
    `max_pixels`, bands of more pixels are refused from the header, and a .fits.gz as soon as it
    unpacks to more than 16 bytes for each pixel allowed (4 float32 bands): a gzip bomb. `blob`:
    the file's bytes when they are already in memory (an upload; `path` then only names it)."""
    path = Path(path)
    try:
        blob = path.read_bytes() if blob is None else blob
        if blob[:2] == b"\x1f\x8b":  # .fits.gz
            blob = _gunzip(blob, path, max_pixels and 16 * max_pixels)
    except (OSError, EOFError, zlib.error) as e:
        raise FitsError(f"{path}: cannot read ({e})") from e
    if not blob.startswith(b"SIMPLE  ="):
        raise FitsError(f"{path}: not a FITS file (it does not begin with the SIMPLE card)")
    try:
        images = _open(blob, path, max_pixels)
    except FitsError:
        raise
    except Exception as e:  # astropy raises many types for damaged headers
        raise FitsError(f"{path}: not a readable FITS file ({type(e).__name__}: {e})") from e
    if not images:
        raise FitsError(f"{path}: no image in any HDU")
    shapes = {planes.shape[1:] for planes, _, _ in images}
    if len(shapes) > 1:
        raise FitsError(f"{path}: the HDUs' images differ in size {sorted(shapes)}; "
                        f"bands must share one pixel grid")
    pixels = np.concatenate([planes for planes, _, _ in images])
    if np.isnan(pixels).all():
        raise FitsError(f"{path}: every pixel is missing (NaN or 0): outside the survey?")
    scales = [scale for _, _, scale in images if scale]
    return Cutout(pixels, tuple(b for _, names, _ in images for b in names), scales[0] if scales else None)


def _gunzip(blob: bytes, path: Path, limit: int | None) -> bytes:
    """A gzip file's content; with `limit`, one that unpacks to more bytes is refused (a bomb)."""
    unpack = zlib.decompressobj(wbits=31)  # the gzip format
    out = unpack.decompress(blob, limit + 1 if limit else 0)
    if limit and len(out) > limit:
        raise FitsError(f"{path}: unpacks to more than {limit:,} bytes, more than a FITS file of the "
                        f"pixels allowed")
    if not unpack.eof:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")
    return out


def write(path, pixels: np.ndarray, bands: str, **header) -> Path:
    """One HDU holding the (bands, H, W) cube in FITS row order, with `BANDS` / `BAND<k>` cards and
    any extra header cards (keyword=value)."""
    from astropy.io import fits as afits

    pixels = np.asarray(pixels, dtype=np.float32)
    assert len(bands) == len(pixels), "one band name per plane"
    hdu = afits.PrimaryHDU(pixels)
    hdu.header["BANDS"] = bands
    for k, band in enumerate(bands):
        hdu.header[f"BAND{k}"] = band
    for key, value in header.items():
        hdu.header[key.upper()] = value
    path = Path(path)
    hdu.writeto(path, overwrite=True)
    return path


# ---------------------------------------------------------------- rendering

def rgb_bands(bands: tuple[str, ...]) -> tuple[int, ...]:
    """Indices of the bands that become (red, green, blue); one or two bands: all of them (grey)."""
    n = len(bands)
    if n < 3:
        return tuple(range(n))
    known = all(b in WAVELENGTH_ORDER and len(b) == 1 for b in bands)
    order = sorted(range(n), key=lambda k: WAVELENGTH_ORDER.index(bands[k])) if known else list(range(n))
    for triple in PREFERRED if n > 3 else ():
        if set(triple) <= set(bands):
            order = [bands.index(b) for b in triple]
            break
    blue, green, red = order[0], order[len(order) // 2], order[-1]
    return red, green, blue


def _fill_missing(planes: np.ndarray) -> np.ndarray:
    """Scaled planes (c, H, W) with NaN -> the mean of the pixel's other planes (grey), or 0 (sky)
    where none has data: a band's gap does not become a bright colour cast."""
    missing = np.isnan(planes)
    if not missing.any():
        return planes
    present = (~missing).sum(axis=0)
    mean = np.where(present > 0, np.nansum(planes, axis=0) / np.maximum(present, 1), 0.0)
    return np.where(missing, mean[None], planes)


def lupton(planes: np.ndarray, stretch: Stretch = DECALS) -> np.ndarray:
    """Scaled (red, green, blue) planes (3, H, W) -> uint8 (H, W, 3), row order kept."""
    x = planes.astype(np.float64) - stretch.minimum
    intensity = x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        qi = stretch.Q * intensity
        factor = np.where(intensity > 0, np.arcsinh(qi / stretch.stretch) / qi, 0.0)
    rgb = x * factor
    grey = rgb.mean(axis=0)
    rgb = np.clip(grey + stretch.saturation * (rgb - grey), 0, 1)
    return np.rint(rgb * 255).astype(np.uint8).transpose(1, 2, 0)


def to_rgb(cutout: Cutout, stretch: Stretch = DECALS) -> np.ndarray:
    """The cutout as a colour picture, uint8 (H, W, 3), north up (FITS rows flipped)."""
    index = rgb_bands(cutout.bands)
    planes = np.stack([cutout.pixels[k] / stretch.scale(cutout.bands[k], cutout.pixels[k])
                       for k in index])
    planes = _fill_missing(planes)
    if len(index) < 3:
        planes = np.repeat(planes.mean(axis=0, keepdims=True), 3, axis=0)
    return np.ascontiguousarray(lupton(planes, stretch)[::-1])


# ---------------------------------------------------------------- Galaxy Zoo DECaLS's own rendering

# Ported from willettk/decals (MIT licence; see ../shared/data/decals-fits/LICENSE), the code that
# made Galaxy Zoo DECaLS's volunteer images: `dr2_style_rgb` in
# python/a_download_decals/get_images/image_utils.py ("originally written by Dustin Lang and used by
# Kyle Willett for DECALS DR1/DR2 Galaxy Zoo subjects"), called by `make_png_from_fits` in
# get_images/download_images_threaded.py with the parameters below, then saved with matplotlib's
# imsave(origin='lower') (north up; floats in [0, 1] truncated to 8 bits).
GZ_DECALS_SCALES = {"g": 0.008, "r": 0.014, "z": 0.019}  # nanomaggies per display unit (its `_scales`)
GZ_DECALS_RANGE = (-0.5, 300.0)  # display units that become black and white, before the arcsinh (`_mnmx`)
RENDERINGS = {  # the names `render` gives, as a page or a checkpoint says them
    "gz-decals": "Galaxy Zoo DECaLS's own colour rendering of g, r, z (dr2_style_rgb: per-band arcsinh, "
                 "desaturated; willettk/decals)",
    "lupton": "Lupton et al. (2004) asinh stretch of the pixel's mean intensity (gzcore.fits.Stretch)",
}


def gz_decals_tone(x):
    """Display units (flux / band scale) -> 0..1 (unclipped): Galaxy Zoo DECaLS's arcsinh between
    GZ_DECALS_RANGE (dr2_style_rgb with arcsinh=1)."""
    low, high = np.arcsinh(GZ_DECALS_RANGE[0]), np.arcsinh(GZ_DECALS_RANGE[1])
    return (np.arcsinh(x) - low) / (high - low)


def gz_decals_untone(v):
    """`gz_decals_tone`'s inverse: 0..1 -> display units."""
    low, high = np.arcsinh(GZ_DECALS_RANGE[0]), np.arcsinh(GZ_DECALS_RANGE[1])
    return np.sinh(np.asarray(v, dtype=np.float64) * (high - low) + low)


def gz_decals_rgb(cutout: Cutout) -> np.ndarray:
    """The g, r, z bands of `cutout` as Galaxy Zoo DECaLS rendered them for its volunteers: uint8
    (H, W, 3), north up. z -> red, r -> green, g -> blue, each divided by its GZ_DECALS_SCALES,
    through `gz_decals_tone`, then dr2_style_rgb's desaturation (pixels dominated by one colour pulled
    towards grey, so the sky does not speckle), clipped to 0..1. Missing pixels (NaN) take the
    other bands' mean, or 0 (sky) where no band has data (`_fill_missing`)."""
    planes = np.stack([cutout.pixels[cutout.bands.index(b)] / GZ_DECALS_SCALES[b] for b in "zrg"])
    rgb = gz_decals_tone(_fill_missing(planes.astype(np.float64)))
    mean = rgb.mean(axis=0)
    mean = np.where(mean == 0.0, 1.0, mean)  # as their np.putmask(a, a == 0.0, 1.0)
    weight = np.minimum(np.max(rgb / mean / 2.5, axis=0), 1.0)  # the largest share of one colour
    weight = np.sin((1 - weight) * np.pi / 2.0)
    rgb = rgb * weight + mean * (1 - weight) + mean * (1 - weight) ** 2 * rgb
    out = (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)  # matplotlib's imsave truncates
    return np.ascontiguousarray(out.transpose(1, 2, 0)[::-1])


def rendering_of(bands: tuple[str, ...]) -> str:
    """The rendering `render` uses for these bands: "gz-decals" when g, r and z are among them
    (DECaLS and other g, r, z surveys), else "lupton"."""
    return "gz-decals" if set(GZ_DECALS_SCALES) <= set(bands) else "lupton"


def render(cutout: Cutout) -> np.ndarray:
    """The cutout as the pipeline shows it to a model: uint8 (H, W, 3), north up, by `rendering_of`
    its bands (Galaxy Zoo DECaLS's own rendering for g, r, z; `to_rgb` otherwise)."""
    return gz_decals_rgb(cutout) if rendering_of(cutout.bands) == "gz-decals" else to_rgb(cutout)
