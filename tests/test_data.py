import shutil

import numpy as np
import pytest
from PIL import Image

from gzcore import data, tree


def _copy_folder(src, dst, n=None):
    """A writable copy of a Kaggle-layout folder (optionally the first n labelled rows)."""
    (dst / data.IMAGE_DIRS[0]).mkdir(parents=True)
    lines = (src / data.LABELS_FILE).read_text().splitlines()
    lines = lines[: (n + 1) if n else None]
    (dst / data.LABELS_FILE).write_text("\n".join(lines) + "\n")
    for line in lines[1:]:
        gid = line.split(",")[0]
        shutil.copy(src / data.IMAGE_DIRS[0] / f"{gid}.jpg", dst / data.IMAGE_DIRS[0] / f"{gid}.jpg")
    return dst


def test_open_folder_reads_labels_and_images(synth_dir):
    g = data.open_folder(synth_dir)
    assert len(g) == 48 and g.labels.shape == (48, 37) and all(p.is_file() for p in g.paths)


def test_split_is_seeded_and_stable_per_galaxy(synth_dir):
    g = data.open_folder(synth_dir)
    tr, va = data.split(g, 0.25, seed=3)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == len(g)
    tr2, va2 = data.split(g.subset(np.arange(0, 48, 2)), 0.25, seed=3)
    # a galaxy lands on the same side whatever else is in the folder
    assert set(g.ids[va]) & set(g.ids[::2]) == set(g.subset(np.arange(0, 48, 2)).ids[va2])
    assert not np.array_equal(data.split(g, 0.25, seed=4)[1], va)


def test_crops_are_cached_and_invalidated(synth_dir, tmp_path):
    g = data.open_folder(synth_dir)
    pp = data.Preprocess(size=32)
    crops, _ = data.load_crops(g, pp, cache_dir=tmp_path, workers=1)
    assert crops.shape == (48, 32, 32, 3) and crops.dtype == np.uint8
    assert isinstance(crops, np.memmap)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again, _ = data.load_crops(g, pp, cache_dir=tmp_path, workers=1)
    np.testing.assert_array_equal(again, crops)
    data.load_crops(g, data.Preprocess(size=32, grayscale=True), cache_dir=tmp_path, workers=1)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # other parameters, other cache


def test_roi_crop_fits_the_galaxy(tmp_path):
    """gz train's box: a small galaxy is magnified to the 160 px minimum, a large one kept whole."""
    yy, xx = np.mgrid[:424, :424] - 211.5
    sky = np.random.default_rng(0).normal(20, 3, (424, 424))
    box = data.Preprocess(crop="roi", crop_px=160, size=64)
    # the mask is found at 1/4 scale, where it reaches about a pixel (4 px here) beyond the disk
    for radius, box_side in ((20, 160), (120, 2 * 124 * 1.25)):
        path = tmp_path / f"{radius}.png"
        disk = np.clip(sky + 200 * (np.hypot(xx, yy) < radius), 0, 255).astype(np.uint8)
        Image.fromarray(disk).convert("RGB").save(path)
        width = (data.decode(path, box)[32, :, 0] > 110).sum()  # the disk's diameter in the crop
        assert abs(width - 2 * radius * 64 / box_side) <= 2, (radius, width)


def test_decode_modes_and_odd_images(tmp_path, synth_dir):
    path = next((synth_dir / data.IMAGE_DIRS[0]).iterdir())
    centre = data.decode(path, data.Preprocess(size=64))
    assert centre.shape == (64, 64, 3)
    roi = data.decode(path, data.Preprocess(size=64, crop="roi"))
    assert roi.shape == (64, 64, 3)
    gray = data.decode(path, data.Preprocess(size=64, grayscale=True))
    assert gray.shape == (64, 64, 1)
    # a grayscale, non-424 image is handled, not rejected
    small = tmp_path / "1.jpg"
    Image.open(path).convert("L").resize((300, 300)).save(small)
    assert data.decode(small, data.Preprocess(size=64)).shape == (64, 64, 3)
    # non-square: the central square is cropped; PNG and CMYK JPEG go through Pillow
    wide = tmp_path / "2.png"
    rgb = Image.open(path).convert("RGB")
    margin = np.zeros((424, 50, 3), np.uint8)
    Image.fromarray(np.concatenate([margin, np.asarray(rgb), margin], 1)).save(wide)
    np.testing.assert_allclose(data.decode(wide, data.Preprocess(size=64)).astype(float),
                               data.decode(path, data.Preprocess(size=64)).astype(float), atol=12)
    cmyk = tmp_path / "3.jpg"
    rgb.convert("CMYK").save(cmyk)
    assert data.decode(cmyk, data.Preprocess(size=64)).shape == (64, 64, 3)


def test_scaled_decoding_matches_full_decode(synth_dir):
    """Decoding at a reduced DCT scale must give (nearly) the crop a full decode gives."""
    path = next((synth_dir / data.IMAGE_DIRS[0]).iterdir())
    fast = data.decode(path, data.Preprocess(size=64)).astype(float)
    with Image.open(path) as img:
        full = np.asarray(img.convert("RGB").resize((64, 64), Image.BILINEAR,
                                                     box=(108.5, 108.5, 315.5, 315.5))).astype(float)
    assert np.abs(fast - full).mean() < 3.0


def test_missing_image_names_the_file(synth_dir, tmp_path):
    folder = _copy_folder(synth_dir, tmp_path / "f", n=10)
    victim = sorted((folder / data.IMAGE_DIRS[0]).iterdir())[3]
    victim.unlink()
    with pytest.raises(data.DataError, match=victim.name):
        data.open_folder(folder)
    g = data.open_folder(folder, skip_bad=True)
    assert len(g) == 9 and victim.name in g.skipped[0]


def test_corrupt_and_truncated_jpegs(synth_dir, tmp_path):
    folder = _copy_folder(synth_dir, tmp_path / "f", n=10)
    files = sorted((folder / data.IMAGE_DIRS[0]).iterdir())
    files[2].write_bytes(b"not a jpeg at all")
    files[5].write_bytes(files[5].read_bytes()[:2000])  # truncated
    g = data.open_folder(folder)
    with pytest.raises(data.DataError, match=files[2].name):
        data.load_crops(g, data.Preprocess(size=32), cache_dir=tmp_path / "c", workers=1)
    crops, kept = data.load_crops(g, data.Preprocess(size=32), cache_dir=tmp_path / "c", workers=1,
                                  skip_bad=True)
    assert len(crops) == len(kept) == 8
    assert any(files[2].name in s for s in kept.skipped) and any(files[5].name in s for s in kept.skipped)
    assert files[2].stem not in map(str, kept.ids)


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns=["GalaxyID"]), "expected GalaxyID and answer columns"),
    (lambda df: df[["GalaxyID"]], "expected GalaxyID and answer columns"),
    (lambda df: df.assign(**{"Class1.1": "x"}), "line 2: Class1.1 'x' is not a number"),
    (lambda df: df.assign(**{"Class2.1": 1.5}), "outside"),
    (lambda df: df.assign(**{"Class3.1": df["Class3.1"] + 0.3}), "Q3 answers sum"),
    (lambda df: df.assign(GalaxyID="abc"), "is not a number"),
])
def test_bad_labels_name_the_row(synth_dir, tmp_path, mutate, message):
    import pandas as pd
    df = pd.read_csv(synth_dir / data.LABELS_FILE)
    bad = tmp_path / "labels.csv"
    mutate(df).to_csv(bad, index=False)
    with pytest.raises(data.DataError, match=message) as err:
        data.read_labels(bad)
    assert str(bad) in str(err.value)


def test_partial_labels_are_unknown_not_zero(synth_dir, tmp_path):
    """A CSV with some questions only (another campaign): absent columns and empty cells are NaN,
    and the known questions are still checked against the tree."""
    import pandas as pd
    df = pd.read_csv(synth_dir / data.LABELS_FILE)
    known = ["Class1.1", "Class1.2", "Class1.3", "Class2.1", "Class2.2", "Class6.1", "Class6.2"]
    partial = df[["GalaxyID", *known]].astype(object)
    partial.loc[3, "Class6.1"] = partial.loc[3, "Class6.2"] = ""  # Q6 unknown for one galaxy
    partial.to_csv(tmp_path / "p.csv", index=False)
    ids, labels = data.read_labels(tmp_path / "p.csv")
    columns = [tree.COLUMN_INDEX[c] for c in known]
    np.testing.assert_allclose(labels[:, columns][np.arange(len(df)) != 3],
                               df[known].to_numpy()[np.arange(len(df)) != 3], atol=1e-6)
    assert np.isnan(np.delete(labels, columns, axis=1)).all() and np.isnan(labels[3, 13:15]).all()
    partial.loc[5, "Class2.1"] = float(partial.loc[5, "Class2.1"]) + 0.3
    partial.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(data.DataError, match=f"line 7: GalaxyID {df.GalaxyID[5]}: Q2 answers sum"):
        data.read_labels(tmp_path / "p.csv")


def test_real_labels_pass_and_a_broken_copy_is_flagged(real_dir, tmp_path):
    ids, labels = data.read_labels(real_dir / data.LABELS_FILE)
    assert len(ids) == labels.shape[0] >= 1000
    lines = (real_dir / data.LABELS_FILE).read_text().splitlines()
    cells = lines[500].split(",")
    cells[tree.COLUMN_INDEX["Class5.2"] + 1] = str(float(cells[tree.COLUMN_INDEX["Class5.2"] + 1]) + 0.25)
    lines[500] = ",".join(cells)
    broken = tmp_path / data.LABELS_FILE
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.DataError, match=rf"line 501: GalaxyID {cells[0]}: Q5 answers sum"):
        data.read_labels(broken)


def test_real_images_decode(real_dir, tmp_path):
    g = data.open_folder(real_dir).subset(np.arange(40))
    crops, kept = data.load_crops(g, data.Preprocess(), cache_dir=tmp_path)
    assert crops.shape == (40, 72, 72, 3) and len(kept) == 40
    centre, edge = crops[:, 30:42, 30:42].mean(), crops[:, :8, :8].mean()
    assert centre > 3 * edge  # the galaxy is in the middle of the crop
