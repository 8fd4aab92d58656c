"""Galaxy Zoo folders in the Kaggle layout: labels, images, crops and the decoded-crop cache.

A folder holds `images_training_rev1/<GalaxyID>.jpg` (+ `training_solutions_rev1.csv`), or
`images_test_rev1/<GalaxyID>.jpg`, or just images. Crops are decoded once into a memory-mapped uint8
cache (N, H, W, C) keyed by a fingerprint of the files and the preprocessing, so that epochs never
re-decode JPEGs and datasets larger than RAM still train. The cache is built in parts that a killed
build resumes from and that several processes can share; a cache found damaged is built again.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import io
import json
import math
import os
import shutil
import signal
import warnings
import zipfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageFile, UnidentifiedImageError

from . import atomic, fits, framing, tree

IMAGE_DIRS = ("images_training_rev1", "images_test_rev1")
LABELS_FILE = "training_solutions_rev1.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", *fits.SUFFIXES)
CACHE_VERSION = 3  # 3: 16-bit and transparent images decoded anew (see _rgb)
# caches holding FITS: 2: framed (gzcore.framing) and rendered as Galaxy Zoo DECaLS did; 3: and those
# whose framing is in doubt kept (warned of at every load)
FITS_RENDERING = 3
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is an error, never silently grey
# The most pixels (width x height) an image may have; larger ones are refused from their header,
# before decoding. Galaxy Zoo images are 424 x 424 (0.18 Mpx) and survey cutouts a few hundred px
# a side, of which a model sees a central crop; 40 Mpx (6324 px square) is 200 times that. Decoding
# one costs up to 0.3 GB a worker (RGBA, then RGB), where a 10000 px square PNG costs 1.1 GB and a
# "decompression bomb" (a small file declaring 30000 x 30000) far more. It is below Pillow's own
# warning limit (89 Mpx), so an image gzcore accepts never makes Pillow warn.
MAX_PIXELS = 40_000_000
UNKNOWN = ("", "nan", "NaN", "NA")  # label cells that mean "unknown" (NaN), in every labels CSV


class DataError(ValueError):
    """Bad input: the message names the file or row and, where possible, the fix."""


class InputWarning(UserWarning):
    """Input that is read, but not as it was given (images stretched or cut to a square, labels
    read as partial): the message names the files; `gz` prints it as "warning: …"."""


def warn(message: str) -> None:
    """An `InputWarning` (each message once in a process, as Python's warnings are)."""
    warnings.warn(InputWarning(message), stacklevel=2)


def listed(names: list[str], most: int = 5) -> str:
    """'a, b, c' or 'a, b, c, … (12 in all)': a few names of a long list."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, … ({len(names)} in all)"


@dataclass(frozen=True)
class Preprocess:
    """How a 424 px cutout becomes a model input crop."""
    crop: str = "centre"      # "centre": central square; "roi": square around the largest bright
    #                           source, padded by `roi_pad` and never smaller than `crop_px`
    crop_px: int = 207        # side of the central square, in 424-px units (scaled for other sizes)
    size: int = 72            # side of the stored crop in pixels
    grayscale: bool = False   # luminance only (stored as one channel)
    roi_pad: float = 1.25     # ROI box enlargement factor

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


CROP_FIELDS = {"roi": 160, "centre": 232}  # gz train --crop: the smallest box, or the central square


@dataclass
class GalaxySet:
    """The galaxies of one folder: ids, image paths and (if present) weighted labels (N, 37)."""
    root: Path
    ids: np.ndarray                 # int64 GalaxyIDs
    paths: list[Path]
    labels: np.ndarray | None = None  # float32 (N, 37) weighted fractions
    skipped: list[str] = field(default_factory=list)  # human-readable reasons, with --skip-bad
    warned: list[str] = field(default_factory=list)   # the InputWarnings its crops were loaded with, for a page

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: np.ndarray) -> "GalaxySet":
        index = np.asarray(index)
        return GalaxySet(self.root, self.ids[index], [self.paths[i] for i in index],
                         None if self.labels is None else self.labels[index], list(self.skipped), list(self.warned))

    @classmethod
    def concat(cls, sets: list["GalaxySet"]) -> "GalaxySet":
        """Several folders' galaxies as one (rooted at the first); an id may appear only once."""
        if len(sets) == 1:
            return sets[0]
        ids = np.concatenate([g.ids for g in sets])
        values, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            twice = values[counts > 1][0]
            where = [str(g.root) for g in sets if twice in g.ids]
            raise DataError(f"GalaxyID {twice} is in more than one folder ({', '.join(where)}): "
                            f"each galaxy may be trained on once")
        labels = None if any(g.labels is None for g in sets) else np.concatenate([g.labels for g in sets])
        return cls(sets[0].root, ids, [p for g in sets for p in g.paths], labels,
                   [s for g in sets for s in g.skipped])


def read_table(csv_path: Path, columns=()):
    """A CSV's cells as strings (a DataFrame) under its header as the file spells it; a UTF-8 BOM
    (Excel writes one) and Windows line endings are fine. Raises DataError naming the file for one
    that is no CSV, a row longer than the header (the line), no rows, and a column of `columns`
    (those the caller reads) that is there twice or only spelt otherwise (case, spaces): pandas
    would rename the second copy, and the caller would miss the misspelt one."""
    import pandas as pd

    try:
        cells = pd.read_csv(csv_path, header=None, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as e:  # pandas raises many types for malformed files
        raise DataError(f"{csv_path}: cannot be read as CSV ({' '.join(str(e).split())})") from e
    header = list(cells.iloc[0])
    table = cells.iloc[1:].set_axis(header, axis=1).reset_index(drop=True)
    if table.empty:
        raise DataError(f"{csv_path}: no rows below its header")
    for name in columns:
        if header.count(name) > 1:
            raise DataError(f"{csv_path}: column {name!r} appears {header.count(name)} times; keep one")
        spelt = [c for c in header if c.strip().casefold() == name.casefold()]
        if name not in header and spelt:
            raise DataError(f"{csv_path}: column {spelt[0]!r} should be spelt {name!r}")
    return table


def parse_id(text: str) -> int | None:
    """The GalaxyID `text` (a file name's stem, a CSV cell) spells: ASCII digits, read exactly (SDSS
    objIDs, ~1.2e18, are beyond float64's integers) and within int64; None for anything else."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) < 2 ** 63 else None


def read_labels(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a Kaggle solutions CSV: (GalaxyIDs int64, weighted labels float32 (N, 37)).

    The CSV may hold any subset of the 37 answer columns (labels from another campaign): absent
    columns and `UNKNOWN` cells (empty, NaN) are unknown, NaN in the result, never 0; absent columns
    are named in an `InputWarning`. Raises
    DataError naming the file and, where it is one, the row: see `read_table`, and a missing
    GalaxyID column, ids that are no image's name or appear twice, bad numbers, values out of
    [0, 1] or known answers that break the decision tree's sums."""
    import pandas as pd

    csv_path = Path(csv_path)
    df = read_table(csv_path, ("GalaxyID", *tree.COLUMNS))
    present = [c for c in tree.COLUMNS if c in df.columns]
    if "GalaxyID" not in df.columns or not present:
        raise DataError(f"{csv_path}: expected GalaxyID and answer columns (any of Class1.1…Class11.6); "
                        f"found {', '.join(df.columns[:6])}{' …' if len(df.columns) > 6 else ''}")
    cells = df[present].apply(lambda c: c.str.strip())
    values = cells.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    not_number = np.isnan(values) & ~cells.isin(UNKNOWN).to_numpy()
    if not_number.any():
        i, j = np.argwhere(not_number)[0]
        raise DataError(f"{csv_path}, line {i + 2}: {present[j]} {cells.iat[i, j]!r} is not a number")
    ids = [parse_id(v) for v in df["GalaxyID"]]
    if None in ids:
        i = ids.index(None)
        raise DataError(f"{csv_path}, line {i + 2}: GalaxyID {df['GalaxyID'][i]!r} is not a number "
                        f"naming an image (<GalaxyID>.jpg: digits only, below 2^63)")
    ids = np.array(ids, dtype=np.int64)
    again = pd.Series(ids).duplicated().to_numpy()
    if again.any():
        i = int(again.argmax())
        raise DataError(f"{csv_path}, line {i + 2}: GalaxyID {ids[i]} appears more than once")
    labels = np.full((len(df), tree.N_ANSWERS), np.nan)
    labels[:, [tree.COLUMN_INDEX[c] for c in present]] = values
    problems = tree.check_labels(labels, ids=ids, unknown_ok=True)
    if problems:
        first = problems[0]
        raise DataError(f"{csv_path}, line {first.row + 2}: {first.message}"
                        f" ({len(problems)} problem(s) in {len({p.row for p in problems})} row(s))")
    absent = [c for c in tree.COLUMNS if c not in present]
    if absent:  # labels from another campaign, or a column lost on the way: say which
        warn(f"{csv_path}: {len(absent)} of the {tree.N_ANSWERS} answer columns are missing "
             f"({listed(absent, 8)}); it is read as partial labels: those answers are unknown for every galaxy")
    return ids, labels.astype(np.float32)


def image_stem(path: Path) -> str | None:
    """The id part of an image file's name (`123.jpg`, `123.fits.gz` -> "123"), None for others."""
    name = path.name.lower()
    suffix = next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)
    return path.name[:-len(suffix)] if suffix else None


def find_images(root: Path) -> Path:
    """The folder holding the images: one of the Kaggle image folders, or `root` itself."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    if any(image_stem(p) is not None for p in root.iterdir()):
        return root
    inside = image_folders_inside(root)
    hint = f"; its folder {inside[0].name}/ holds images: use {inside[0]}" if inside else ""
    raise DataError(f"{root}: not a Galaxy Zoo folder: expected {IMAGE_DIRS[0]}/<GalaxyID>.jpg "
                    f"(+ {LABELS_FILE}), {IMAGE_DIRS[1]}/, or a folder of images{hint}")


def image_folders_inside(root) -> list[Path]:
    """The folders directly inside `root` that hold images (<id>.jpg, .png, .fits …), `images/`
    first: where the images of a folder without any are likely to be."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")
             and any(image_stem(f) is not None for f in p.iterdir())]
    return sorted(found, key=lambda p: p.name.lower() != "images")


def open_folder(root, labels: bool | None = None, skip_bad: bool = False) -> GalaxySet:
    """Index a Kaggle-layout folder. `labels=None` uses the CSV when present, True requires it.

    Every labelled row needs its image: a missing one is an error naming it (or, with
    `skip_bad`, a skipped row recorded in `GalaxySet.skipped`).
    """
    root = Path(root)
    image_dir = find_images(root)
    csv_path = root / LABELS_FILE
    use_labels = csv_path.is_file() and image_dir.name != IMAGE_DIRS[1] if labels is None else labels
    if use_labels and not csv_path.is_file():
        raise DataError(f"{csv_path}: labels file not found (needed for training and evaluation)")
    images = images_of(root)
    return with_labels(images, *read_labels(csv_path), skip_bad=skip_bad) if use_labels else images


def images_of(root) -> GalaxySet:
    """Every image of a folder (the Kaggle image folder, or the folder itself), without labels,
    ids as `unlabelled` gives them."""
    folder = find_images(root)
    paths = sorted(p for p in folder.iterdir() if image_stem(p) is not None)
    if not paths:
        raise DataError(f"{folder}: no images (<GalaxyID>.jpg, .png or .fits files)")
    return unlabelled(root, paths)


def file_id(path: Path) -> int | None:
    """The GalaxyID an image file's name gives (`123.jpg` -> 123), None for a name that is no id."""
    return parse_id(image_stem(path) or "")


def unlabelled(root, paths: list[Path]) -> GalaxySet:
    """Image files as galaxies without labels. The id is the number a file is named by; a file not
    named by a number has its position in `paths`, or where a name holds that number, the next one
    up that no other file has (so a stray `notes.png` never takes the id of `3.jpg`). A number that
    names two files (`1.jpg`, `1.png`, `01.fits`) is an error naming both."""
    named = [file_id(p) for p in paths]
    first: dict[int, int] = {}  # number -> the first file named by it
    for k, i in enumerate(named):
        if i is not None and first.setdefault(i, k) != k:
            raise DataError(f"{paths[first[i]]} and {paths[k]} both have GalaxyID {i}: "
                            f"rename or remove one")
    ids, taken = [], set(first)
    for k, i in enumerate(named):
        if i is None:
            i = k
            while i in taken:
                i += 1
            taken.add(i)
        ids.append(i)
    return GalaxySet(Path(root), np.array(ids, dtype=np.int64), list(paths), None, [])


def with_labels(images: GalaxySet, ids: np.ndarray, labels: np.ndarray,
                skip_bad: bool = False) -> GalaxySet:
    """The labelled rows (ids, labels) joined to their images, in the labels' order: a row's image
    is the file named by its id (never one numbered by its position). A row without an image is an
    error naming it, or with `skip_bad` a skipped row; an image without a row is left out."""
    row_of = {int(i): k for k, (i, path) in enumerate(zip(images.ids, images.paths))
              if file_id(path) is not None}
    found = np.array([int(i) in row_of for i in ids], dtype=bool)
    skipped = list(images.skipped)
    if not found.all():
        folder = find_images(images.root)
        missing = [f"{folder / f'{i}.jpg'} (or .png, .fits)" for i in ids[~found]]
        if not skip_bad:
            raise DataError(f"{len(missing)} labelled galaxies have no image, e.g. {missing[0]} "
                            f"(use --skip-bad to skip them)")
        skipped += [f"{m}: image missing" for m in missing]
    rows = [row_of[int(i)] for i in ids[found]]
    return GalaxySet(images.root, ids[found], [images.paths[r] for r in rows], labels[found], skipped)


def split(galaxies: GalaxySet, val_fraction: float = 0.1, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split by a hash of each GalaxyID, so a galaxy stays on the same side
    whatever else is in the folder. Returns (train_index, val_index)."""
    is_val = in_validation(galaxies.ids, val_fraction, seed)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def in_validation(ids, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Whether each GalaxyID falls in the validation side of `split` (a hash of the id alone)."""
    with np.errstate(over="ignore"):  # wrap-around multiplication is the hash
        h = (np.asarray(ids).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(seed) * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(11)
    return h.astype(np.float64) / 2.0 ** 53 < val_fraction


# ---------------------------------------------------------------- decoding one image

def _central_source(mask: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the connected part of `mask` (4-neighbours) that touches the central 7x7
    pixels. Works on the mask's pixels alone: the part takes in every run along a row or a column
    that it touches, rows and columns in turn, until it stops growing."""
    h, w = mask.shape
    y, x = np.divmod(np.flatnonzero(mask), w)  # row by row
    part = (np.abs(y - c) <= 3) & (np.abs(x - c) <= 3)
    by_column = np.argsort(x * h + y, kind="stable")
    runs = []  # each pixel's run along its row, then along its column
    for order, along, across in ((np.arange(len(y)), x, y), (by_column, y, x)):
        a, b = along[order], across[order]
        start = np.ones(len(y), bool)
        start[1:] = (np.diff(a) != 1) | (np.diff(b) != 0)
        run = np.empty(len(y), np.intp)
        run[order] = np.cumsum(start)
        runs.append(run)
    size = np.count_nonzero(part)
    while size:
        for run in runs:
            touched = np.zeros(len(y) + 1, bool)
            touched[run[part]] = True
            part = touched[run]
        grown = np.count_nonzero(part)  # the part only grows: same size, same part
        if grown == size:
            break
        size = grown
    return y[part], x[part]


def _median(values: np.ndarray, counts: np.ndarray) -> np.float32:
    """np.median of a sample given as ascending values and their counts (a histogram)."""
    cum = np.cumsum(counts)
    middle = values[np.searchsorted(cum, [(cum[-1] - 1) // 2, cum[-1] // 2], side="right")]
    return np.float32(middle.mean())


def _roi_box(image: Image.Image, min_side: float, pad: float) -> tuple[float, float]:
    """(low, high) edge of the centred square holding the bright source at the centre (pixels >
    sky + 4σ after a 106 px resample), enlarged by `pad`, never smaller than `min_side`."""
    side = image.width
    small = np.asarray(image.convert("L").resize((106, 106), Image.BILINEAR))
    counts, levels = np.bincount(small.ravel(), minlength=256), np.arange(256, dtype=np.float32)
    sky = _median(levels, counts)  # the medians from the histogram: a third of the time of sorting
    deviation = np.abs(levels - sky)
    order = np.argsort(deviation, kind="stable")
    sigma = 1.4826 * _median(deviation[order], counts[order]) + 1.0
    c = 53
    ys, xs = _central_source(small > sky + 4 * sigma, c)
    half = min_side / 2
    if len(ys):
        extent = max(np.abs(xs - c).max(), np.abs(ys - c).max()) + 1
        half = max(half, extent * side / 106 * pad)
    half = min(half, side / 2)
    return side / 2 - half, side / 2 + half


def read_rgb(path: Path, pp: Preprocess, blob: bytes | None = None, max_pixels: int | None = None,
             target: framing.Target = framing.GZ2, pixel_scale: float | None = None) -> Image.Image:
    """The image in mode RGB, framed to `target` (a checkpoint's, `checkpoint.framing_of`), with
    what was applied in its `info["framing"]` (a `framing.Applied`): the one place every image is
    framed, a folder's as a single file. FITS files are framed by `framing.frame_cutout` (rescaled
    so that the galaxy is as large as in the model's training pictures) and rendered by
    `fits.render` (as Galaxy Zoo DECaLS rendered g, r, z); a JPEG or PNG by `framing.frame_picture`
    when its `pixel_scale` (″/px) is given (from its full pixels), else cropped as it is. JPEGs are
    decoded by libjpeg-turbo (`_jpeg`), other formats, and JPEGs simplejpeg refuses, by Pillow
    (`_rgb`). An image of more than `max_pixels` (default `MAX_PIXELS`) is refused from its header,
    before it is decoded. `blob`: the file's bytes when they are already in memory (an upload; `path`
    then only names it)."""
    limit = max_pixels or MAX_PIXELS
    if path.name.lower().endswith(fits.SUFFIXES):
        try:
            framed, applied = framing.frame_cutout(fits.read(path, max_pixels=limit, blob=blob), target)
        except fits.FitsError as e:  # its message names the file
            raise DataError(str(e)) from e
        if pixel_scale and applied.pixel_scale is None:
            applied = replace(applied, note="; ".join(filter(None, (
                applied.note, "--pixel-scale is for JPEG and PNG files: a FITS gives its own in its WCS"))))
        image = Image.fromarray(fits.render(framed))
    else:
        image = _picture(path, pp, blob, limit, whole=bool(pixel_scale))
        framed, applied = framing.frame_picture(image, pixel_scale, target)
        if applied.established:
            image = Image.fromarray(framed)
    image.info["framing"] = applied
    return image


def _picture(path: Path, pp: Preprocess, blob: bytes | None, limit: int, whole: bool) -> Image.Image:
    """A JPEG or PNG (or another format Pillow reads) in mode RGB; `whole`: all its pixels (else a
    JPEG may be decoded at 1/2 or less, `_jpeg`)."""
    try:
        blob = path.read_bytes() if blob is None else blob
        if not blob:
            raise DataError(f"{path}: empty file (0 bytes)")
        image = _jpeg(path, blob, pp, limit) if blob[:3] == b"\xff\xd8\xff" and not whole else None
        if image is None:
            with Image.open(io.BytesIO(blob)) as img:  # reads the header only
                _check_size(path, *img.size, limit)
                image = _rgb(img)
        return image
    except DataError:
        raise
    except Image.DecompressionBombError as e:  # Image.open refuses twice its own limit
        raise DataError(f"{path}: more than the {limit:,} pixels that gzcore decodes ({e})") from e
    except UnidentifiedImageError as e:  # its message names a BytesIO
        raise DataError(f"{path}: cannot decode image (not a JPEG, PNG or other format Pillow reads)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from e


def _check_size(path: Path, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise DataError(f"{path}: {width}x{height} pixels, more than the {limit:,} that gzcore "
                        f"decodes (a decompression bomb, or a mosaic to cut into cutouts first)")


def _jpeg(path: Path, blob: bytes, pp: Preprocess, limit: int) -> Image.Image | None:
    """A JPEG decoded by simplejpeg at the smallest DCT scale (k/8 of full size) that still gives
    the crop `pp.size` pixels, which skips most of the work of a full decode; None for one it
    refuses (CMYK, lossless, broken: Pillow decodes it or says what is wrong)."""
    try:
        width, height, _, _ = simplejpeg.decode_jpeg_header(blob)
    except ValueError:
        return None
    _check_size(path, width, height, limit)
    short = min(width, height)
    if short < 1:
        return None
    side = math.ceil(pp.size * 424 / pp.crop_px)  # wanted size of the short side
    try:
        return Image.fromarray(simplejpeg.decode_jpeg(blob, "RGB", min_width=math.ceil(side * width / short),
                                                      min_height=math.ceil(side * height / short)))
    except ValueError:
        return None


def _rgb(image: Image.Image) -> Image.Image:
    """A Pillow image in mode RGB: 16-bit grey scaled to 8 bits (`convert` would clip it to white),
    transparent pixels black, the sky (`convert` would keep the colour under them)."""
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    if image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA"))
    return image.convert("RGB")


def decode(path: Path, pp: Preprocess, target: framing.Target = framing.GZ2) -> np.ndarray:
    """One image file -> uint8 crop (size, size, channels), framed to `target` (`read_rgb`)."""
    return crop_of(read_rgb(path, pp, target=target), pp)


STRETCH = 4      # a crop enlarged more than this from the image's pixels is "tiny" (warned of)
ELONGATED = 2    # an image longer than this many times its width: most of it is cut away (warned of)


def distortion(size: tuple[int, int], pp: Preprocess) -> str | None:
    """How `crop_of` changes an image of `size` (width, height, as `read_rgb` gives it) beyond the
    usual crop, or None: a tiny image's few pixels enlarged more than `STRETCH` times (a 424 px
    Galaxy Zoo cutout is reduced), or a strip whose central square alone is kept."""
    w, h = size
    short, long = min(w, h), max(w, h)
    if short < 1:
        return None
    box = pp.crop_px * short / 424  # the crop's side in the image's pixels (the smallest ROI box)
    if pp.size > STRETCH * box:
        return f"{w}x{h} px: its crop enlarged {pp.size / box:.0f}x"
    if long > ELONGATED * short:
        return f"{long / short:.1f} times longer than wide: only its central square is used"
    return None


def stretched_warning(notes: list[str]) -> str:
    """The one warning for every image `distortion` noted (notes: 'PATH (how)'), of a folder or of
    one image."""
    return (f"{len(notes)} image(s) too small or too elongated for the crop, read anyway (tiny ones "
            f"stretched, long ones cut to their central square): {listed(notes)}; their answers are "
            f"less reliable")


def unframed_warning(notes: list[str]) -> str:
    """The one warning for every image of a folder whose framing is in doubt (notes: 'PATH (why)',
    `framing.Applied.doubt`)."""
    return (f"{len(notes)} image(s) not surely framed as the model's training pictures were: "
            f"{listed(notes, 3)}; their answers may be those of another picture")


def _central_square(image: Image.Image) -> Image.Image:
    w, h = image.size
    side = min(h, w)  # non-square: take the central square
    if w == h:
        return image
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def crop_box(image: Image.Image, pp: Preprocess) -> tuple[float, float]:
    """(low, high) edge, in pixels of the image's central square, of the square `crop_of` cuts:
    the same on both axes, since every box is centred."""
    image = _central_square(image)
    crop = pp.crop_px * image.width / 424
    if pp.crop == "roi":
        return _roi_box(image, crop, pp.roi_pad)
    if pp.crop == "centre":
        return image.width / 2 - crop / 2, image.width / 2 + crop / 2
    raise ValueError(f"unknown crop mode {pp.crop!r}; use 'centre' or 'roi'")


def crop_of(image: Image.Image, pp: Preprocess, box: tuple[float, float] | None = None) -> np.ndarray:
    """An RGB image (`read_rgb`) -> uint8 crop (size, size, channels). `box`: `crop_box`'s edges when
    already known (e.g. another image's, to cut a map of it at the same place)."""
    lo, hi = crop_box(image, pp) if box is None else box
    image = _central_square(image)
    side = image.width
    # resample only the box and the 2 px the bilinear filter reaches beyond it
    first, last = max(0, math.floor(lo) - 2), min(side, math.ceil(hi) + 2)
    box = (lo - first, lo - first, hi - first, hi - first)
    out = image.crop((first, first, last, last)).resize((pp.size, pp.size), Image.BILINEAR, box=box,
                                                        reducing_gap=None)
    if pp.grayscale:
        out = out.convert("L")
    arr = np.asarray(out, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


# ---------------------------------------------------------------- the cache

def default_cache_dir() -> Path:
    return Path(os.environ.get("GZ_CACHE", Path.home() / ".cache" / "gzcore"))


def fingerprint(galaxies: GalaxySet, pp: Preprocess, target: framing.Target = framing.GZ2,
                pixel_scale: float | None = None) -> str:
    """Hash of the image files (name, size, mtime), the preprocessing and the framing (`read_rgb`'s
    `target` and `pixel_scale`): the cache key, also stored in checkpoints as the data fingerprint."""
    h = hashlib.sha1(json.dumps([CACHE_VERSION, asdict(pp)]).encode())
    if any(p.name.lower().endswith(fits.SUFFIXES) for p in galaxies.paths):  # JPEG caches keep their key
        h.update(f"fits rendering {FITS_RENDERING}\n".encode())
    if target != framing.GZ2 or pixel_scale:  # Galaxy Zoo 2's framing, pictures as given: keys as before
        h.update(json.dumps(["framing", target.to_dict(), pixel_scale]).encode())
    for p in galaxies.paths:
        try:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:  # gone since listed, or a dangling link: decoding names it (or skips it)
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:16]


def decode_chunk(args) -> tuple:
    """(crops, with None for images skipped; reasons) of (paths, Preprocess, skip_bad[, noting,
    target, pixel_scale]): one job of a process pool, each image framed by `read_rgb` (to `target`,
    JPEGs and PNGs at `pixel_scale`). With `noting`, (crops, reasons, notes, unframed): 'PATH (how)'
    for each image `distortion` finds stretched or cut, 'PATH (why)' for each whose framing is in
    doubt (`framing.Applied.doubt`)."""
    paths, pp, skip_bad, *given = args
    noting, target, pixel_scale = (*given, *(False, framing.GZ2, None)[len(given):])
    out, bad, notes, unframed = [], [], [], []
    for p in paths:
        try:
            image = read_rgb(p, pp, target=target, pixel_scale=pixel_scale)
            odd, doubt = distortion(image.size, pp), image.info["framing"].doubt()
            if odd:
                notes.append(f"{p} ({odd})")
            if doubt:
                unframed.append(f"{p} ({doubt})")
            out.append(crop_of(image, pp))
        except DataError as e:
            if not skip_bad:
                raise
            bad.append(str(e))
            out.append(None)
    return (out, bad, notes, unframed) if noting else (out, bad)


PART = 256  # galaxies per part file of a cache being built: what a killed build keeps, what ranks share


def load_crops(galaxies: GalaxySet, pp: Preprocess = Preprocess(), cache_dir: Path | None = None,
               workers: int | None = None, skip_bad: bool = False, progress=None,
               share: tuple[int, int] = (0, 1), target: framing.Target = framing.GZ2,
               pixel_scale: float | None = None) -> tuple[np.ndarray, GalaxySet]:
    """Decoded crops of every galaxy, (N, size, size, C) uint8, memory-mapped from the cache.

    A missing cache is built from part files of `PART` crops, each written whole or not at all, so
    that a killed build resumes where it stopped. Processes building the same cache together (the
    ranks of a torchrun job) pass `share=(rank, world)`: each starts on its own parts, then helps
    with the others, and one of them assembles the cache. With `skip_bad`, undecodable images are
    dropped: the returned GalaxySet is the matching subset and lists them in `.skipped`; without,
    the first of them raises DataError, even when the cache was built with `skip_bad`. Images too
    small or too elongated for the crop (`distortion`) are named in one `InputWarning`, at every
    load (the cache keeps them), and so are images whose framing is in doubt (in another): each is
    framed to `target` by `read_rgb`, JPEGs and PNGs at `pixel_scale` when given. The returned
    GalaxySet's `.warned` holds those warnings, for a page to show."""
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    key, shape = fingerprint(galaxies, pp, target, pixel_scale), (pp.size, pp.size, pp.channels)
    atomic.remove_stale(cache_dir, key)
    found, parts = _cached(cache_dir, key, len(galaxies), shape), cache_dir / f"{key}.parts"
    while found is None:  # a round that finds a damaged part decodes it again in the next
        _build_parts(galaxies, (pp, skip_bad, True, target, pixel_scale), parts, workers, progress, share)
        with _locked(cache_dir / ".lock"):  # one process assembles, the others then find it done
            found = _cached(cache_dir, key, len(galaxies), shape) or _assemble(parts, cache_dir, key,
                                                                              len(galaxies), shape)
    crops, bad, odd, unframed = found
    warned = [stretched_warning(odd)] * bool(odd) + [unframed_warning(unframed)] * bool(unframed)
    for message in warned:
        warn(message)
    if bad and not skip_bad:
        raise DataError(bad[0][1])  # the decoding error, as an uncached call raises it
    keep = np.ones(len(galaxies), bool)
    keep[[i for i, _ in bad]] = False
    kept = galaxies.subset(np.flatnonzero(keep))
    kept.skipped += [reason for _, reason in bad]
    kept.warned += warned
    return crops, kept


def _cached(cache_dir: Path, key: str, n: int, shape: tuple) -> tuple[np.ndarray, list, list, list] | None:
    """(crops memory-mapped, [(index, reason)] of the images skipped, the `distortion` notes, the
    framing doubts) of the finished cache `key` of `n` galaxies, or None when it is missing, half
    written or damaged (a build replaces it)."""
    try:
        info = json.loads((cache_dir / f"{key}.json").read_text())
        bad = [(int(i), str(reason)) for i, reason in info["bad"]]
        odd = [str(note) for note in info.get("odd", [])]  # caches written before it: none
        unframed = [str(note) for note in info.get("unframed", [])]  # as `odd`
        crops = np.load(cache_dir / f"{key}.npy", mmap_mode="r")
    except (OSError, EOFError, ValueError, KeyError, TypeError):  # JSON and .npy errors included
        return None
    kept = n - len({i for i, _ in bad if 0 <= i < n})
    return (crops, bad, odd, unframed) if info.get("key") == key and crops.shape == (kept, *shape) else None


def _build_parts(galaxies: GalaxySet, job: tuple, parts: Path, workers: int | None, progress,
                 share: tuple[int, int]) -> None:
    """Decode the parts not yet in `parts/` (part k: galaxies k * PART onwards) in a process pool,
    `job` the rest of each `decode_chunk` job (Preprocess, skip_bad, True, target, pixel_scale):
    this process's share first (every share[1]-th part from share[0]), then the others still
    missing, last first, so that processes sharing the work meet rather than repeat each other."""
    pp = job[0]
    n, count = len(galaxies), math.ceil(len(galaxies) / PART)
    parts.mkdir(exist_ok=True)
    atomic.remove_stale(parts, "")
    mine = list(range(share[0], count, share[1]))
    missing = [k for k in mine + sorted(set(range(count)) - set(mine), reverse=True)
               if not (parts / f"{k:06d}.npz").is_file()]
    done = n - sum(len(galaxies.paths[k * PART:(k + 1) * PART]) for k in missing)
    todo = (k for k in missing if not (parts / f"{k:06d}.npz").is_file())  # others may have made it
    workers = workers or min(os.cpu_count() or 1, 8)
    pool = ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))
    running: dict = {}
    try:
        while True:
            while len(running) < 2 * workers and (k := next(todo, None)) is not None:
                running[pool.submit(decode_chunk, (galaxies.paths[k * PART:(k + 1) * PART], *job))] = k
            if not running:
                break
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                k = running.pop(future)
                crops, bad, odd, unframed = future.result()
                keep = np.array([c is not None for c in crops])
                kept = np.stack([c for c in crops if c is not None]) if keep.any() else np.zeros(
                    (0, pp.size, pp.size, pp.channels), np.uint8)
                try:
                    _write_whole(parts / f"{k:06d}.npz",
                                 lambda f: np.savez(f, crops=kept, keep=keep, bad=np.array(bad, str),
                                                    odd=np.array(odd, str), unframed=np.array(unframed, str)),
                                 make_folder=False)
                except FileNotFoundError:  # the folder is gone: another process finished the cache
                    return
                done += len(crops)
                if progress:
                    progress(min(done, n), n)
    finally:
        pool.shutdown(cancel_futures=True)  # on an error or Ctrl-C: no job left, no worker left


def _assemble(parts: Path, cache_dir: Path, key: str, n: int, shape: tuple) -> tuple | None:
    """Write the cache `key` from its parts: the kept crops as one .npy, then the index (.json) that
    makes it valid, then drop the parts; return it as `_cached` does. A damaged part is deleted
    instead (None: the next round of `load_crops` decodes it again) and nothing is written."""
    files = [parts / f"{k:06d}.npz" for k in range(math.ceil(n / PART))]
    try:
        keeps, bad, odd, unframed = [], [], [], []
        for k, path in enumerate(files):
            keep, reasons = _member(path, "keep"), _member(path, "bad").tolist()
            if len(keep) != min(PART, n - k * PART) or len(reasons) != len(keep) - keep.sum():
                raise _Damaged(path)
            keeps.append(keep)
            bad += zip((k * PART + np.flatnonzero(~keep)).tolist(), reasons)
            odd += _member(path, "odd").tolist()
            unframed += _member(path, "unframed").tolist()

        def write(f):
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": (n - len(bad), *shape)})
            for path, keep in zip(files, keeps):
                crops = _member(path, "crops")
                if crops.shape != (keep.sum(), *shape):
                    raise _Damaged(path)
                f.write(np.ascontiguousarray(crops))  # no copy: np.load returns C order
        npy, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
        meta.unlink(missing_ok=True)  # never an index beside another .npy than its own
        _write_whole(npy, write)
    except _Damaged as e:
        e.args[0].unlink(missing_ok=True)
        return None
    _write_whole(meta, lambda f: f.write(json.dumps({"key": key, "bad": bad, "odd": odd,
                                                     "unframed": unframed}).encode()))
    shutil.rmtree(parts, ignore_errors=True)
    return np.load(npy, mmap_mode="r"), bad, odd, unframed


class _Damaged(Exception):
    """A part file that cannot be read back as it was written (its path): it is decoded again."""


def _member(path: Path, name: str) -> np.ndarray:
    """One array of a part file."""
    try:
        with np.load(path) as part:
            return part[name]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise _Damaged(path) from e


def _write_whole(path: Path, write, make_folder: bool = True) -> None:
    """Write `path` whole or not at all through `write(file)` (gzcore.atomic)."""
    with atomic.write(path, make_folder) as f:
        write(f)


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on `path` (created if need be) for the block; the system releases
    it if the process dies."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def die_with_parent(parent: int) -> None:
    """A worker's start (a decode pool's, a training run's): end with `parent`, the process that
    started it, even one killed by SIGKILL (Linux; elsewhere a worker may outlive such a kill)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)
