"""Bad input (issue 17): broken or unusual images, FITS files, labels CSVs and folders. Each case
either works as documented or raises data.DataError naming the file or the row; with skip_bad, an
image that cannot be used is skipped and listed. docs/RELIABILITY.md tabulates the cases."""
import io
import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gzcore import data, fits, targets

PP = data.Preprocess(size=32)


def _png(width, height, depth=8, colour=2, rows=b"") -> bytes:
    """A PNG written by hand (RFC 2083): `rows` is the filtered pixel data; the default, none, makes
    a file that only declares its size."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def _jpeg_declaring(width, height) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims another size."""
    blob = bytearray(_encoded(Image.new("RGB", (8, 8), (40, 40, 40)), "JPEG"))
    sof = blob.find(b"\xff\xc0")
    blob[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(blob)


def _sky(width, height) -> np.ndarray:
    """uint8 RGB (height, width, 3): a bright blob on dark noise."""
    y, x = np.mgrid[:height, :width]
    blob = 200 * np.exp(-((x - width / 2) ** 2 + (y - height / 2) ** 2) / (0.02 * width * height + 1))
    noise = np.random.default_rng(0).normal(20, 4, (height, width, 3))
    return np.clip(blob[..., None] + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- images that decode

def _rgba_transparent_white():
    pixels = np.full((40, 40, 4), 255, np.uint8)
    pixels[..., 3] = 0  # nothing there: the sky
    return Image.fromarray(pixels)


def _palette_with_transparency():
    image = Image.new("P", (40, 40), 1)
    image.putpalette([255, 255, 255, 200, 50, 10] + [0] * 762)
    image.info["transparency"] = 1
    return image


def _grey16():
    return Image.fromarray(np.full((40, 40), 0x8000, np.uint16))  # mode I;16


# name -> (file name, its bytes, the value every pixel of the crop must have, or None: any)
UNUSUAL = {
    "grey PNG": ("g.png", lambda: _encoded(Image.fromarray(_sky(60, 60)[..., 0]), "PNG"), None),
    "16-bit grey PNG (I;16)": ("i16.png", lambda: _encoded(_grey16(), "PNG"), (128, 128, 128)),
    "16-bit RGB PNG": ("rgb16.png", lambda: _png(40, 40, 16, 2, (b"\0" + b"\x80\x00" * 120) * 40),
                       (128, 128, 128)),
    "RGBA PNG, transparent": ("rgba.png", lambda: _encoded(_rgba_transparent_white(), "PNG"), (0, 0, 0)),
    "grey+alpha PNG (LA)": ("la.png", lambda: _encoded(Image.new("LA", (40, 40), (255, 0)), "PNG"),
                            (0, 0, 0)),
    "palette PNG": ("p.png", lambda: _encoded(Image.new("RGB", (40, 40), (200, 50, 10)).convert(
        "P", palette=Image.ADAPTIVE), "PNG"), (200, 50, 10)),
    "palette PNG, transparent colour": ("pt.png", lambda: _encoded(_palette_with_transparency(), "PNG"),
                                        (0, 0, 0)),
    "1-bit PNG": ("b.png", lambda: _encoded(Image.new("1", (40, 40), 1), "PNG"), (255, 255, 255)),
    "1x1 JPEG": ("1.jpg", lambda: _encoded(Image.new("RGB", (1, 1), (90, 90, 90)), "JPEG"), None),
    "1x1 PNG": ("1.png", lambda: _encoded(Image.new("RGB", (1, 1), (90, 90, 90)), "PNG"), (90, 90, 90)),
    "3x500 JPEG": ("3.jpg", lambda: _encoded(Image.fromarray(_sky(3, 500)), "JPEG"), None),
    "500x3 PNG": ("5.png", lambda: _encoded(Image.fromarray(_sky(500, 3)), "PNG"), None),
    "424x423 JPEG": ("4.jpg", lambda: _encoded(Image.fromarray(_sky(424, 423)), "JPEG"), None),
    "5000x5000 JPEG": ("big.jpg", lambda: _encoded(Image.fromarray(_sky(5000, 5000)), "JPEG"), None),
    "GIF under a .png name": ("gif.png", lambda: _encoded(Image.fromarray(_sky(50, 50)), "GIF"), None),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "5000x5000 JPEG" else c
                                  for c in UNUSUAL])  # drawing 25 Mpx of noise takes seconds
@pytest.mark.parametrize("crop", ["centre", "roi"])
def test_unusual_images_decode(tmp_path, case, crop):
    """Modes and sizes Pillow or simplejpeg read: a crop in RGB. 16-bit pixels are scaled to 8 bits
    (not clipped to white); transparent pixels are the sky, black (not the colour under them)."""
    name, blob, value = UNUSUAL[case]
    path = tmp_path / name
    path.write_bytes(blob())
    crop = data.decode(path, data.Preprocess(crop=crop, size=32))
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    if value is not None:
        np.testing.assert_allclose(crop.reshape(-1, 3), np.broadcast_to(value, (32 * 32, 3)), atol=1)


def test_grey_images_decode_grey(tmp_path):
    for name, fmt in (("g.jpg", "JPEG"), ("g.png", "PNG")):
        (tmp_path / name).write_bytes(_encoded(Image.fromarray(_sky(80, 80)[..., 1]), fmt))
        crop = data.decode(tmp_path / name, PP)
        assert (crop == crop[..., :1]).all()


# ---------------------------------------------------------------- images that do not

LIMIT = "more than the 40,000,000"  # data.MAX_PIXELS
# name -> (file name, how to make it, what the message says beside the file's name)
BAD = {
    "zero bytes": ("1.jpg", lambda p: p.write_bytes(b""), "empty file"),
    "text, .jpg": ("2.jpg", lambda p: p.write_text("GalaxyID,Class1.1\n"), "not a JPEG, PNG or other"),
    "text, .png": ("3.png", lambda p: p.write_text("hello"), "cannot decode"),
    "JPEG start, then junk": ("4.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8),
                              "cannot decode"),
    "truncated PNG": ("5.png", lambda p: p.write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG")[:300]),
                      "cannot decode"),
    "PNG with a bad checksum": ("6.png", lambda p: p.write_bytes(
        _encoded(Image.fromarray(_sky(64, 64)), "PNG").replace(b"IDAT", b"IDAT\0", 1)), "cannot decode"),
    "a folder named 7.jpg": ("7.jpg", lambda p: p.mkdir(), "cannot decode"),
    "JPEG declaring 0x0": ("12.jpg", lambda p: p.write_bytes(_jpeg_declaring(0, 0)), "cannot decode"),
    "PNG declaring 30000x30000": ("8.png", lambda p: p.write_bytes(_png(30000, 30000)), f"{LIMIT} pixels"),
    "PNG declaring 10000x10000": ("9.png", lambda p: p.write_bytes(_png(10000, 10000)),
                                  f"10000x10000 pixels, {LIMIT}"),
    "JPEG declaring 30000x30000": ("10.jpg", lambda p: p.write_bytes(_jpeg_declaring(30000, 30000)),
                                   f"30000x30000 pixels, {LIMIT}"),
    "JPEG declaring 10000x10000": ("11.jpg", lambda p: p.write_bytes(_jpeg_declaring(10000, 10000)),
                                   f"10000x10000 pixels, {LIMIT}"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_images_are_named_or_skipped(tmp_path, case):
    """Without skip_bad an error naming the file; with it, a skipped image and the reason listed
    (`decode_chunk` is what each decoding worker runs)."""
    name, make, message = BAD[case]
    good, bad = tmp_path / "100.png", tmp_path / name
    good.write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG"))
    make(bad)
    with pytest.raises(data.DataError, match=rf"{re.escape(str(bad))}: .*{message}"):
        data.decode(bad, PP)
    with pytest.raises(data.DataError, match=re.escape(str(bad))):
        data.decode_chunk(([good, bad], PP, False))
    crops, reasons = data.decode_chunk(([good, bad], PP, True))
    assert crops[0].shape == (32, 32, 3) and crops[1] is None
    assert len(reasons) == 1 and str(bad) in reasons[0] and message in reasons[0]


def test_a_decompression_bomb_is_skipped_and_listed_by_load_crops(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "1.png").write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG"))
    (folder / "2.png").write_bytes(_png(30000, 30000))
    galaxies = data.images_of(folder)
    with pytest.raises(data.DataError, match=rf"2\.png: {LIMIT} pixels"):
        data.load_crops(galaxies, PP, cache_dir=tmp_path / "c", workers=1)
    crops, kept = data.load_crops(galaxies, PP, cache_dir=tmp_path / "c", workers=1, skip_bad=True)
    assert len(crops) == 1 and list(kept.ids) == [1] and "2.png: more than" in kept.skipped[0]


def test_an_image_gone_since_listed_or_a_dangling_link_is_named_or_skipped(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "1.png").write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG"))
    (folder / "2.png").symlink_to(tmp_path / "nowhere.png")  # a dangling link
    (folder / "3.png").write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG"))
    galaxies = data.images_of(folder)
    (folder / "3.png").unlink()  # deleted after the folder was listed
    with pytest.raises(data.DataError, match=r"2\.png: cannot decode"):
        data.load_crops(galaxies, PP, cache_dir=tmp_path / "c", workers=1)
    crops, kept = data.load_crops(galaxies, PP, cache_dir=tmp_path / "c", workers=1, skip_bad=True)
    assert list(kept.ids) == [1] and len(crops) == 1 and len(kept.skipped) == 2


@pytest.mark.parametrize("name, write", [
    ("1.png", lambda p: p.write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG"))),
    ("2.jpg", lambda p: p.write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "JPEG"))),
    ("3.fits", lambda p: fits.write(p, np.ones((3, 64, 64), np.float32), "grz")),
])
def test_the_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch, name, write):
    """Images above data.MAX_PIXELS are refused before any decoding (the header-only files of
    10000^2 above say so, not "truncated"); here with the limit lowered below a real image's size."""
    path = tmp_path / name
    write(path)
    assert data.decode(path, PP).shape == (32, 32, 3)
    monkeypatch.setattr(data, "MAX_PIXELS", 64 * 64 - 1)
    with pytest.raises(data.DataError, match=rf"{name}.*: 64x64 pixels, more than"):
        data.decode(path, PP)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode (the case of a "
                    "folder named like an image stands in for an unreadable file)")
def test_an_unreadable_image_is_named(tmp_path):
    path = tmp_path / "1.png"
    path.write_bytes(_encoded(Image.fromarray(_sky(64, 64)), "PNG"))
    path.chmod(0)
    with pytest.raises(data.DataError, match=r"1\.png: cannot decode image \(.*Permission denied"):
        data.decode(path, PP)


# ---------------------------------------------------------------- FITS (more in test_fits.py)

@pytest.mark.parametrize("pixels, bands, message", [
    (np.full((3, 16, 16), np.nan, np.float32), "grz", "every pixel is missing"),
    (np.zeros((0, 16, 16), np.float32), "", "no image in any HDU"),
    (np.zeros((3, 0, 16), np.float32), "grz", "no image in any HDU"),
])
def test_fits_without_pixels_are_named(tmp_path, pixels, bands, message):
    path = fits.write(tmp_path / "1.fits", pixels, bands)
    with pytest.raises(data.DataError, match=rf"1\.fits: {message}"):
        data.decode(path, PP)


def test_a_gzipped_fits_bomb_is_refused_before_it_is_unpacked(tmp_path):
    path = tmp_path / "1.fits.gz"
    plain = fits.write(tmp_path / "1.fits", np.ones((3, 64, 64), np.float32), "grz").read_bytes()
    path.write_bytes(zlib.compress(plain, wbits=31))
    assert fits.read(path, max_pixels=64 * 64).pixels.shape == (3, 64, 64)
    with pytest.raises(fits.FitsError, match=r"1\.fits\.gz: unpacks to more than"):
        fits.read(path, max_pixels=100)


# ---------------------------------------------------------------- folders and ids

def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(_encoded(Image.fromarray(_sky(16, 16)), "PNG"))
    return folder


@pytest.mark.parametrize("names, message", [
    (["100000.jpg", "100000.png"], r"100000\.jpg and .*100000\.png both have GalaxyID 100000"),
    (["007.fits", "7.jpg"], r"007\.fits and .*7\.jpg both have GalaxyID 7"),
])
def test_two_images_named_by_one_number_are_an_error_naming_both(tmp_path, names, message):
    """Which of them would a prediction, or a label, be for?"""
    folder = _touch(tmp_path / "f", *names)
    with pytest.raises(data.DataError, match=message):
        data.images_of(folder)
    with pytest.raises(data.DataError, match=message):
        data.unlabelled(folder, [folder / n for n in names])  # a list of images (gz predict)


@pytest.mark.parametrize("names, ids", [
    (["0.jpg", "a.jpg", "b.png"], [0, 1, 2]),                      # positions, as before
    (["1.jpg", "a.jpg", "b.png"], [1, 2, 3]),                      # a.jpg's position is 1.jpg's number
    (["a.jpg", "0.jpg", "b.png"], [1, 0, 2]),                      # a list of images, in its order
    (["100008.jpg", "b.png", "notes.png"], [100008, 1, 2]),        # a Kaggle folder: positions
    (["5.jpg", "9" * 20 + ".jpg", "².jpg"], [5, 1, 2]),            # no int64 / ASCII number: positions
])
def test_files_not_named_by_a_number_never_take_a_number_a_file_has(tmp_path, names, ids):
    assert list(data.unlabelled(tmp_path, [tmp_path / n for n in names]).ids) == ids


def _labels(path, rows):
    path.write_text("GalaxyID,Class1.1,Class1.2,Class1.3\n" + "".join(f"{r},0,0,1\n" for r in rows))


def test_an_image_without_a_row_is_left_out_of_training(tmp_path):
    folder = tmp_path / "f"
    _touch(folder / data.IMAGE_DIRS[0], "1.jpg", "2.jpg", "3.jpg", "4.jpg", "notes.png")
    _labels(folder / data.LABELS_FILE, [2, 1, 4])  # notes.png is at position 4
    g = data.open_folder(folder)
    assert list(g.ids) == [2, 1, 4] and [p.name for p in g.paths] == ["2.jpg", "1.jpg", "4.jpg"]
    assert not g.skipped


def test_a_row_never_takes_the_image_of_a_file_numbered_by_position(tmp_path):
    folder = tmp_path / "f"
    _touch(folder / data.IMAGE_DIRS[0], "0.jpg", "b.png")  # b.png is at position 1
    _labels(folder / data.LABELS_FILE, [0, 1])
    with pytest.raises(data.DataError, match=r"1 labelled galaxies have no image, e.g. .*1\.jpg"):
        data.open_folder(folder)
    g = data.open_folder(folder, skip_bad=True)
    assert list(g.ids) == [0] and "1.jpg" in g.skipped[0]


def test_a_labels_file_with_no_rows_gives_no_galaxies_rather_than_a_crash(tmp_path):
    images = data.images_of(_touch(tmp_path / "f", "1.png"))
    g = data.with_labels(images, np.zeros(0, np.int64), np.zeros((0, 37), np.float32))
    assert len(g) == 0


@pytest.mark.parametrize("make, message", [
    (lambda f: None, "not a Galaxy Zoo folder"),
    (lambda f: [(f / n).write_text("x") for n in ("a.txt", "b.csv", "c.jpgx")], "not a Galaxy Zoo folder"),
    (lambda f: (f / data.IMAGE_DIRS[1]).mkdir(), "no images"),
    (lambda f: (f / data.IMAGE_DIRS[0]).mkdir() or _labels(f / data.LABELS_FILE, [1]), "no images"),
])
def test_folders_without_images_are_named(tmp_path, make, message):
    folder = tmp_path / "f"
    folder.mkdir()
    make(folder)
    with pytest.raises(data.DataError, match=rf"{re.escape(str(folder))}.*: {message}"):
        data.open_folder(folder)


# ---------------------------------------------------------------- the labels CSVs

HEADER = "GalaxyID,Class1.1,Class1.2,Class1.3"
ROWS = "1,0.2,0.7,0.1\n2,0,0,1\n"

# name -> (the file's bytes, the error's message, or None: it reads as ids 1 and 2)
LABELS = {
    "extra columns": (b"GalaxyID,notes,Class1.1,Class1.2,Class1.3,Class1.1 spread\n"
                      b"1,x,0.2,0.7,0.1,0.05\n2,,0,0,1,0\n", None),
    "a UTF-8 BOM": (b"\xef\xbb\xbf" + f"{HEADER}\n{ROWS}".encode(), None),
    "Windows line endings": (f"{HEADER}\n{ROWS}".replace("\n", "\r\n").encode(), None),
    "BOM and Windows line endings": (b"\xef\xbb\xbf" + f"{HEADER}\n{ROWS}".replace("\n", "\r\n").encode(),
                                     None),
    "NaN, nan, NA cells: unknown": (f"{HEADER}\n1,NaN,nan,NA\n2,0,0,1\n".encode(), None),
    "class1.1": (f"GalaxyID,class1.1,Class1.2,Class1.3\n{ROWS}".encode(), r"column 'class1.1' .*'Class1.1'"),
    "'Class1.1 ' with a space": (f"GalaxyID,Class1.1 ,Class1.2,Class1.3\n{ROWS}".encode(),
                                 r"column 'Class1.1 ' .*'Class1.1'"),
    "galaxyid": (f"galaxyid,Class1.1,Class1.2,Class1.3\n{ROWS}".encode(), r"column 'galaxyid' .*'GalaxyID'"),
    "Class1.1 twice": (f"{HEADER},Class1.1\n1,0.2,0.7,0.1,0.3\n2,0,0,1,0\n".encode(),
                       "column 'Class1.1' appears 2 times"),
    "GalaxyID twice": (f"{HEADER},GalaxyID\n1,0.2,0.7,0.1,5\n2,0,0,1,6\n".encode(),
                       "column 'GalaxyID' appears 2 times"),
    "a GalaxyID twice": (f"{HEADER}\n1,0,0,1\n1,0,0,1\n".encode(), "GalaxyID 1 appears more than once"),
    "a GalaxyID 1.5": (f"{HEADER}\n1.5,0,0,1\n".encode(), r"line 2: GalaxyID '1.5' is not a number"),
    "a GalaxyID -3": (f"{HEADER}\n-3,0,0,1\n".encode(), r"line 2: GalaxyID '-3' is not a number"),
    "a GalaxyID beyond int64": (f"{HEADER}\n1,0,0,1\n{2 ** 63},0,0,1\n".encode(),
                                rf"line 3: GalaxyID '{2 ** 63}' is not a number"),
    "a negative value": (f"{HEADER}\n1,-0.5,0.5,1\n".encode(), r"line 2: GalaxyID 1: value outside \[0, 1\]"),
    "inf": (f"{HEADER}\n1,inf,0,0\n".encode(), r"line 2: GalaxyID 1: value outside \[0, 1\]"),
    "a trailing comma on each row": (f"{HEADER}\n1,0,0,1,\n2,0,0,1,\n".encode(),
                                     "Expected 4 fields in line 2, saw 5"),
    "zero bytes": (b"", "cannot be read as CSV"),
    "only the header": (f"{HEADER}\n".encode(), "no rows below its header"),
    "not text (a PNG)": (_png(4, 4, rows=b"\0" * 52), "cannot be read as CSV"),
}


@pytest.mark.parametrize("case", LABELS)
def test_labels_csvs(tmp_path, case):
    blob, message = LABELS[case]
    path = tmp_path / "labels.csv"
    path.write_bytes(blob)
    if message is None:
        ids, labels = data.read_labels(path)
        assert list(ids) == [1, 2] and labels.shape == (2, 37)
        assert np.isnan(labels[0, :3]).all() if "NaN" in case else labels[1, 2] == 1
        return
    with pytest.raises(data.DataError, match=message) as error:
        data.read_labels(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)  # the CLI's one line


def test_sdss_ids_are_read_exactly(tmp_path):
    (tmp_path / "l.csv").write_text(f"{HEADER}\n1237648720693755918,0,0,1\n")
    assert data.read_labels(tmp_path / "l.csv")[0][0] == 1237648720693755918


# name -> (the file's bytes, the error's message, or None: it reads as ids 1 and 2)
TARGETS = {
    "a UTF-8 BOM": (b"\xef\xbb\xbfobjID,oh\n1,8.5\n2,9\n", None),
    "Windows line endings": (b"objID,oh\r\n1,8.5\r\n2,9\r\n", None),
    "nan and NA cells: unknown": (b"objID,oh\n1,nan\n2,NA\n", None),
    "'oh ' with a space": (b"objID,oh \n1,8.5\n2,9\n", r"column 'oh ' .*'oh'"),
    "oh twice": (b"objID,oh,oh\n1,8.5,9\n2,9,9\n", "column 'oh' appears 2 times"),
    "an id twice": (b"objID,oh\n1,8.5\n1,9\n", "id 1 appears more than once"),
    "an id beyond int64": (f"objID,oh\n{2 ** 64},8.5\n".encode(),
                           rf"line 2: id '{2 ** 64}' is not an integer"),
    "a trailing comma on each row": (b"objID,oh\n1,8.5,\n2,9,\n", "Expected 2 fields in line 2, saw 3"),
    "zero bytes": (b"", "cannot be read as CSV"),
    "only the header": (b"objID,oh\n", "no rows below its header"),
    "not text (a PNG)": (_png(4, 4, rows=b"\0" * 52), "cannot be read as CSV"),
}


@pytest.mark.parametrize("case", TARGETS)
def test_target_csvs(tmp_path, case):
    blob, message = TARGETS[case]
    path = tmp_path / "targets.csv"
    path.write_bytes(blob)
    if message is None:
        ids, values, task = targets.read(path, ["oh"])
        assert list(ids) == [1, 2] and task.columns == ("oh",)
        return
    with pytest.raises(data.DataError, match=message) as error:
        targets.read(path, ["oh"])
    assert str(path) in str(error.value) and "\n" not in str(error.value)
