"""The Atlas: 2-D maps of the model's embedding (PCA, UMAP), their disk cache, the mosaic of real
galaxies and its regions named from the crowd's answers, `gz atlas`, and the page headless (AppTest),
its wall view included, selections and clicks sent as the browser sends them."""
import json
import re
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
from conftest import DASHBOARD
from streamlit.proto.WidgetStates_pb2 import WidgetState
from test_app import app_with, array, figures, show, texts

from gzcore import atlas, checkpoint, cli, computed, data, targets, train, tree
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
    tiles = atlas.mosaic(xy, shape=(10, 10), min_galaxies=3)
    assert len(set(tiles.rows.tolist())) == len(tiles.rows) > 0
    assert 3000 not in tiles.rows  # alone in its cell: too few to stand for it
    half = np.array(tiles.cell) / 2
    assert (np.abs(xy[tiles.rows] - tiles.centres) <= half + 1e-6).all()  # each inside its own cell
    for row, centre in zip(tiles.rows, tiles.centres):
        inside = np.flatnonzero((np.abs(xy - centre) <= half).all(axis=1))
        best = inside[np.square((xy[inside] - centre) / tiles.cell).sum(axis=1).argmin()]
        assert row == best
    drawn = tiles.tile >= 0
    assert (np.abs(xy[drawn] - tiles.centres[tiles.tile[drawn]]) <= half + 1e-6).all()  # every galaxy in its tile
    assert tiles.tile[3000] == -1 and (tiles.tile[tiles.rows] == np.arange(len(tiles.rows))).all()
    wide = atlas.mosaic(xy[:3000], shape=(16, 9))  # columns, rows
    assert wide.grid[:, 0].max() == 15 and wide.grid[:, 1].max() == 8


# ------------------------------------------------------------------ regions named from the answers


def answers(n: int = 1, **chosen) -> np.ndarray:
    """(n, 37) weighted answers of galaxies whose volunteers all gave the `chosen` answers (question
    number -> answer position, as Q1=1: 'features'); the other questions split evenly."""
    conditional = np.concatenate([np.full(len(q.answers), 1 / len(q.answers)) for q in tree.QUESTIONS])
    for question, answer in chosen.items():
        part = np.zeros(len(tree.QUESTION_BY_NUMBER[int(question[1:])].answers))
        part[answer] = 1.0
        conditional[tree.SLICES[int(question[1:])]] = part
    return np.repeat(tree.to_weighted(conditional), n, axis=0)


EDGE_ON = dict(Q1=1, Q2=0, Q6=1)
SPIRAL = dict(Q1=1, Q2=1, Q4=0, Q6=1)
ROUND = dict(Q1=0, Q7=0, Q6=1)
CIGAR = dict(Q1=0, Q7=2, Q6=1)
MERGER = dict(Q1=1, Q2=1, Q4=1, Q6=0, Q8=5)


def test_each_kind_of_galaxy_is_named_from_its_answers():
    named = {"edge-on disks": EDGE_ON, "spirals": SPIRAL, "smooth and round": ROUND, "smooth, cigar-shaped": CIGAR,
             "smooth and oval": dict(Q1=0, Q7=1, Q6=1), "features or disk": dict(Q1=1, Q2=1, Q4=1, Q6=1),
             "odd: merger": MERGER, "stars or artefacts": dict(Q1=2)}
    for words, chosen in named.items():
        assert atlas.describe(answers(**chosen)[0]) == words, chosen
    kind, strength = atlas.morphology(np.r_[answers(**EDGE_ON), answers(**SPIRAL)])
    assert [atlas.KINDS[k] for k in kind] == ["edge-on disks", "spirals"] and np.allclose(strength, 1)
    half = (answers(**MERGER)[0] + answers(Q1=1, Q2=1, Q4=1, Q6=0, Q8=0)[0]) / 2  # half mergers, half rings
    assert atlas.describe(half) == "odd: ring/merger"  # Q8's order on a tie


def test_a_vote_split_down_the_middle_goes_to_the_majority():
    mixed = 0.3 * answers(**EDGE_ON)[0] + 0.7 * answers(**SPIRAL)[0]
    assert atlas.describe(mixed) == "spirals"
    assert atlas.describe(0.7 * answers(**EDGE_ON)[0] + 0.3 * answers(**SPIRAL)[0]) == "edge-on disks"


def two_halves(n: int = 2000, seed: int = 0):
    """A map whose left half is round smooth galaxies and right half spirals, and their answers."""
    xy = np.random.default_rng(seed).uniform(0, 1, size=(n, 2)).astype(np.float32)
    xy[:2] = [[0, 0], [1, 1]]  # the map's corners: a grid's cells end at 0.5
    right = xy[:, 0] >= 0.5
    return xy, np.where(right[:, None], answers(n, **SPIRAL), answers(n, **ROUND)), right


def test_a_map_of_edge_on_galaxies_is_one_edge_on_region():
    xy = np.random.default_rng(2).uniform(0, 1, size=(900, 2)).astype(np.float32)
    tiles = atlas.mosaic(xy, shape=(8, 6))
    found = atlas.regions(tiles, answers(900, **EDGE_ON), answers(900, **ROUND))
    assert [r.label for r in found] == ["edge-on disks"]  # the crowd's answers, not the model's
    assert found[0].source == "crowd" and found[0].counted == (tiles.tile >= 0).sum() == len(found[0].rows)
    assert found[0].basis == f"the crowd's answers for {found[0].counted:,} galaxies"


def test_two_halves_of_the_map_become_two_regions_with_their_own_names():
    xy, crowd, right = two_halves()
    tiles = atlas.mosaic(xy, shape=(8, 6))
    found = atlas.regions(tiles, crowd, crowd[::-1])
    assert sorted(r.label for r in found) == ["smooth and round", "spirals"]
    for region in found:
        assert (right[region.rows] == (region.label == "spirals")).all()  # each region holds its own side
        assert len(region.tiles) == 24  # 4 of the 8 columns, 6 rows
    of = atlas.region_of_tiles(found, len(tiles.rows))
    assert (of >= 0).all()
    lines = atlas.borders(tiles, of)
    assert len(lines) == 6 and np.allclose(lines[:, :, 0], 0.5, atol=1e-3)  # one side of a cell per row, at x = 0.5
    named = atlas.label_tiles(tiles, found)
    assert [t in r.tiles for t, r in zip(named, found)] == [True, True]
    assert (np.abs(tiles.grid[named[0]] - tiles.grid[named[1]]) >= (3, 1)).any()  # the names apart
    spirals = next(r for r in found if r.label == "spirals")
    assert (atlas.morphology(crowd[spirals.clearest[:5]])[0] == atlas.SPIRAL).all()


def test_without_the_crowd_the_model_names_the_regions_and_says_so():
    xy, crowd, right = two_halves()
    tiles = atlas.mosaic(xy, shape=(8, 6))
    found = atlas.regions(tiles, None, crowd)
    assert sorted(r.label for r in found) == ["smooth and round", "spirals"]
    assert {r.source for r in found} == {"model"} and all("model's answers" in r.basis for r in found)
    unknown = crowd.copy()
    unknown[right] = np.nan  # the crowd never saw the spirals: the model names them, the crowd the rest
    found = {r.label: r for r in atlas.regions(tiles, unknown, crowd)}
    assert found["spirals"].source == "model" and found["smooth and round"].source == "crowd"
    assert found["smooth and round"].counted == len(found["smooth and round"].rows)


def test_a_lone_tile_joins_the_region_around_it():
    xy = np.random.default_rng(3).uniform(0, 1, size=(2400, 2)).astype(np.float32)
    tiles = atlas.mosaic(xy, shape=(6, 6))
    crowd = answers(2400, **SPIRAL)
    lone = tiles.tile == tiles.tile[np.argmin(np.square(xy - 0.5).sum(axis=1))]  # one tile in the middle
    crowd[lone] = answers(int(lone.sum()), **CIGAR)
    assert [r.label for r in atlas.regions(tiles, crowd, crowd, min_tiles=2)] == ["spirals"]
    alone = atlas.regions(tiles, crowd, crowd, min_tiles=1)
    assert sorted(r.label for r in alone) == ["smooth, cigar-shaped", "spirals"]


def test_the_colour_legend_knows_the_units_of_a_target():
    task = targets.Task("regression", ("oh", "mass"), units=("dex", ""))
    assert [atlas.colour_unit(c, task) for c in ("oh", "crowd oh", "spread oh", "error oh", "mass", "rmse")] == \
        ["dex", "dex", "dex", "dex", "", ""]
    assert atlas.colour_unit("rmse", targets.Task("regression", ("oh",), units=("dex",))) == "dex"
    assert atlas.colour_unit("Class1.1", targets.TREE) == ""


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


def click(at, key: str, index: int):
    """Click the `index`-th tile of the wall's mosaic (its key starts with `key`), as the browser does."""
    chart = next(c for c in at.get("plotly_chart") if c.key.startswith(key))
    point = {"point_index": index, "point_number": index, "curve_number": 0}
    event = {"selection": {"points": [point], "point_indices": [index], "box": [], "lasso": []}}
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(event)))
    at._run(states)
    assert not at.exception, [e.message for e in at.exception]
    return at


def wall_chart(at, key: str) -> dict | None:
    """The wall's mosaic whose key starts with `key`, as JSON, or None."""
    return next((f for k, f in figures(at).items() if k and k.startswith(key)), None)


def test_the_wall_places_the_galaxies_in_public_mode(dashboard_env, monkeypatch):
    monkeypatch.setenv("GZ_PUBLIC", "1")
    at = show(app_with(dashboard_env, monkeypatch), ATLAS)
    at.button(key="atlas_wall").click().run()
    images = wall_chart(at, "atlas_wall_map")["layout"]["images"]
    assert images and all(i["source"].startswith("data:image/jpeg;base64,") for i in images)
    assert "**96 galaxies**, placed by how alike the model sees them" in texts(at.markdown)
    assert dashboard_env["GZ_DATA"] not in texts(at.markdown)


def test_the_wall_names_regions_from_the_model_where_the_crowd_did_not_answer(dashboard_env, partial_dir, monkeypatch):
    app = app_with({**dashboard_env, "GZ_DATA": str(partial_dir)}, monkeypatch)  # the crowd skipped Q3-5, Q9-11
    app.query_params["wall"] = "umap"
    at = show(app, ATLAS)
    assert at.query_params["wall"] == "pca"  # the UMAP map is not on disk: the PCA map, and the URL says so
    names = wall_chart(at, "atlas_wall_map")["layout"]["annotations"]
    assert names and all(n["text"].endswith("galaxies · model") for n in names)
    assert re.search(r"\d+ regions? named from the model's answers \(no crowd answers\)", texts(at.markdown))


def test_the_wall_opens_from_the_url_names_its_regions_and_zooms_down_to_one_galaxy(app):
    app.query_params["wall"] = "pca"
    at = show(app, ATLAS)
    assert not at.title and not at.error  # the view is the whole screen
    assert at.query_params["wall"] == "pca"
    mosaic = wall_chart(at, "atlas_wall_map")
    images, names = mosaic["layout"]["images"], mosaic["layout"]["annotations"]
    assert images and all(i["source"].startswith("data:image/jpeg;base64,") for i in images)
    assert names and all(re.search(r"<br>[\d,]+ galaxies · crowd$", n["text"]) for n in names)  # who, how many
    assert re.search(r"\d+ regions? named from the crowd's answers ·", texts(at.markdown))
    hover = mosaic["data"][0]["text"]
    label = re.match(r"<b>(.*?)</b>", hover[0]).group(1)
    assert any(f"<b>{label}</b>" in n["text"] for n in names)

    click(at, "atlas_wall_map", 0)  # the map -> the region of its first tile
    assert wall_chart(at, "atlas_wall_region_")
    assert f"**{label}**: the crowd's answers for" in texts(at.markdown)
    click(at, "atlas_wall_region_", 0)  # the region -> one galaxy, large
    assert at.button(key="atlas_wall_open") and "What the crowd saw" in texts(at.markdown)
    assert len(at.get("image")) == 1
    gid = at.button(key="atlas_wall_open").label.split()[-1]
    at.button(key="atlas_wall_region_back").click().run()
    assert wall_chart(at, "atlas_wall_region_")
    at.button(key="atlas_wall_back").click().run()
    assert wall_chart(at, "atlas_wall_map")
    at.toggle(key="atlas_tour").set_value(True).run()  # the tour: a region's name and its clearest galaxies
    assert at.query_params["tour"] == "1" and len(at.get("image")) >= 1
    headings = [m.value[3:] for m in at.markdown if m.value.startswith("## ")]
    assert len(headings) == 1 and headings[0] in {re.match(r"<b>(.*?)</b>", n["text"]).group(1) for n in names}
    at.button(key="atlas_wall_leave").click().run()
    assert at.title[0].value == "Atlas" and "wall" not in at.query_params
    at.button(key="atlas_wall").click().run()  # and back, from the page's button
    click(at, "atlas_wall_map", 0)  # the same tile again
    click(at, "atlas_wall_region_", 0)
    at.button(key="atlas_wall_open").click().run()
    assert at.title[0].value == f"Galaxy {gid}"


@pytest.mark.parametrize("value", ["0", "yes please", "<b>1</b>", "9" * 5000])
def test_the_wall_is_opened_only_by_a_plain_yes(app, value):
    app.query_params["wall"] = value
    at = show(app, ATLAS)
    assert at.title[0].value == "Atlas" and wall_chart(at, "atlas_wall_map") is None and not at.error


def test_a_target_with_units_colours_the_map_with_them_and_the_wall_shows_its_galaxies(target_env, tmp_path, monkeypatch):
    ckpt = tmp_path / "oh-dex.pt"
    train.fit(target_env["GZ_DATA"], replace(DASHBOARD, labels=target_env["labels"], targets=("oh",), units=("dex",)),
              out=ckpt, cache_dir=tmp_path / "cache")
    env = {"GZ_DATA": target_env["GZ_DATA"], "GZ_CHECKPOINT": str(ckpt), "GZ_LABELS": target_env["labels"]}
    at = show(app_with(env, monkeypatch), ATLAS)
    for colour, title in (("oh", "model · oh (dex)"), ("crowd oh", "true · oh (dex)"), ("rmse", "(dex)")):
        at.selectbox(key="atlas_colour").set_value(colour).run()
        chart = figures(at)[next(k for k in figures(at) if k and k.endswith("atlas_map"))]
        bar = chart["data"][0]["marker"]["colorbar"]
        assert bar["ticksuffix"] == " dex" and bar["title"]["text"].endswith(title), bar
    at.button(key="atlas_wall").click().run()  # the wall of a model of other targets: galaxies, no regions
    mosaic = wall_chart(at, "atlas_wall_map")
    assert mosaic["layout"]["images"] and not mosaic["layout"].get("annotations")
    assert "regions are named for Galaxy Zoo tree models only" in texts(at.markdown)
    click(at, "atlas_wall_map", 0)
    assert at.button(key="atlas_wall_open") and re.search(r"oh [\d.]+ ± [\d.]+ dex", texts(at.markdown))
