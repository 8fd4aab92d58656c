"""An image a user brings (the dashboard's "Your galaxy" page, `gz predict --data IMAGE`): its bytes
checked, then decoded and cropped exactly as gzcore.data decodes and crops a file of that name in a
folder.

Before anything is decoded, a file is refused, with a DataError naming it, when it has
- more bytes than `Limits.bytes`;
- a name that is no image's (.jpg, .jpeg, .png, .fits, .fits.gz …), or content that is no JPEG, PNG
  or FITS (plain or gzipped) whatever its name, or FITS content under a picture's name (or the
  reverse): the pipeline reads a file as FITS by its name;
- more pixels than `Limits.pixels`, read from its header (data.read_rgb's check).
A public demo (gzcore.dashboard.access.public) has stricter limits than a local tool.

Framing (gzcore.framing, by data.read_rgb as a folder's files): a FITS cutout is rescaled so that
its galaxy is as large as in the model's training pictures (from its measured size; the pixel scale
from its WCS), then rendered; a JPEG or PNG is framed the same way when its pixel scale is given,
else cropped as it is (a Galaxy Zoo 2 cutout's crop stays byte for byte the one its folder gives)
with a warning. `Upload.framing` says what was applied, the crop box included; `Upload.stretched`
warns of an image too small or too elongated for the crop, as a folder's warning does.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import data, fits, framing

MB = 2 ** 20  # Streamlit's megabyte (server.maxUploadSize counts these)
# what a file's first bytes are, by kind
MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",), "FITS": (b"SIMPLE  =", b"\x1f\x8b")}


@dataclass(frozen=True)
class Limits:
    bytes: int   # the largest file accepted
    pixels: int  # the most pixels (width x height, per band) accepted, read from the header


# A local tool: Streamlit's own default upload cap (.streamlit/config.toml says the same), which
# holds a 40 Mpx JPEG or PNG photo and a 3-band float32 FITS cube of 16 Mpx; the pipeline's pixel cap.
LOCAL = Limits(200 * MB, data.MAX_PIXELS)
# A public demo: a Galaxy Zoo JPEG is ~20 KB and a DECaLS FITS cutout (3 x 424 x 424 float32) 2 MB;
# 16 Mpx (a 4000 px square) costs up to ~0.12 GB to decode, 40% of a 40 Mpx image (data.MAX_PIXELS).
PUBLIC = Limits(10 * MB, 16_000_000)
PICTURE = 1024  # the largest side of the picture an Upload keeps to show


def limits(public: bool) -> Limits:
    return PUBLIC if public else LOCAL


@dataclass(frozen=True)
class Upload:
    name: str
    picture: np.ndarray  # uint8 (H, W, 3): the whole image as the pipeline decodes it (FITS rendered),
    #                      framed (`framing`), at most PICTURE px a side
    crop: np.ndarray     # uint8 (size, size, channels): what the model's input is cut from
    framing: framing.Applied | None = None  # what was done to frame it, and the crop box (in `picture`'s
    #                                         pixels before the thumbnail: `scale` converts)
    scale: float = 1.0   # picture pixels per pixel of the framed image (< 1 when the thumbnail shrank it)
    distortion: str | None = None  # how the crop stretches or cuts it beyond the usual (`data.distortion`)

    def stretched(self) -> str | None:
        """The warning a folder gives for such an image (`data.stretched_warning`), or None."""
        return self.distortion and data.stretched_warning([f"{self.name} ({self.distortion})"])


def kind(blob: bytes, name: str) -> str:
    """The kind of image the content is ("JPEG", "PNG" or "FITS"), or DataError naming the file."""
    if data.image_stem(Path(name)) is None:
        raise data.DataError(f"{name}: not an image file name: expected .jpg, .jpeg, .png or "
                             f"{', '.join(fits.SUFFIXES)}")
    found = next((k for k, starts in MAGIC.items() if blob.startswith(starts)), None)
    if found is None:
        raise data.DataError(f"{name}: not a JPEG, PNG or FITS image, whatever its name says "
                             f"({'empty' if not blob else 'it begins with ' + repr(blob[:8])})")
    if (found == "FITS") != name.lower().endswith(fits.SUFFIXES):
        raise data.DataError(f"{name}: a {found} file under a {'picture' if found == 'FITS' else 'FITS'} "
                             f"file's name: rename it (.fits for FITS, .jpg or .png for pictures)")
    return found


def read_bytes(blob: bytes, name: str, pp: data.Preprocess, public: bool = False,
               pixel_scale: float | None = None, target: framing.Target = framing.GZ2) -> Upload:
    """An uploaded file's bytes -> its picture and the crop gzcore.data makes of a file `name`
    (`name` names it in every message), within `limits(public)`, framed to `target` (the
    checkpoint's, `checkpoint.framing_of`): a FITS by its WCS and its galaxy's measured size, a JPEG
    or PNG only with its `pixel_scale` (arcsec per pixel of the file as given); a tiny or elongated
    image's `distortion` noted as a folder's are."""
    cap = limits(public)
    _check_bytes(len(blob), name, cap)
    kind(blob, name)
    if pixel_scale is not None and not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise data.DataError(f"{name}: pixel scale {pixel_scale!r}: give arcseconds per pixel, above 0")
    image = data.read_rgb(Path(name), pp, blob=blob, max_pixels=cap.pixels, target=target,
                          pixel_scale=pixel_scale)
    box = data.crop_box(image, pp)
    crop = data.crop_of(image, pp, box)
    side, odd = image.width, data.distortion(image.size, pp)
    image.thumbnail((PICTURE, PICTURE))
    return Upload(name, np.asarray(image), crop, replace(image.info["framing"], box=box), image.width / side, odd)


def read(path, pp: data.Preprocess, public: bool = False, pixel_scale: float | None = None,
         target: framing.Target = framing.GZ2) -> Upload:
    """One image file, as `read_bytes` takes it (its size checked before it is read)."""
    path = Path(path)
    _check_bytes(path.stat().st_size, path, limits(public))
    return read_bytes(path.read_bytes(), str(path), pp, public, pixel_scale, target)


def with_box(upload: Upload, colour=(255, 214, 0)) -> np.ndarray:
    """The upload's picture with its crop box drawn (what the model's input is cut from)."""
    picture = Image.fromarray(upload.picture)
    if upload.framing is not None and upload.framing.box is not None:
        from PIL import ImageDraw

        lo, hi = (v * upload.scale for v in upload.framing.box)
        offset_x = (picture.width - picture.height) / 2 if picture.width > picture.height else 0
        offset_y = (picture.height - picture.width) / 2 if picture.height > picture.width else 0
        width = max(1, round(picture.width / 212))
        ImageDraw.Draw(picture).rectangle((offset_x + lo, offset_y + lo, offset_x + hi, offset_y + hi),
                                          outline=colour, width=width)
    return np.asarray(picture)


def _check_bytes(size: int, name, cap: Limits) -> None:
    if size > cap.bytes:
        raise data.DataError(f"{name}: {size / MB:.1f} MB ({size:,} bytes), more than the {cap.bytes // MB} MB "
                             f"accepted here")


def known_galaxy(crop: np.ndarray, crops: np.ndarray, ids, chunk: int = 4096) -> int | None:
    """The id of the loaded galaxy whose crop is `crop` byte for byte (the same pixels after
    decoding, cropped as the data's are: an upload of one of its images), else None.

    `crops` (N, s, s, C) uint8, the data's crop cache (memory-mapped: read a chunk at a time); `ids`
    their GalaxyIDs. The centre row of each crop is compared first, whole crops only where it
    matches. Of identical crops (a duplicated image) the first is named."""
    crop = np.asarray(crop)
    if crop.shape != tuple(crops.shape[1:]) or crop.dtype != crops.dtype:
        return None  # another preprocessing: not comparable
    middle = crop.shape[0] // 2
    for start in range(0, len(crops), chunk):
        rows = crops[start:start + chunk, middle]  # (n, s, C): one row of pixels each
        for k in np.flatnonzero((rows == crop[middle]).all(axis=(1, 2))):
            if np.array_equal(crops[start + k], crop):
                return int(ids[start + k])
    return None
