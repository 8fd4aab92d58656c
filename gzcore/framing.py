"""Framing: how big a galaxy is in the picture a model sees, and how a cutout from another survey is
rescaled to look as the model's training images did.

Galaxy Zoo 2 (and so the Kaggle 2014 images every shipped model learnt from) cut each SDSS galaxy
out at 0.02 x its Petrosian R90 (r band) arcseconds per pixel, 424 px a side: whatever its distance,
the radius holding 90% of its light spans 50 px (`GZ2`). Galaxy Zoo DECaLS scaled its cutouts by
the Petrosian radii too, never finer than 0.1″/px (README, "Framing"). A cutout at another scale —
DECaLS's example_a.fits is 0.1″/px and its galaxy's R90 9.6″ = 96 px — shows a galaxy about twice
as large as a Galaxy Zoo 2 cutout would, and the model answers for another picture.
`frame_cutout` measures the galaxy and rescales a FITS cutout to the checkpoint's `Target` before
it is rendered; `frame_picture` does it for a JPEG or PNG whose pixel scale its owner gives. What
was done is an `Applied`, which `gz predict` prints and "Your galaxy" shows.

The galaxy's size is SDSS's Petrosian R90 (`petrosian`): circular apertures about the brightest
point near the middle, the Petrosian radius where the mean surface brightness in the annulus 0.8r to
1.25r is 0.2 times the mean within r, and R50 / R90 the radii holding 50% / 90% of the flux within
twice that, on the r band after the sky (the darkest corner) is subtracted. On the five DECaLS
cutouts it is within 4% of the NASA-Sloan Atlas's R50 for three and 9% for the fourth (b's
catalogue value is an outlier), and within 9% and 2% of its R90 where known; Source Extractor
(`sep`) was measured beside it and did worse (README, "Framing"). A picture is measured on its
luminance linearised by the inverse of Galaxy Zoo DECaLS's arcsinh (`fits.gz_decals_untone`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from . import fits

ETA = 0.2            # SDSS's Petrosian ratio
N_PETRO = 2.0        # Petrosian flux: within this many Petrosian radii (SDSS)
MIN_R90_ARCSEC = 1.0  # a smaller R90 is a star or a seeing disc, not a galaxy's size
FADE = 0.3           # beyond the field, the edge's light fades over this many R90s (15 px in Galaxy Zoo 2's)


@dataclass(frozen=True)
class Target:
    """The framing a model expects, as its checkpoint records it (`to_dict`, key "framing")."""
    name: str = "gz2"           # "gz2": Galaxy Zoo 2's SDSS cutouts (the Kaggle 2014 images)
    r90_px: float = 50.0        # the galaxy's Petrosian R90 (r band) in pixels of the cutout
    frame_px: int = 424         # the cutout's side in pixels
    rendering: str = "sdss-gz2"  # what its training pictures were: SDSS g, r, i as Galaxy Zoo 2 rendered them

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, found: dict) -> "Target":
        """A checkpoint's "framing" dict; ValueError naming what is wrong (checkpoint.check says
        which file)."""
        if not isinstance(found, dict):
            raise ValueError(f"framing is not a set of options (found {type(found).__name__})")
        unknown = set(found) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"framing has an unknown key {sorted(unknown)[0]!r}")
        target = cls(**{**asdict(GZ2), **found})
        size = target.r90_px
        if not isinstance(size, (int, float)) or isinstance(size, bool) or not 1 <= size <= target.frame_px:
            raise ValueError(f"framing r90_px {size!r} is not a radius from 1 px to its frame's side")
        if not isinstance(target.frame_px, int) or not 16 <= target.frame_px <= 8192:
            raise ValueError(f"framing frame_px {target.frame_px!r} is not a side from 16 to 8192 px")
        return target

    @property
    def label(self) -> str:
        return (f"Galaxy Zoo 2 framing: Petrosian R90 = {self.r90_px:g} px of a {self.frame_px} px cutout "
                f"(0.02 × R90 ″/px)" if self.name == "gz2" else
                f"{self.name}: R90 = {self.r90_px:g} px of a {self.frame_px} px cutout")


GZ2 = Target()  # every checkpoint written before framing was recorded learnt from Kaggle's images


def of_checkpoint(ckpt: dict) -> Target:
    """The framing a checkpoint's model expects (Galaxy Zoo 2's for checkpoints that predate it)."""
    return Target.from_dict(ckpt.get("framing") or {})


@dataclass(frozen=True)
class Radii:
    """A galaxy's Petrosian radii, in pixels of the image measured."""
    petrosian: float
    r50: float
    r90: float
    complete: bool  # False: 2 Petrosian radii reach beyond the image, so R50 and R90 are lower limits


@dataclass(frozen=True)
class Applied:
    """What was done to one image to frame it (gz predict prints it, "Your galaxy" shows it)."""
    kind: str                          # "FITS" or "picture"
    rendering: str                     # fits.RENDERINGS key, or "as given" (a JPEG or PNG's own colours)
    pixel_scale: float | None = None   # arcsec per pixel of the image as given
    scale_from: str = ""               # "WCS", "--pixel-scale", or "" (unknown)
    r90_px: float | None = None        # the galaxy's measured Petrosian R90, in the image's pixels
    factor: float = 1.0                # rescale: the framed picture's pixels per pixel of the image
    target: Target = GZ2
    reason: str | None = None          # why the framing could not be established (None: it was)
    note: str | None = None            # a caveat on an established framing
    box: tuple[float, float] | None = None  # the crop box (low, high edge) in the framed picture

    @property
    def established(self) -> bool:
        return self.reason is None

    @property
    def r90_arcsec(self) -> float | None:
        return None if self.r90_px is None or self.pixel_scale is None else self.r90_px * self.pixel_scale

    def warning(self) -> str | None:
        """The user's warning when the framing could not be established, else None."""
        if self.established:
            return None
        return (f"framing not established ({self.reason}): the image is cropped as given, as if it were "
                f"framed like a Galaxy Zoo 2 cutout, and the answers may be those of another picture")

    def doubt(self) -> str | None:
        """Why an image of a folder may not be framed as the model's training pictures were, else
        None: its framing not established, but for a JPEG or PNG without a pixel scale when the
        model learnt Galaxy Zoo 2's cutouts (cropped as one, as Kaggle's are); or a FITS without a
        WCS, rescaled by its galaxy's size in pixels alone (a star could pass for a galaxy)."""
        if self.kind == "picture" and not self.pixel_scale and self.target == GZ2:
            return None
        if self.reason:
            return self.reason
        if self.kind == "FITS" and not self.pixel_scale:
            return "no WCS in its header: rescaled by its galaxy's size in pixels alone"
        return None

    def lines(self) -> list[tuple[str, str]]:
        """(what, value) rows: rendering, pixel scale, the galaxy's size, the rescale, the crop box."""
        render = fits.RENDERINGS.get(self.rendering, self.rendering)
        scale = (f"{self.pixel_scale:.4g} ″/px (from {self.scale_from})" if self.pixel_scale else
                 "unknown" + (" (no WCS in the header)" if self.kind == "FITS" else " (give it to frame the image)"))
        size = "not measured" if self.r90_px is None else (
            f"Petrosian R90 {self.r90_px:.1f} px" + (f" = {self.r90_arcsec:.2f}″" if self.r90_arcsec else ""))
        rescale = (f"× {self.factor:.3f}: R90 → {self.target.r90_px:g} px of a {self.target.frame_px} px cutout"
                   if self.established else "none (cropped as given)")
        rows = [("rendering", render), ("pixel scale", scale), ("galaxy size", size), ("rescale", rescale)]
        if self.box is not None:
            where = "the framed picture" if self.established else "the picture"
            rows.append(("crop box", f"{self.box[0]:.0f}–{self.box[1]:.0f} px of {where} "
                                     f"({self.box[1] - self.box[0]:.0f} px square)"))
        if self.note:
            rows.append(("note", self.note))
        return rows

    def summary(self) -> str:
        """One line for the command line."""
        return "framing: " + "; ".join(f"{what} {value}" for what, value in self.lines())


# ---------------------------------------------------------------- measuring

def petrosian(band: np.ndarray) -> Radii | None:
    """SDSS-style Petrosian radii (pixels) of the galaxy at the middle of a sky-subtracted image
    (2-D float; NaN = no data), in circular apertures about the brightest point within 3% of the
    side from the middle. None when the ratio never falls to `ETA` inside the image (no galaxy, or
    one larger than the image) or the Petrosian flux is not positive."""
    image = np.where(np.isfinite(band), band, 0.0).astype(np.float64)
    valid = np.isfinite(band)
    h, w = image.shape
    if min(h, w) < 17:
        return None
    cy, cx = _centre(image)
    reach = min(cy, cx, h - 1 - cy, w - 1 - cx)  # the largest circle inside the image
    if reach < 8:
        return None
    y, x = np.indices(image.shape)
    ring = np.hypot(y - cy, x - cx).astype(np.int64)  # 1 px annuli
    n = int(reach) + 1
    flux = np.bincount(ring.ravel(), image.ravel(), minlength=n + 1)[:n]
    area = np.bincount(ring.ravel(), valid.ravel(), minlength=n + 1)[:n]
    outer = np.arange(1, n + 1, dtype=np.float64)  # the cumulative sums' outer radius
    cum_flux, cum_area = np.cumsum(flux), np.cumsum(area)
    radii = np.arange(2.0, outer[-1] / 1.25, 0.25)
    if not len(radii):
        return None

    def within(r):
        return np.interp(r, outer, cum_flux), np.interp(r, outer, cum_area)
    (f_in, a_in), (f_lo, a_lo), (f_hi, a_hi) = within(radii), within(0.8 * radii), within(1.25 * radii)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ((f_hi - f_lo) / np.maximum(a_hi - a_lo, 1)) / (f_in / np.maximum(a_in, 1))
    below = np.flatnonzero((ratio < ETA) & (f_in > 0))
    if not len(below):
        return None
    r_p = float(radii[below[0]])
    aperture = min(N_PETRO * r_p, outer[-1])
    total = within(aperture)[0]
    if total <= 0:
        return None
    inside = outer <= aperture
    r50 = float(np.interp(0.5 * total, cum_flux[inside], outer[inside]))
    r90 = float(np.interp(0.9 * total, cum_flux[inside], outer[inside]))
    return Radii(r_p, r50, r90, N_PETRO * r_p <= outer[-1])


def _centre(image: np.ndarray) -> tuple[float, float]:
    """The brightest point (after a 2 px smoothing) within 3% of the side from the middle."""
    from scipy import ndimage

    h, w = image.shape
    reach = max(2, int(0.03 * min(h, w)))
    my, mx = h // 2, w // 2
    part = ndimage.gaussian_filter(image[my - reach:my + reach + 1, mx - reach:mx + reach + 1], 2.0)
    dy, dx = np.unravel_index(int(np.argmax(part)), part.shape)
    return float(my - reach + dy), float(mx - reach + dx)


def _sky(plane: np.ndarray) -> float:
    """The sky level: the median of the darkest of the image's four corners (squares of 5% of its
    side), the pixels farthest from a centred galaxy (its faint outskirts still reach the edges'
    middles). Survey cutouts are sky-subtracted, but not to the last 0.1 sigma, and a low surface
    brightness galaxy's R90 moves by half with that much."""
    h, w = plane.shape
    edge = max(2, int(0.05 * min(h, w)))
    corners = [plane[:edge, :edge], plane[:edge, -edge:], plane[-edge:, :edge], plane[-edge:, -edge:]]
    levels = [np.median(c[np.isfinite(c)]) for c in corners if np.isfinite(c).any()]
    return float(min(levels)) if levels else 0.0


def size_band(cutout: fits.Cutout) -> int:
    """The band the galaxy is measured in: r (as SDSS's petroR90_r), else the middle of the
    picture's bands."""
    if "r" in cutout.bands:
        return cutout.bands.index("r")
    index = fits.rgb_bands(cutout.bands)
    return index[len(index) // 2]


# ---------------------------------------------------------------- rescaling

def resample(plane: np.ndarray, factor: float, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(plane rescaled by `factor` about its middle onto side x side pixels, bilinear after a box
    average when shrinking; True where the output lies outside the image). NaN stays NaN."""
    from scipy import ndimage

    step = 1.0 / factor  # input pixels per output pixel
    valid = np.isfinite(plane).astype(np.float64)
    data = np.where(valid > 0, plane, 0.0).astype(np.float64)
    width = int(round(step))
    if width >= 2:  # shrinking: each output pixel averages the input pixels it covers
        data = ndimage.uniform_filter(data, width, mode="nearest")
        valid = ndimage.uniform_filter(valid, width, mode="nearest")
    h, w = plane.shape
    centre_in = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre_in - step * (side - 1) / 2
    out = ndimage.affine_transform(data, np.diag([step, step]), offset=offset, output_shape=(side, side),
                                   order=1, cval=0.0)
    cover = ndimage.affine_transform(valid, np.diag([step, step]), offset=offset, output_shape=(side, side),
                                     order=1, cval=-1.0)
    outside = cover < -0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(cover > 0.5, out / np.maximum(cover, 1e-9), np.nan)
    return out, outside


def noise_sigma(plane: np.ndarray) -> float:
    """A plane's pixel noise, robust to the galaxy: the spread of differences 3 px apart (smooth
    light cancels; resampled noise is correlated over ~2 px)."""
    diff = (plane[:, 3:] - plane[:, :-3]).ravel()
    diff = diff[np.isfinite(diff)]
    if not diff.size:
        return 0.0
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2))


def _fill_outside(plane: np.ndarray, outside: np.ndarray, level: float, fade: float, rng) -> np.ndarray:
    """Sky where the framed picture reaches beyond the image: `level` plus noise as the image's,
    with the light at the image's edge (a galaxy's outskirts often reach it) fading out over `fade`
    pixels, so that the model sees no square edge."""
    if not outside.any():
        return plane
    from scipy import ndimage

    known = ~outside & np.isfinite(plane)
    edge = _broad_light(plane, known)
    distance, (rows, cols) = ndimage.distance_transform_edt(outside, return_indices=True)
    light = (edge[rows, cols] - level) * np.exp(-distance / fade)
    sigma = noise_sigma(np.where(outside, np.nan, plane))
    plane = plane.copy()
    plane[outside] = level + light[outside] + rng.normal(0.0, sigma, int(outside.sum()))
    return plane


def _broad_light(plane: np.ndarray, known: np.ndarray, step: int = 4) -> np.ndarray:
    """The light of `plane` smoothed so that only a galaxy's broad outskirts remain: means over
    `step` px blocks (blocks without data take their nearest's), then a 5-block median, which a star
    (a block or two) does not survive: else a star at the edge would be drawn out into a streak."""
    from scipy import ndimage

    h, w = plane.shape
    pad = ((0, -h % step), (0, -w % step))
    blocks = (-(-h // step), step, -(-w // step), step)
    total = np.pad(np.where(known, plane, 0.0), pad).reshape(blocks).sum(axis=(1, 3))
    count = np.pad(known.astype(np.float64), pad).reshape(blocks).sum(axis=(1, 3))
    have = count >= step * step / 4
    mean = np.where(have, total / np.maximum(count, 1), 0.0)
    if not have.all():
        _, (rows, cols) = ndimage.distance_transform_edt(~have, return_indices=True)
        mean = mean[rows, cols]
    smooth = ndimage.median_filter(mean, size=5, mode="nearest")
    return np.repeat(np.repeat(smooth, step, axis=0), step, axis=1)[:h, :w]


def frame_cutout(cutout: fits.Cutout, target: Target = GZ2) -> tuple[fits.Cutout, Applied]:
    """(the cutout rescaled so that its galaxy's Petrosian R90 spans `target.r90_px` of a
    `target.frame_px` cutout, what was applied). Beyond the original field the sky is continued as
    noise of the image's level, the light at its edge fading out (seeded: the same file frames the
    same way). When the galaxy cannot be measured, the cutout comes back as it is, with the reason."""
    scale = cutout.pixel_scale
    applied = Applied("FITS", fits.rendering_of(cutout.bands), scale, "WCS" if scale else "", target=target)
    planes, applied = _rescaled(cutout.pixels, cutout.pixels[size_band(cutout)], lambda plane: 0.0,
                                applied)  # sky-subtracted: the sky beyond the field is 0
    if planes is None:
        return cutout, applied
    return fits.Cutout(np.stack(planes).astype(np.float32), cutout.bands,
                       None if scale is None else scale / applied.factor), applied


def frame_picture(rgb, pixel_scale: float | None, target: Target = GZ2) -> tuple[np.ndarray, Applied]:
    """(a JPEG or PNG's pixels uint8 (H, W, 3) framed as `frame_cutout` frames a FITS, what was
    applied). Only with its `pixel_scale` (the owner says it is a survey cutout at that scale);
    without, `rgb` comes back as it is (cropped as a Galaxy Zoo 2 cutout would be), with the reason:
    it may be any array-like (a PIL image, read only when it is framed)."""
    applied = Applied("picture", "as given", pixel_scale, "--pixel-scale" if pixel_scale else "",
                      target=target)
    if not pixel_scale:
        return rgb, replace(applied, reason="a JPEG or PNG's pixel scale is unknown: give it (″/px) "
                                            "to frame the image by its galaxy's measured size")
    rgb = np.asarray(rgb)
    # resampled as light, as a FITS is: through the inverse stretch and back (8 bits truncated)
    light = [fits.gz_decals_untone((rgb[..., k].astype(np.float64) + 0.5) / 255.0) for k in range(rgb.shape[2])]
    green = light[1 % len(light)]  # the r band in Galaxy Zoo's pictures
    planes, applied = _rescaled(light, green, _sky, applied)
    if planes is None:
        return rgb, applied
    channels = [np.floor(np.clip(fits.gz_decals_tone(plane), 0.0, 1.0) * 255.0) for plane in planes]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8), applied


def _rescaled(planes, band: np.ndarray, sky, applied: Applied) -> tuple[list[np.ndarray] | None, Applied]:
    """(`planes` rescaled so that the galaxy measured on `band` has its R90 at `applied.target`'s,
    the sky beyond the field at each plane's `sky(plane)`; what was applied), or (None, `applied`
    with the reason) when its size cannot frame the image."""
    target, scale = applied.target, applied.pixel_scale
    radii = petrosian(band - _sky(band))
    problem = _problem(radii, scale)
    if problem:
        return None, replace(applied, reason=problem, r90_px=radii and radii.r90)
    factor = target.r90_px / radii.r90
    rng = np.random.default_rng(0)
    framed = []
    for plane in planes:
        out, outside = resample(plane, factor, target.frame_px)
        framed.append(_fill_outside(out, outside, sky(plane), FADE * target.r90_px, rng))
    return framed, replace(applied, r90_px=radii.r90, factor=factor, note=_note(radii, scale))


def _problem(radii: Radii | None, scale: float | None) -> str | None:
    """Why a measured size cannot frame the image, or None."""
    if radii is None:
        return "no galaxy whose light falls off inside the image was found at its centre"
    if scale and radii.r90 * scale < MIN_R90_ARCSEC:
        return (f"the central source's R90 is {radii.r90 * scale:.2f}″, smaller than a galaxy's "
                f"({MIN_R90_ARCSEC:g}″): a star, or the wrong pixel scale")
    if radii.r90 < 2:
        return f"the central source's R90 is {radii.r90:.1f} px: too small to measure"
    return None


def _note(radii: Radii, scale: float | None) -> str | None:
    notes = []
    if not radii.complete:
        notes.append("the galaxy reaches beyond the image's inscribed circle: its R90 is a lower limit, "
                     "so it may be framed a little large")
    if not scale:
        notes.append("no pixel scale: the rescale uses the galaxy's size in pixels alone")
    return "; ".join(notes) or None
