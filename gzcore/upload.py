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
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data, fits

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
    #                      at most PICTURE px a side
    crop: np.ndarray     # uint8 (size, size, channels): what the model's input is cut from


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


def read_bytes(blob: bytes, name: str, pp: data.Preprocess, public: bool = False) -> Upload:
    """An uploaded file's bytes -> its picture and the crop gzcore.data makes of a file `name`
    (`name` names it in every message), within `limits(public)`."""
    cap = limits(public)
    _check_bytes(len(blob), name, cap)
    kind(blob, name)
    image = data.read_rgb(Path(name), pp, blob=blob, max_pixels=cap.pixels)
    crop = data.crop_of(image, pp)
    image.thumbnail((PICTURE, PICTURE))
    return Upload(name, np.asarray(image), crop)


def read(path, pp: data.Preprocess, public: bool = False) -> Upload:
    """One image file, as `read_bytes` takes it (its size checked before it is read)."""
    path = Path(path)
    _check_bytes(path.stat().st_size, path, limits(public))
    return read_bytes(path.read_bytes(), str(path), pp, public)


def _check_bytes(size: int, name, cap: Limits) -> None:
    if size > cap.bytes:
        raise data.DataError(f"{name}: {size / MB:.1f} MB ({size:,} bytes), more than the {cap.bytes // MB} MB "
                             f"accepted here")
