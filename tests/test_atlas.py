"""The Atlas: 2-D maps of the model's embedding (PCA, UMAP), their disk cache, the outreach mosaic,
`gz atlas`, and the page headless (AppTest), selections sent as the browser sends them."""
import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from test_app import app_with, array, figures, show, texts

from gzcore import atlas, checkpoint, cli, computed, data
from gzcore.dashboard.navigation import ATLAS


def unit_rows(n: int, width: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ library


def test_pca_is_two_dimensional_deterministic_and_on_the_main_axes():
    emb = unit_rows(200) * np.r_[3.0, 2.0, np.ones(14)].astype(np.float32)  # two clearly main directions
    xy = atlas.pca(emb)
    assert xy.shape == (200, 2) and xy.dtype == np.float32
    np.testing.assert_array_equal(xy, atlas.pca(emb.copy()))
    centred = emb - emb.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2]
    np.testing.assert_allclose(np.abs(xy), np.abs(centred @ axes.T), atol=1e-4)  # the same axes, up to sign
    assert xy[:, 0].var() >= xy[:, 1].var()
    assert atlas.pca(emb[:1]).shape == (1, 2) and not atlas.pca(emb[:1]).any()


def test_the_map_is_cached_on_disk_and_redone_when_the_checkpoint_changes(synth_dir, tmp_path, monkeypatch):
    galaxies = data.open_folder(synth_dir)
    ckpt, ckpt_path = {"preprocess": asdict(data.Preprocess())}, tmp_path / "model.pt"
    ckpt_path.write_bytes(b"weights")
    emb, calls = unit_rows(len(galaxies)), []
    project = atlas.project
    monkeypatch.setattr(atlas, "project", lambda *a: calls.append(a[1]) or project(*a))

    subject = computed.Subject(galaxies, ckpt, ckpt_path, tmp_path / "cache")
    first = atlas.coordinates(emb, "pca", subject)
    assert atlas.cache_file(subject, "pca").is_file()
    again = atlas.coordinates(emb, "pca", subject)
    np.testing.assert_array_equal(first, again)
    assert calls == ["pca"]  # the second came from disk

    ckpt_path.write_bytes(b"retrained weights")  # another file: another key
    subject = computed.Subject(galaxies, ckpt, ckpt_path, tmp_path / "cache")
    assert not atlas.cache_file(subject, "pca").is_file()
    atlas.coordinates(emb, "pca", subject)
    assert calls == ["pca", "pca"]
    assert sorted(p.name.rsplit("-", 1)[-1] for p in (tmp_path / "cache" / "atlas").glob("*.npy")) == \
        ["pca.npy", "pca.npy"]
    assert not list((tmp_path / "cache" / "atlas").glob("*.tmp.*"))  # no leftovers


def test_mosaic_picks_one_galaxy_per_busy_cell_nearest_its_centre():
    rng = np.random.default_rng(1)
    xy = np.r_[rng.uniform(0, 1, size=(3000, 2)), [[5.0, 5.0]]].astype(np.float32)  # a lone outlier
    tiles = atlas.mosaic(xy, cells=10, min_galaxies=3)
    assert len(set(tiles.rows.tolist())) == len(tiles.rows) > 0
    assert 3000 not in tiles.rows  # alone in its cell: too few to stand for it
    half = np.array(tiles.cell) / 2
    assert (np.abs(xy[tiles.rows] - tiles.centres) <= half + 1e-6).all()  # each inside its own cell
    for row, centre in zip(tiles.rows, tiles.centres):
        inside = np.flatnonzero((np.abs(xy - centre) <= half).all(axis=1))
        best = inside[np.square((xy[inside] - centre) / tiles.cell).sum(axis=1).argmin()]
        assert row == best


def test_nearest_on_the_map_leaves_the_galaxy_out_and_sorts_by_distance():
    xy = np.array([[0, 0], [3, 0], [1, 0], [0, 2]], np.float32)
    assert atlas.nearest_on_map(xy, 0, k=2).tolist() == [2, 3]
    assert atlas.nearest_on_map(xy, 0, k=10).tolist() == [2, 3, 1]


def test_an_unknown_method_and_too_few_galaxies_for_umap_say_so():
    with pytest.raises(ValueError, match="unknown map method 'tsne'"):
        atlas.project(unit_rows(10), "tsne")
    with pytest.raises(data.DataError, match="UMAP needs at least 4 galaxies and there are 3: use PCA"):
        atlas.umap(unit_rows(3))


@pytest.mark.slow
def test_umap_is_reproducible():
    """The one UMAP run of the suite: numba compiles it first (about a minute on 2 cores)."""
    emb = np.r_[unit_rows(40, seed=1) + 2, unit_rows(40, seed=2) - 2]
    xy = atlas.umap(emb)
    assert xy.shape == (80, 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(xy, atlas.umap(emb))
    ends = atlas.nearest_on_map(xy, 0, k=10)
    assert (ends < 40).mean() >= 0.9  # the two clusters stay apart


# ------------------------------------------------------------------ gz atlas


def test_gz_atlas_writes_galaxy_ids_and_positions(dashboard_env, tmp_path, capsys):
    out = tmp_path / "map.csv"
    assert cli.main(["atlas", "--data", dashboard_env["GZ_DATA"], "--checkpoint", dashboard_env["GZ_CHECKPOINT"],
                     "--method", "pca", "--out", str(out)]) == 0  # in this process: torch is loaded already
    assert f"wrote the PCA map of 96 galaxies to {out}" in capsys.readouterr().out
    table = pd.read_csv(out)
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")
    assert list(table.columns) == ["GalaxyID", "x", "y"] and sorted(table.GalaxyID) == sorted(crowd.GalaxyID)
    assert np.isfinite(table[["x", "y"]].to_numpy()).all()
    missing = tmp_path / "nowhere"
    assert cli.main(["atlas", "--data", str(missing), "--checkpoint", dashboard_env["GZ_CHECKPOINT"],
                     "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("gz atlas: error: ") and str(missing) in error


# ------------------------------------------------------------------ the page


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


def select(at, rows, how="box"):
    """Send the map a selection of `rows`, as the browser does (AppTest has no API for a chart's
    selection: the chart's widget state is added to the others' for the next run)."""
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("atlas_map"))
    points = [{"point_index": int(r), "point_number": int(r), "curve_number": 0} for r in rows]
    shape = [{"xref": "x", "yref": "y", "x": [0, 1], "y": [0, 1]}] if how == "box" else []
    event = {"selection": {"points": points, "point_indices": [int(r) for r in rows], "box": shape, "lasso": []}}
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(event)))
    at._run(states)
    assert not at.exception, [e.message for e in at.exception]
    return at


def marker_colours(at) -> np.ndarray:
    return array(figures(at)[next(k for k in figures(at) if k and k.endswith("atlas_map"))]["data"][0]
                 ["marker"]["color"])


def test_atlas_draws_every_galaxy_and_recolours(app):
    at = show(app, ATLAS)
    assert at.title[0].value == "Atlas" and not at.error
    before = marker_colours(at)
    assert len(before) == 96
    at.selectbox(key="atlas_colour").set_value("rmse").run()
    after = marker_colours(at)
    assert len(after) == 96 and not np.allclose(before, after)


def test_a_selection_shows_its_galaxies_and_opens_them_in_browse(app):
    at = select(show(app, ATLAS), range(20))
    assert "20 galaxies selected" in texts(at.subheader)
    assert len(at.get("image")) == 12  # the first 12 thumbnails
    at.button(key="atlas_browse").click().run()
    chosen = at.session_state["browse_ids"]
    assert len(chosen["ids"]) == 20 and "Atlas" in chosen["why"]


def test_a_click_shows_the_galaxy_and_its_neighbours_on_the_map(app):
    at = select(show(app, ATLAS), [5], how="points")
    assert "and the 8 nearest it on the map" in texts(at.subheader)
    assert len(at.get("image")) == 9
    gid = texts(at.subheader).split()[1]
    at.button(key="atlas_open").click().run()
    assert at.title[0].value == f"Galaxy {gid}"


def test_umap_waits_for_a_button_until_it_is_on_disk(app, dashboard_env):
    at = show(app, ATLAS, atlas_method="UMAP")
    assert at.button(key="atlas_umap") and "PCA map" in texts(at.caption)
    galaxies = data.open_folder(dashboard_env["GZ_DATA"])
    ckpt = checkpoint.read(dashboard_env["GZ_CHECKPOINT"])
    path = atlas.cache_file(computed.Subject(galaxies, ckpt, dashboard_env["GZ_CHECKPOINT"],
                                             data.default_cache_dir()), "umap")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.arange(2 * len(galaxies), dtype=np.float32).reshape(-1, 2))  # as if computed before
    at.run()
    assert "UMAP cached on disk" in texts(at.caption) and not any(b.key == "atlas_umap" for b in at.button)
    chart = figures(at)[next(k for k in figures(at) if k and k.endswith("atlas_map"))]
    assert array(chart["data"][0]["x"])[:3].tolist() == [0, 2, 4]


def test_the_outreach_view_places_real_galaxies_in_public_mode(dashboard_env, monkeypatch):
    monkeypatch.setenv("GZ_PUBLIC", "1")
    at = show(app_with(dashboard_env, monkeypatch), ATLAS, atlas_outreach=True)
    mosaic = figures(at)[next(k for k in figures(at) if k and k.endswith("atlas_mosaic"))]
    images = mosaic["layout"]["images"]
    assert images and all(i["source"].startswith("data:image/png;base64,") for i in images)
    assert "real galaxies" in texts(at.caption) and dashboard_env["GZ_DATA"] not in texts(at.caption)
