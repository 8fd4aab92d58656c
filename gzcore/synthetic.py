"""A procedural Galaxy Zoo 2 universe: SDSS-like galaxy cutouts with simulated volunteer labels.

`generate` writes a folder in the Kaggle layout (`images_training_rev1/<GalaxyID>.jpg` and
`training_solutions_rev1.csv`) for offline demos and tests. Each galaxy is built from physical
ingredients (Sérsic bulge, inclined exponential disk, bar, logarithmic arms, ring, dust lane,
companion, tidal tails, clumps) at about SDSS pixel scale, blurred by seeing, given sky noise, shown
with the Lupton arcsinh stretch, resampled to the 424 px cutout and saved as JPEG, as the real
cutouts were. Its labels come from simulated volunteers who walk the real tree (`gzcore.tree`) and
see less as features get smaller, fainter or more inclined. Image statistics (galaxy sizes, sky
level, noise, colours) follow those measured on the real Kaggle cutouts. Galaxy `i` depends only on
`(seed, i)`.

With `image_format="fits"` the images are `<GalaxyID>.fits` instead: the g, r, i flux before the
stretch, resampled to 424 px, one float32 cube (3, 424, 424) with `BANDS='gri'`, in units that
`gzcore.fits.to_rgb` renders about as the JPEG looks (labels and truth are the same as for JPEGs).

`truth.csv`, beside the labels, holds what each galaxy was rendered from (`GalaxyParams`), for
regression targets without outside data: `GalaxyID`, then
- `kind`: elliptical, lenticular, spiral, irregular, merger, star or artifact (the one categorical);
- `r_half` (px of the 424 px cutout), `pa` (radians), `incl` (degrees, 0 face-on, 90 edge-on,
  0 without a disk), `axis_ratio` (apparent b/a, 0-1), `bulge_frac` (bulge-to-total, 0-1),
  `sersic_n` (Sérsic index, 1-4);
- `n_arms` (spiral arms, int, 0 = none), `arm_strength` (share of disk light in arms, 0-1), `pitch`
  (degrees), `bar`, `ring`, `tidal`, `arc` (strengths, 0 = none), `dust` (lane optical depth),
  `clumps` (int), `companion` (its flux ratio, 0 = none), `companion_sep` (in r_half);
- observing: `seeing` (PSF sigma, px), `softening` (arcsinh softening of the JPEG stretch, in sky
  sigmas) and `core` (display level of the brightest pixels).
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image

from gzcore import fits, tree

SIZE = 424            # cutout side, px; all lengths below are in cutout px
SCALE = 2             # cutout px per render px: scenes are made near SDSS resolution, resampled
GRID = 216            # render grid side: SIZE / SCALE, padded to a fast FFT length
CENTER = 105.5        # render-grid coordinate of the cutout centre, where the target sits
FIRST_ID = 100000     # GalaxyID of galaxy 0
JPEG_QUALITY = 75     # the real cutouts' quantisation tables are quality 75, 4:2:0 chroma
FORMATS = ("jpg", "fits")  # generate(image_format=...): colour JPEGs, or g, r, i flux cubes
FITS_BANDS = "gri"    # the display channels (B, G, R) as bands, bluest first
FITS_UNIT = 0.055     # display units of fits.DECALS per sky-noise sigma (band flux = this x scale)
TRUTH_FILE = "truth.csv"

# Light shares of display channels (R, G, B) = SDSS (i, r, g) for each stellar population.
OLD = np.array([0.43, 0.34, 0.23])    # bulges, ellipticals, bars: yellow-orange
DISK = np.array([0.38, 0.34, 0.28])   # smooth disks
YOUNG = np.array([0.31, 0.33, 0.36])  # arms, knots, rings, clumps, tails: blue-white
RED = np.array([0.47, 0.33, 0.20])    # distant red galaxies
HOT, COOL = np.array([0.26, 0.33, 0.41]), np.array([0.52, 0.32, 0.16])  # range of star colours
KINDS = ("elliptical", "lenticular", "spiral", "irregular", "merger", "star", "artifact")
KIND_P = (0.34, 0.14, 0.40, 0.04, 0.07, 0.005, 0.005)

# Observing: seeing and sky noise are made on the render grid, the stretch maps them to 0-255.
NOISE_BLUR = 1.8      # px: sky noise is correlated over a few cutout px (resampling, JPEG)
NOISE_RHO = 0.8       # correlation of the sky noise between colour channels
SKY_NOISE = 3.4       # display units per channel of one sky-noise sigma
SKY_TINT = np.array([1.0, 0.95, 0.55])  # sky level per channel, relative to red
PSF_WING = 0.12       # share of a point source's light in a 2.5x wider seeing halo


@dataclass(frozen=True)
class GalaxyParams:
    """True physical parameters of one cutout's target (lengths in px of the 424 px cutout)."""
    kind: str            # one of KINDS
    r_half: float        # half-light radius; cutouts are scaled to the galaxy, so ~20-40 px
    pa: float            # position angle of the major axis, radians
    incl: float          # disk inclination, degrees: 0 face-on, 90 edge-on (0 without a disk)
    axis_ratio: float    # apparent minor/major axis ratio of the smooth light
    bulge_frac: float    # bulge-to-total light ratio (1 for ellipticals)
    sersic_n: float      # Sérsic index of the bulge or elliptical
    n_arms: int          # number of spiral arms, 0 = none
    arm_strength: float  # share of the disk light in the arms, 0-1
    pitch: float         # arm pitch angle, degrees: small = tightly wound
    bar: float           # bar strength, 0 = no bar
    ring: float          # ring strength, 0 = no ring
    dust: float          # dust-lane optical depth, 0 = none
    clumps: int          # bright star-forming clumps (irregulars, mergers)
    companion: float     # flux ratio of an overlapping second galaxy, 0 = none
    companion_sep: float  # its distance from the centre, in r_half
    tidal: float         # brightness of tidal tails, 0 = none
    arc: float           # brightness of a lensed arc, 0 = none
    seeing: float        # Gaussian PSF sigma, px
    softening: float     # arcsinh softening in sky-noise units: large = faint outskirts sink
    core: float          # display level (0-255) of the target's brightest pixels (> 255 saturates)


TRUTH_COLUMNS = ("GalaxyID", *(f.name for f in fields(GalaxyParams)))  # truth.csv's header


def sample_params(rng: np.random.Generator) -> GalaxyParams:
    """Draw one target from a population shaped like the Galaxy Zoo 2 sample."""
    kind = KINDS[rng.choice(len(KINDS), p=KIND_P)]
    spiral, merger = kind == "spiral", kind == "merger"
    disky = kind in ("lenticular", "spiral") or (merger and rng.random() < 0.5)
    incl = float(np.degrees(np.arccos(rng.random()))) if disky else 0.0
    if disky:  # a disk of intrinsic thickness 0.1-0.2 seen at this inclination
        q = np.hypot(np.cos(np.radians(incl)), rng.uniform(0.1, 0.2) * np.sin(np.radians(incl)))
    else:
        q = rng.uniform(0.4, 0.9) if kind == "irregular" else 1.0 - 0.6 * rng.beta(1.5, 3.5)
    bulge = {"lenticular": rng.uniform(0.35, 0.8), "spiral": rng.beta(1.6, 4.5), "irregular": 0.0,
             "merger": rng.uniform(0.1, 0.6) if disky else 1.0}.get(kind, 1.0)
    core = {"star": rng.uniform(250, 330), "irregular": rng.uniform(80, 130),
            "artifact": rng.uniform(60, 120)}.get(kind, np.clip(rng.normal(172, 22), 130, 220))
    chance = lambda p, lo, hi: float(rng.uniform(lo, hi)) if rng.random() < p else 0.0
    return GalaxyParams(
        kind=kind,
        r_half=float(np.clip(rng.lognormal(np.log(28 if bulge == 1 else 35), 0.22), 12, 60)),
        pa=float(rng.uniform(0, np.pi)), incl=incl, axis_ratio=float(q), bulge_frac=float(bulge),
        sersic_n=float(rng.uniform(1.5, 3.5) if kind == "elliptical" else rng.uniform(1.0, 4.0)),
        n_arms=int(rng.choice(6, p=[0.05, 0.7, 0.1, 0.07, 0.05, 0.03])) + 1 if spiral else 0,
        arm_strength=float(0.1 + 0.8 * rng.beta(2, 2.5)) if spiral else 0.0,
        pitch=float(np.clip(rng.normal(20, 8), 6, 40)) if spiral else 0.0,
        bar=chance(0.35 if spiral else 0.15 if kind == "lenticular" else 0, 0.3, 1.0),
        ring=chance(0.1 if disky else 0, 0.3, 1.0),
        dust=chance(0.6 if incl > 72 else 0, 1.5, 4.0),
        clumps=int(rng.integers(5, 15) if kind == "irregular" else rng.integers(0, 4) * merger),
        companion=float(rng.uniform(0.2, 1.0)) if merger else 0.0,
        companion_sep=float(rng.uniform(0.6, 2.5)) if merger else 0.0,
        tidal=chance(0.75 if merger else 0.04, 0.3, 1.0),
        arc=chance(0.04 if kind == "elliptical" else 0, 0.4, 1.0),
        seeing=float(rng.uniform(2.0, 3.6)),
        softening=float(np.exp(rng.uniform(np.log(8), np.log(15)))), core=float(core))


# --- light profiles on offsets (x, y) from a centre, in cutout px; each has unit total flux ---

def _unit(img):
    return img / img.sum()


def _rotate(x, y, pa):
    """Offsets -> (along the major axis, along the minor axis)."""
    c, s = np.cos(pa), np.sin(pa)
    return x * c + y * s, -x * s + y * c


def _sersic(x, y, r_eff, n, q, pa):
    u, v = _rotate(x, y, pa)
    b = 2 * n - 1 / 3 + 0.009876 / n
    return _unit(np.exp(-b * (np.hypot(u, v / q) / r_eff) ** (1 / n)))


def _disk_plane(x, y, pa, q):
    """Radius and azimuth in the plane of a disk seen with apparent axis ratio q."""
    u, v = _rotate(x, y, pa)
    return np.hypot(u, v / q), np.arctan2(v / q, u)


def _disk_to_image(R, theta, pa, q):
    """Points in a disk plane -> image offsets (inverse of _disk_plane)."""
    u, v = R * np.cos(theta), R * np.sin(theta) * q
    return u * np.cos(pa) - v * np.sin(pa), u * np.sin(pa) + v * np.cos(pa)


def _winding(R, h, pitch):
    """Azimuth of a logarithmic spiral arm at radius R."""
    return np.log(R / h + 0.05) / np.tan(np.radians(pitch))


def _arms(R, theta, h, p: GalaxyParams, rng):
    """Spiral pattern (mean ~1) with a wobble and one brighter side, fading into the centre."""
    wind = _winding(R, h, p.pitch) + 0.25 * np.sin(theta + rng.uniform(0, 2 * np.pi))
    sharp = rng.uniform(1.5, 4)
    pattern = (0.5 + 0.5 * np.cos(p.n_arms * (theta - wind))) ** sharp
    pattern /= np.mean((0.5 + 0.5 * np.cos(np.linspace(0, 2 * np.pi, 64))) ** sharp)
    lopsided = 1 + 0.3 * np.cos(theta - rng.uniform(0, 2 * np.pi))
    return pattern * lopsided * (1 - np.exp(-(R / (0.6 * h + 1.5 * p.bar * h)) ** 2))


def _patchy(rng, contrast, sigma=6.0):
    """A random lognormal field of mean ~1 with blobs of about sigma px: star-forming patchiness."""
    white = rng.standard_normal((2, GRID, GRID // 2 + 1)).astype(np.float32)
    field = np.fft.irfft2((white[0] + 1j * white[1]) * _gauss_ft(sigma), s=(GRID, GRID))
    return np.exp(contrast * field / field.std() - contrast ** 2 / 2)


# --- painting onto a scene (3, GRID, GRID) of linear flux per display channel ---

def _add(scene, img, flux, colour):
    scene += (3 * flux * np.asarray(colour, np.float32))[:, None, None] * img


def _splat(scene, x, y, flux, colour):
    """Point sources at offsets (x, y), bilinear between render pixels; colour (3,) or (k, 3)."""
    gx, gy = np.asarray(x, float) / SCALE + CENTER, np.asarray(y, float) / SCALE + CENTER
    flux = np.broadcast_to(flux, gx.shape)[:, None] * np.broadcast_to(colour, gx.shape + (3,)) * 3
    ix, iy = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = gx - ix, gy - iy
    jx = np.concatenate([ix, ix + 1, ix, ix + 1])
    jy = np.concatenate([iy, iy, iy + 1, iy + 1])
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])[:, None]
    ok = (jx >= 0) & (jx < GRID) & (jy >= 0) & (jy < GRID)
    weights = (np.tile(flux, (4, 1)) * w)[ok]
    for c in range(3):
        scene[c] += np.bincount(jy[ok] * GRID + jx[ok], weights[:, c], GRID ** 2).reshape(GRID, -1)


def _stamp(scene, cx, cy, r_eff, n, q, pa, flux, colour):
    """A small Sérsic source centred at offset (cx, cy), painted in a window around it."""
    w = int(np.clip(6 * r_eff / SCALE, 3, 40))
    i0, j0 = int(cy / SCALE + CENTER) - w, int(cx / SCALE + CENTER) - w
    ys = slice(max(i0, 0), min(i0 + 2 * w, GRID))
    xs = slice(max(j0, 0), min(j0 + 2 * w, GRID))
    if ys.start < ys.stop and xs.start < xs.stop:
        y = (np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] - CENTER) * SCALE - cy
        x = (np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] - CENTER) * SCALE - cx
        _add(scene[:, ys, xs], _sersic(x, y, r_eff, n, q, pa), flux, colour)


def _tail(scene, length, angle, curl, flux, rng, n=1500):
    """A curved tidal tail of diffuse light (many faint splats) leaving the centre."""
    t = rng.random(n)
    ang = angle + curl * t
    spread = (1 + 6 * t) * rng.standard_normal((2, n))
    _splat(scene, length * t * np.cos(ang) + spread[0], length * t * np.sin(ang) + spread[1],
           flux / n * (1.3 - t), (YOUNG + DISK) / 2)


def _stars(scene, xy, peak, colour, seeing, spike_angle):
    """Stars at offsets xy (k, 2) with these peaks (sky-noise units); bright ones get four
    diffraction spikes."""
    point = 2 * np.pi * (seeing / SCALE) ** 2 / (1 - PSF_WING)  # flux of a peak-1 point source
    colour = np.broadcast_to(colour, (len(xy), 3))
    _splat(scene, xy[:, 0], xy[:, 1], point * peak, colour)
    for (x, y), bright, c in zip(xy[peak > 400], peak[peak > 400], colour[peak > 400]):
        length = 8 * np.sqrt(bright / 100)
        t = np.linspace(-length, length, int(2 * length))
        for a in (spike_angle, spike_angle + np.pi / 2):
            _splat(scene, x + t * np.cos(a), y + t * np.sin(a),
                   0.05 * point * bright / len(t) * np.exp(-2 * np.abs(t) / length), c)


# --- the target ---

def _disk_galaxy(scene, x, y, p: GalaxyParams, rng):
    """Bulge + truncated exponential disk, with its bar, arms and knots, ring and dust lane."""
    h = p.r_half / 1.68 * (1 + 0.6 * p.bulge_frac)  # disk scale length
    r_bulge = p.r_half * (0.2 + 0.4 * p.bulge_frac)
    q_bulge = max(p.axis_ratio, rng.uniform(0.55, 0.9))
    _add(scene, _sersic(x, y, r_bulge, p.sersic_n, q_bulge, p.pa), p.bulge_frac, OLD)
    R, theta = _disk_plane(x, y, p.pa, p.axis_ratio)
    smooth = _unit(np.exp(-R / h) / (1 + np.exp((R / h - rng.uniform(3, 4.5)) / 0.3)))
    disk = 1 - p.bulge_frac
    arms = p.arm_strength * disk
    _add(scene, smooth, (disk - arms) * (1 - 0.3 * p.ring), DISK if p.n_arms else (DISK + OLD) / 2)
    if p.bar:
        bu, bv = _rotate(R * np.cos(theta), R * np.sin(theta), rng.uniform(0, np.pi))
        a = h * rng.uniform(0.8, 1.6)
        boxy = (np.abs(bu / a) ** 3 + np.abs(bv / (0.28 * a)) ** 3) ** (1 / 3)
        _add(scene, _unit(np.exp(-boxy ** 2)), 0.4 * p.bar * disk, (OLD + DISK) / 2)
    if p.n_arms:
        pattern = _arms(R, theta, h, p, rng) * _patchy(rng, 0.6)
        _add(scene, _unit(smooth * pattern), 0.88 * arms, YOUNG)
        k = int(20 + 80 * p.arm_strength)  # star-forming knots along the arms
        Rk = h * (rng.gamma(2, 0.6, k) + 0.4)
        arm = rng.integers(0, p.n_arms, k) * 2 * np.pi / p.n_arms
        tk = _winding(Rk, h, p.pitch) + arm + rng.normal(0, 0.15, k)
        _splat(scene, *_disk_to_image(Rk, tk, p.pa, p.axis_ratio),
               0.12 * arms * rng.dirichlet(np.full(k, 1.5)), YOUNG)
    if p.ring:
        r_ring = h * rng.uniform(1.0, 2.5)
        ring = _unit(np.exp(-0.5 * ((R - r_ring) / (0.12 * r_ring)) ** 2))
        _add(scene, ring, 0.3 * p.ring * disk, YOUNG)
    if p.dust:  # a thin lane along the major axis, offset towards the near side, reddening
        u, v = _rotate(x, y, p.pa)
        offset = 0.6 * h * np.cos(np.radians(p.incl))
        lane = np.exp(-0.5 * ((v - offset) / (0.03 * h + 1.5)) ** 2 - np.abs(u) / (3 * h))
        scene *= np.exp(-p.dust * np.array([0.7, 0.85, 1.0], np.float32)[:, None, None] * lane)


def _add_target(scene, x, y, p: GalaxyParams, rng):
    """The target (any kind but "star") and what belongs to it: companion, tails, clumps, arc."""
    if p.incl:
        _disk_galaxy(scene, x, y, p, rng)
    elif p.kind == "irregular":  # a patchy, blue, low-surface-brightness body with side lumps
        body = _sersic(x, y, p.r_half, 1.0, p.axis_ratio, p.pa)
        for dx, dy in rng.normal(0, 0.6 * p.r_half, (2, 2)):
            body += 0.3 * _sersic(x - dx, y - dy, 0.5 * p.r_half, 1.0, 0.8, rng.uniform(0, np.pi))
        _add(scene, _unit(body * _patchy(rng, 0.8, sigma=8.0)), 0.7, (DISK + YOUNG) / 2)
    elif p.kind == "artifact":  # a faint smudge; render_galaxy adds the satellite trail
        _add(scene, _sersic(x, y, p.r_half, 1.0, p.axis_ratio, p.pa), 0.3, DISK)
    else:
        _add(scene, _sersic(x, y, p.r_half, p.sersic_n, p.axis_ratio, p.pa), 1.0, OLD)
    if p.companion:
        ang, sep = rng.uniform(0, 2 * np.pi), p.companion_sep * p.r_half
        cx, cy = sep * np.cos(ang), sep * np.sin(ang)
        companion = _sersic(x - cx, y - cy, rng.uniform(0.4, 0.9) * p.r_half, rng.uniform(1, 4),
                            rng.uniform(0.4, 1), rng.uniform(0, np.pi))
        _add(scene, companion, p.companion, OLD if rng.random() < 0.5 else DISK)
    if p.tidal:
        for side in (0, np.pi):
            _tail(scene, p.r_half * rng.uniform(2, 4), p.pa + side + rng.normal(0, 0.3),
                  rng.choice([-1, 1]) * rng.uniform(0.8, 2.0), 0.15 * p.tidal, rng)
    for cx, cy in rng.normal(0, 0.7 * p.r_half, (p.clumps, 2)):
        _stamp(scene, cx, cy, rng.uniform(1, 3.5), 0.5, 1, 0, 0.03 * rng.lognormal(0, 0.8), YOUNG)
    if p.arc:  # a gravitationally lensed background galaxy
        t = rng.uniform(0, 2 * np.pi) + np.linspace(-0.6, 0.6, 150)
        a = p.r_half * rng.uniform(1.5, 2.5)
        _splat(scene, a * np.cos(t), a * np.sin(t), 0.04 * p.arc / t.size, YOUNG)


# --- the field around it, in sky-noise units ---

def _add_field(scene, p: GalaxyParams, rng, spike_angle):
    """Faint dots, foreground stars, small background galaxies and sometimes a neighbour near an
    edge, all clear of the target's core."""
    def positions(k, keep_out):
        xy = rng.uniform(-SIZE / 2, SIZE / 2, (4 * k + 4, 2))
        return xy[np.hypot(*xy.T) > keep_out][:k]

    def colours(k):  # from hot blue-white to cool red
        t = rng.random((k, 1)) ** 0.7
        return HOT * (1 - t) + COOL * t

    dots, stars = positions(rng.poisson(14), 2 * p.r_half), positions(rng.poisson(3), 3 * p.r_half)
    peaks = np.concatenate([np.minimum(1.5 + 3 * rng.pareto(1.2, len(dots)), 300),
                            10 ** rng.uniform(1.3, 3.6, len(stars))])
    _stars(scene, np.concatenate([dots, stars]), peaks, colours(len(peaks)), p.seeing, spike_angle)
    point = 2 * np.pi * (p.seeing / SCALE) ** 2  # about the flux of a peak-1 source
    for x, y in positions(rng.poisson(6), 2 * p.r_half):
        r_eff = rng.lognormal(np.log(1.8), 0.4)
        _stamp(scene, x, y, r_eff, rng.uniform(1, 4), rng.uniform(0.3, 1), rng.uniform(0, np.pi),
               point * rng.uniform(2, 15) * (1 + r_eff / p.seeing) ** 2,
               RED if rng.random() < 0.5 else DISK)
    if rng.random() < 0.3:
        side, r, r_eff = rng.uniform(0, 2 * np.pi), rng.uniform(140, 200), rng.uniform(4, 12)
        _stamp(scene, r * np.cos(side), r * np.sin(side), r_eff, rng.uniform(1, 4),
               rng.uniform(0.3, 1), rng.uniform(0, np.pi),
               point * rng.uniform(20, 150) * (r_eff / p.seeing) ** 2,
               OLD if rng.random() < 0.5 else DISK)


# --- observing: seeing, sky noise, stretch, resampling ---

@lru_cache(maxsize=1)
def _k2():
    """Squared spatial frequency (cycles per render px) of each rfft2 bin."""
    ky, kx = np.fft.fftfreq(GRID)[:, None], np.fft.rfftfreq(GRID)[None, :]
    return (ky ** 2 + kx ** 2).astype(np.float32)


def _gauss_ft(sigma):
    """Fourier transfer (rfft2 layout) of a Gaussian blur of sigma cutout px (or one per band)."""
    sigma = np.asarray(sigma, np.float32)[..., None, None]
    return np.exp(-2 * (np.pi * sigma / SCALE) ** 2 * _k2())


def _core_peak(scene, seeing):
    """Brightest seeing-blurred value of the channel mean near the centre (a local convolution)."""
    c = int(CENTER) + 1
    patch = scene[:, c - 32:c + 32, c - 32:c + 32].mean(axis=0)
    d = np.arange(c - 24, c + 24)[:, None] - np.arange(c - 32, c + 32)[None, :]
    out = 0
    for w, s in ((1 - PSF_WING, seeing / SCALE), (PSF_WING, 2.5 * seeing / SCALE)):
        k = np.exp(-0.5 * (d / s) ** 2) / (np.sqrt(2 * np.pi) * s)
        out = out + w * (k @ patch @ k.T)
    return float(out.max())


def _sky_noise_ft(rng):
    """Fourier transform of sky noise of about unit sigma per channel (varying per image)."""
    shape = (3, GRID, GRID // 2 + 1)
    white = rng.standard_normal(shape, np.float32) + 1j * rng.standard_normal(shape, np.float32)
    corr = np.full((3, 3), NOISE_RHO) + (1 - NOISE_RHO) * np.eye(3)
    mix = np.linalg.cholesky(corr).astype(np.float32)
    scale = GRID * np.sqrt(2 * np.pi) * NOISE_BLUR / SCALE * rng.uniform(0.85, 1.6)
    correlated = (mix[:, :, None, None] * white[None]).sum(axis=1)  # (3, 3) x (3, ...) -> (3, ...)
    return correlated * (_gauss_ft(NOISE_BLUR) * scale)


def _stretch(flux, softening, rng):
    """Lupton et al. (2004) arcsinh stretch of the channel mean, plus a faint sky level."""
    mean = flux.mean(axis=0)
    safe = np.where(np.abs(mean) > 1e-3, mean, 1e-3)
    gain = np.where(np.abs(mean) > 1e-3, softening * np.arcsinh(safe / softening) / safe, 1.0)
    sky = rng.uniform(1.8, 5.2) * SKY_TINT * rng.uniform(0.7, 1.3, 3)
    rgb = flux * gain * SKY_NOISE + sky[:, None, None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def observe(params: GalaxyParams, rng: np.random.Generator) -> np.ndarray:
    """The sky around one target as seen through the telescope: linear flux (3, 212, 212) in units
    of the sky noise, display channels (R, G, B) = SDSS (i, r, g), before the stretch and the
    resampling to the 424 px cutout."""
    g = (np.arange(GRID, dtype=np.float32) - CENTER) * SCALE
    x, y = g[None, :], g[:, None]
    scene = np.zeros((3, GRID, GRID), np.float32)
    core = params.softening * np.sinh(params.core / (SKY_NOISE * params.softening))  # sky sigmas
    spike_angle = rng.choice([0.0, np.pi / 4]) + rng.normal(0, 0.05)
    if params.kind == "star":
        colour = YOUNG + (OLD - YOUNG) * rng.random()
        _stars(scene, np.zeros((1, 2)), np.array([core]), colour, params.seeing, spike_angle)
    else:
        _add_target(scene, x, y, params, rng)
        tint = np.exp(rng.normal(0, 0.07, 3))  # redshift and dust vary colours between galaxies
        scene *= (core / _core_peak(scene, params.seeing) * tint / tint.mean())[:, None, None]
    if params.kind == "artifact":  # a satellite trail through the centre, bright in one band
        t = np.linspace(-300, 300, 1200)  # dense splats: a line some 10-50 sky sigma bright
        band = np.eye(3)[rng.integers(0, 3)] * 0.8 + 0.2 / 3
        _splat(scene, t * np.cos(params.pa + 0.7), 2 + t * np.sin(params.pa + 0.7),
               rng.uniform(2, 8) * SCALE * params.seeing, band)
    _add_field(scene, params, rng, spike_angle)
    seeing = params.seeing * (1 + rng.normal(0, 0.06) * np.array([-1, 0, 1]))  # colour fringes
    psf = (1 - PSF_WING) * _gauss_ft(seeing) + PSF_WING * _gauss_ft(2.5 * seeing)
    flux = np.fft.irfft2(np.fft.rfft2(scene) * psf + _sky_noise_ft(rng), s=(GRID, GRID))
    return flux[:, :SIZE // SCALE, :SIZE // SCALE]


def render_galaxy(params: GalaxyParams, rng: np.random.Generator) -> np.ndarray:
    """The cutout of one target as a 424x424x3 uint8 image (before JPEG)."""
    small = _stretch(observe(params, rng), params.softening, rng)
    return np.asarray(Image.fromarray(small).resize((SIZE, SIZE), Image.BICUBIC))


def render_bands(params: GalaxyParams, rng: np.random.Generator) -> np.ndarray:
    """The cutout of one target as float32 g, r, i flux images (3, 424, 424) in FITS row order
    (row 0 = bottom): what `gzcore.fits.to_rgb` renders about as the JPEG shows it."""
    flux = observe(params, rng)[::-1]  # (i, r, g) -> (g, r, i)
    unit = FITS_UNIT * np.array([dict(fits.DECALS.scales)[b] for b in FITS_BANDS])
    bands = [np.asarray(Image.fromarray(np.ascontiguousarray(f, np.float32)).resize(
        (SIZE, SIZE), Image.BICUBIC)) * u for f, u in zip(flux, unit)]
    return np.stack(bands)[:, ::-1].astype(np.float32)


# --- where a feature's light lies (explanations' positive control) ---

FEATURES = {"bar": "bar", "arms": "arm_strength"}  # a feature we can locate -> its strength parameter


def _streams(seed: int, index: int):
    """The (params, image, votes) random generators of galaxy `index` of universe `seed`."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(3)]


def galaxy(seed: int, index: int) -> tuple[GalaxyParams, np.ndarray]:
    """Galaxy `index` of universe `seed` as `generate` saves it: its parameters and its 424 px cutout
    (uint8 RGB, after the JPEG round trip)."""
    params_rng, image_rng, _ = _streams(seed, index)
    params = sample_params(params_rng)
    buffer = io.BytesIO()
    Image.fromarray(render_galaxy(params, image_rng)).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return params, np.asarray(Image.open(buffer).convert("RGB"))


def feature_light(seed: int, index: int, feature: str) -> np.ndarray:
    """Where the light of `feature` (a key of FEATURES) of galaxy `index` lies in its 424 px cutout:
    (424, 424) float32 >= 0, the feature's flux seen through the seeing. It is the derivative of the
    target's scene with respect to the feature's strength, from two renderings with the same random
    draws: for arms, light moved from the smooth disk into the arms (and their knots)."""
    params_rng, image_rng, _ = _streams(seed, index)
    params = sample_params(params_rng)
    strength = getattr(params, FEATURES[feature])
    if not strength:
        raise ValueError(f"galaxy {index} of universe {seed} has no {feature}")
    nudged = strength * 0.999
    if int(20 + 80 * nudged) != int(20 + 80 * strength):  # the arms' knot count must not change
        nudged = strength * 1.001
    g = (np.arange(GRID, dtype=np.float32) - CENTER) * SCALE
    scenes = []
    for value in (strength, nudged):
        rng = np.random.default_rng(image_rng.bit_generator.seed_seq)
        rng.choice([0.0, np.pi / 4]), rng.normal(0, 0.05)  # observe's spike angle, drawn first
        scene = np.zeros((3, GRID, GRID), np.float32)
        _add_target(scene, g[None, :], g[:, None], replace(params, **{FEATURES[feature]: value}), rng)
        scenes.append(scene.astype(np.float64).sum(0))
    change = np.maximum((scenes[0] - scenes[1]) / (strength - nudged), 0)
    seen = np.fft.irfft2(np.fft.rfft2(change) * _gauss_ft(params.seeing), s=(GRID, GRID))
    seen = np.maximum(seen[:SIZE // SCALE, :SIZE // SCALE], 0).astype(np.float32)
    return np.asarray(Image.fromarray(seen).resize((SIZE, SIZE), Image.BILINEAR))


# --- simulated volunteers ---

def _norm(weights):
    w = np.asarray(weights, float)
    return w / w.sum()


def _soft(value, centres, width):
    """Soft one-of-n choice: weights fall off with the distance of `value` from each centre."""
    return _norm(np.exp(-0.5 * ((value - np.asarray(centres, float)) / width) ** 2) + 1e-3)


def _answer_probs(p: GalaxyParams) -> list[np.ndarray]:
    """What a typical volunteer answers to each question (Q1..Q11) when asked, from the truth.

    Everything blurs towards guessing as the galaxy gets smaller against the seeing, shallower
    (faint outskirts sink into the sky) or more inclined (arms and bars foreshorten)."""
    resolved = 1 / (1 + np.exp(-2.5 * np.log(p.r_half / p.seeing / 5)))
    clarity = resolved / (1 + np.exp((p.softening - 13) / 1.5))
    face_on = np.clip(np.cos(np.radians(p.incl)) * 2, 0, 1)
    edge_on = 1 / (1 + np.exp(-(p.incl - 80) / 3)) * (p.incl > 0)
    disk = (1 - p.bulge_frac) * (p.incl > 0 or p.kind == "irregular")
    feature = (1.2 * p.arm_strength * face_on + 0.6 * p.bar * face_on + 0.5 * p.ring + 1.5 * edge_on
               + 0.8 * disk + 0.15 * p.clumps + 0.6 * p.tidal + 0.4 * p.companion + 0.4 * p.dust)
    p_star = {"star": 0.6, "artifact": 0.45}.get(p.kind, 0.02)
    p_feat = 0.06 + 0.88 * (1 - np.exp(-2.0 * feature * (0.3 + 0.7 * clarity)))
    sure = 0.7 + 0.3 * clarity  # how far answers move from a coin toss towards the truth
    mix = lambda probs: sure * _norm(probs) + (1 - sure) / len(probs)
    p_edge = 0.03 + 0.92 * edge_on if p.incl else 0.03 + 0.2 * (1 - p.axis_ratio)
    p_bar = 0.04 + 0.85 * p.bar * face_on * clarity
    p_spiral = min(0.97, 0.06 + 0.9 * (1 - np.exp(-7 * p.arm_strength * face_on * clarity))
                   + 0.15 * p.ring + 0.02 * p.clumps + 0.08 * (p.kind == "lenticular"))
    bulge = p.bulge_frac if p.incl else 0.3  # without a disk the whole galaxy looks like a bulge
    arms = np.full(6, 0.02)  # 1, 2, 3, 4, more than four, can't tell
    if p.n_arms:
        k = min(p.n_arms, 5) - 1
        arms[[k, max(k - 1, 0), min(k + 1, 4)]] += [0.8, 0.05, 0.05]
    arms = mix(arms) + np.eye(6)[5] * (0.2 + 0.5 * (1 - clarity))
    odd = {"ring": 3.0 * p.ring, "lens/arc": 2.5 * p.arc,
           "disturbed": 0.8 * p.tidal + 0.1 * p.clumps + 0.05,
           "irregular": 1.5 * (p.kind == "irregular") + 0.05,
           "other": 1.5 * (p.kind in ("star", "artifact")),
           "merger": 2.0 * p.companion + 0.5 * p.tidal, "dust lane": 0.1 * p.dust}
    p_odd = 0.06 + 0.8 * (1 - np.exp(-sum(odd.values()))) * (0.4 + 0.6 * clarity)
    odd["other"] += 0.2  # an odd-looking neighbour, a star in front, ...
    return [
        np.array([(1 - p_star) * (1 - p_feat), (1 - p_star) * p_feat, p_star]),
        mix([p_edge, 1 - p_edge]),
        mix([p_bar, 1 - p_bar]),
        mix([p_spiral, 1 - p_spiral]),
        mix(_soft(bulge, [0.0, 0.15, 0.4, 0.8], 0.12)),
        np.array([p_odd, 1 - p_odd]),
        mix(_soft(p.axis_ratio, [0.92, 0.68, 0.3], 0.15)),
        _norm([odd[a.short] + 0.02 for a in tree.QUESTION_BY_NUMBER[8].answers]),
        mix([p.bulge_frac > 0.05, 0.05 + 0.5 * p.bar, p.bulge_frac < 0.1]),
        mix(_soft(p.pitch, [11, 21, 31], 5) if p.n_arms else [0.4, 0.4, 0.2]),
        _norm(arms),
    ]


def volunteer_votes(params: GalaxyParams, rng: np.random.Generator,
                    n_volunteers: int) -> np.ndarray:
    """Weighted vote fractions (37,) from `n_volunteers` volunteers walking the tree.

    Each volunteer has a personal confidence (answers sharpened or flattened); votes are counted
    per question among those asked, then weighted like the Kaggle labels (`tree.to_weighted`). As in
    the released data, every volunteer also answers Q6, whatever they said at Q1."""
    confidence = rng.lognormal(0, 0.4, (n_volunteers, 1))
    choices = []  # each volunteer's answer to every question, used only where the walk asks it
    for pq, u in zip(_answer_probs(params), rng.random((len(tree.QUESTIONS), n_volunteers, 1))):
        w = pq ** confidence
        cumulative = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        choices.append((u > cumulative[:, :-1]).sum(axis=1))
    votes = np.zeros(tree.N_ANSWERS)
    asked = np.zeros(len(tree.QUESTIONS) + 1)  # by question number
    for answers in np.stack(choices, axis=1).tolist():
        number = 1
        while number is not None:
            k = answers[number - 1]
            votes[tree.SLICES[number].start + k] += 1
            asked[number] += 1
            step = tree.QUESTION_BY_NUMBER[number].answers[k].leads_to
            number = 6 if number == 1 and step is None else step  # star/artifact still get Q6
    conditional = np.zeros(tree.N_ANSWERS)
    for q in tree.QUESTIONS:
        if asked[q.number]:  # a question nobody reached stays 0
            conditional[tree.SLICES[q.number]] = votes[tree.SLICES[q.number]] / asked[q.number]
    return tree.to_weighted(conditional)[0]


# --- the folder ---

def _make_one(image_dir: Path, seed: int, image_format: str, index: int
              ) -> tuple[np.ndarray, GalaxyParams]:
    """Render and save galaxy `index`, return its labels and truth; all randomness from
    (seed, index), so the labels and the truth do not depend on the image format."""
    params_rng, image_rng, vote_rng = _streams(seed, index)
    params = sample_params(params_rng)
    galaxy_id = FIRST_ID + index
    if image_format == "fits":
        fits.write(image_dir / f"{galaxy_id}.fits", render_bands(params, image_rng), FITS_BANDS,
                   bunit="nanomaggy", survey="gzcore synthetic", galaxyid=galaxy_id)
    else:
        image = Image.fromarray(render_galaxy(params, image_rng))
        image.save(image_dir / f"{galaxy_id}.jpg", quality=JPEG_QUALITY)
    return volunteer_votes(params, vote_rng, int(vote_rng.integers(20, 51))), params


def _truth_row(galaxy_id: int, params: GalaxyParams) -> str:
    values = [getattr(params, name) for name in TRUTH_COLUMNS[1:]]
    return ",".join([str(galaxy_id)] + [f"{v:.6g}" if isinstance(v, float) else str(v) for v in values])


def generate(out_dir, n: int, seed: int = 0, progress=None, workers: int | None = None,
             image_format: str = "jpg") -> Path:
    """Write `n` synthetic galaxies in the Kaggle training layout under `out_dir`; return it.

    `image_format` "jpg" writes `<GalaxyID>.jpg` colour cutouts, "fits" `<GalaxyID>.fits` g, r, i
    flux cubes (`render_bands`). Beside the labels, `truth.csv` holds what was rendered (see the
    module's docstring). Galaxies are rendered by `workers` processes (default: one per core); each
    depends only on (seed, index), so the folder is the same for any number. `progress(done,
    total)` is called after each galaxy."""
    if image_format not in FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    image_dir = out / "images_training_rev1"
    image_dir.mkdir(parents=True, exist_ok=True)
    lines = ["GalaxyID," + ",".join(tree.COLUMNS)]
    truth = [",".join(TRUTH_COLUMNS)]
    make = partial(_make_one, image_dir, seed, image_format)
    workers = min(workers or os.cpu_count() or 1, max(n, 1))
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        rows = pool.map(make, range(n), chunksize=4) if pool else map(make, range(n))
        for i, (labels, params) in enumerate(rows):
            lines.append(f"{FIRST_ID + i}," + ",".join(f"{v:.6f}" for v in labels))
            truth.append(_truth_row(FIRST_ID + i, params))
            if progress:
                progress(i + 1, n)
    (out / "training_solutions_rev1.csv").write_text("\n".join(lines) + "\n")
    (out / TRUTH_FILE).write_text("\n".join(truth) + "\n")
    return out
