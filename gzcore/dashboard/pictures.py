"""Encoded images, once per server: a page run re-encoding the same pixels is most of what a
gallery costs. PNG data URIs for Plotly's image traces (keyed by the pixels' content) and the JPEG
bytes st.image would make of a thumbnail (keyed by its file, size and modification), each kept in
a least-recently-used store bounded by bytes; any thread may call them. `shown` is the thumbnail as
a page shows it (a caption when the file cannot be decoded)."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from gzcore import catalog, data
from gzcore.dashboard import access

MB = 1 << 20


def _bytes(value) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else len(value)


class Store:
    """A thread-safe least-recently-used map whose values (str, bytes or arrays) hold at most
    `limit` bytes."""

    def __init__(self, limit: int):
        self.limit, self.size, self.items, self.lock = limit, 0, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()  # outside the lock: two threads may both make it, the second one kept
        with self.lock:
            if key in self.items:
                self.size -= _bytes(self.items.pop(key))
            self.items[key] = value
            self.size += _bytes(value)
            while self.size > self.limit and len(self.items) > 1:
                self.size -= _bytes(self.items.popitem(last=False)[1])
        return value


# Bounds in bytes: a visitor's second look at a galaxy costs no decoding, while a busy server's
# memory stays flat (benchmarks/soak.py: at 96 + 64 + 128 MB the stores were still filling at minute 20).
_uris, _thumbs = Store(48 * MB), Store(48 * MB)  # ~150 full images as PNG; ~3,000 thumbnails as JPEG
_pixels = Store(48 * MB)  # ~90 full 424-px images, or ~600 160-px thumbnails, decoded


def _encode(pixels: np.ndarray, form: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format=form, **options)
    return buffer.getvalue()


def png_uri(pixels: np.ndarray) -> str:
    """uint8 pixels (H, W) or (H, W, 3) as a base64 PNG data URI, as Plotly's image traces take it;
    encoded once per content (hashing is ~50x cheaper than encoding)."""
    pixels = np.ascontiguousarray(pixels)
    key = (pixels.shape, str(pixels.dtype), hashlib.blake2b(pixels.data, digest_size=16).digest())
    return _uris.get(key, lambda: "data:image/png;base64," + base64.b64encode(_encode(pixels, "PNG")).decode())


def _of_file(store: Store, path: str, size: int | None, make):
    """make(path, size) once per file version and size while `store` has room; a file that is gone
    is made again (catalog.image then says so, as it always has)."""
    try:
        stat = os.stat(path)
    except OSError:
        return make(path, size)
    return store.get((path, stat.st_mtime_ns, stat.st_size, size), lambda: make(path, size))


def _read_only(path: str, size: int | None) -> np.ndarray:
    pixels = catalog.image(path, size)
    pixels.setflags(write=False)  # shared by every page that shows it
    return pixels


def decoded(path, size: int | None = None) -> np.ndarray:
    """catalog.image of the file at `path`, kept decoded (read-only) while the store has room: a
    bound in bytes, since one full image weighs as much as twenty thumbnails. Raises DataError as
    catalog.image does; a rewritten file is read again."""
    return _of_file(_pixels, str(path), size, _read_only)


def thumbnail(path, size: int | None = 160) -> bytes:
    """The image file at `path` (shrunk to `size` px, catalog.image) as the JPEG bytes st.image makes
    of an RGB array (quality 100: the same picture, encoded once per server). Raises DataError as
    catalog.image does; a rewritten file is read again."""
    return _of_file(_thumbs, str(path), size, lambda p, n: _encode(catalog.image(p, n), "JPEG", quality=100))


def jpeg_uri(path, size: int | None = 160) -> str:
    """`thumbnail` as a data URI, for pictures inside st.html."""
    return "data:image/jpeg;base64," + base64.b64encode(thumbnail(path, size)).decode()


def shown(path, size: int | None = 160) -> bytes | None:
    """`thumbnail` for st.image, or None with a caption when the file cannot be decoded (as
    state.picture does for pixels)."""
    try:
        return thumbnail(path, size)
    except data.DataError as e:
        import streamlit as st  # the stores above need none: charts (no Streamlit) uses png_uri
        st.caption(f":red[{access.shown(str(e))}]")
        return None
