"""A predictions table of any size browsed a column at a time: paged selection equal to a full sort,
the on-disk catalogue equal to the in-memory one, bad tables named, and Browse on it."""
import numpy as np
import pandas as pd
import pytest
from conftest import random_tree_rows
from test_app import app_with, show, texts

from gzcore import catalog, data, evaluate, large_catalog, tree
from gzcore.dashboard.navigation import BROWSE, HOME


def predictions(n, seed=0, spread=True) -> pd.DataFrame:
    """A `gz predict` table of n galaxies: random answers that obey the tree, with their spread."""
    table = evaluate.predictions_table(np.arange(100_000, 100_000 + n), random_tree_rows(n, seed))
    if spread:
        rng = np.random.default_rng(seed)
        table[[f"{c} spread" for c in tree.COLUMNS]] = rng.random((n, 37)).astype(np.float32) * 0.05
    return table


def in_memory(table: pd.DataFrame) -> pd.DataFrame:
    """The dashboard's catalogue of the same predictions (catalog.enrich), for comparison."""
    renamed = table.rename(columns={f"{c} spread": catalog.col(c, "spread") for c in tree.COLUMNS})
    return catalog.enrich(renamed)


def test_a_page_is_the_slice_of_the_full_sort_with_ties_and_nan_in_row_order():
    rng = np.random.default_rng(1)
    n = 500
    table = pd.DataFrame({"top": rng.integers(-1, 3, n).astype(np.int8),  # many ties
                          "p": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)).astype(np.float32),
                          "GalaxyID": rng.permutation(n).astype(np.int64)})
    for sort_by in ("top", "p", "GalaxyID", None):
        for descending in (True, False):
            ranges = [catalog.Range("p", 0.1, 0.9)] if sort_by != "p" else []
            full = catalog.select(table, ranges, sort_by, descending)
            if sort_by:
                v = table[sort_by].to_numpy(np.float64)[full]
                known = v[~np.isnan(v)]
                assert np.all(np.diff(known) <= 0) if descending else np.all(np.diff(known) >= 0)
                assert np.isnan(v[len(known):]).all()  # NaN last either way
                ties = v[:-1] == v[1:]
                assert np.all(full[:-1][ties] < full[1:][ties])  # ties in row order
            for start in (0, 24, 37, len(full) - 5, len(full) + 3):
                total, rows = catalog.page(table, ranges, sort_by, descending, start, 24)
                assert total == len(full)
                np.testing.assert_array_equal(rows, full[start:start + 24])


def test_the_catalogue_on_disk_equals_the_one_in_memory(tmp_path):
    table = predictions(300)
    source = tmp_path / "p.parquet"
    source.mkdir()
    table.iloc[:200].to_parquet(source / "part-000000.parquet", index=False)  # as gz predict writes
    table.iloc[200:].to_parquet(source / "part-000001.parquet", index=False)
    big = large_catalog.Catalogue(large_catalog.build(source, tmp_path / "cache"))
    small = in_memory(table)
    assert len(big) == 300 and "crowd Class1.1" not in big and "rmse" not in big  # no labels: left out
    assert set(big.columns) == {c for c in small.columns if small[c].notna().any()}
    for column in ("GalaxyID", "cond Class4.1", "top Q1", "uncertainty", "spread Class1.1"):
        np.testing.assert_array_equal(big[column].to_numpy(), small[column].to_numpy())
    assert catalog.column_labels(big) == catalog.column_labels(small)
    ranges = [catalog.Range("cond Class1.2", 0.3), catalog.Range("reach Q4", 0.1, 0.9)]
    for sort_by in ("uncertainty", "top Q2", "GalaxyID"):
        np.testing.assert_array_equal(catalog.page(big, ranges, sort_by, True, 10, 24)[1],
                                      catalog.page(small, ranges, sort_by, True, 10, 24)[1])
    rows = [5, 250, 7]
    assert catalog.summaries(big, rows=rows) == catalog.summaries(small, rows=rows)
    np.testing.assert_array_equal(catalog.weighted(big, rows=rows), catalog.weighted(small, rows=rows))


def test_a_csv_with_labels_is_read_and_a_changed_source_is_indexed_again(tmp_path):
    table = predictions(50, spread=False)
    crowd = pd.DataFrame(random_tree_rows(50, seed=4), columns=[f"crowd {c}" for c in tree.COLUMNS])
    source = tmp_path / "p.csv"
    pd.concat([table, crowd], axis=1).to_csv(source, index=False)
    first = large_catalog.build(source, tmp_path / "cache")
    big = large_catalog.Catalogue(first)
    assert "crowd cond Class1.1" in big and "disagreement" in big and "uncertainty" not in big
    expected = np.sqrt(np.mean((table[list(tree.COLUMNS)].to_numpy() - crowd.to_numpy()) ** 2, axis=1))
    np.testing.assert_allclose(big["rmse"].to_numpy(), expected, rtol=1e-5)
    table.iloc[:10].to_csv(source, index=False)
    assert large_catalog.build(source, tmp_path / "cache") != first
    assert len(large_catalog.Catalogue(large_catalog.build(source, tmp_path / "cache"))) == 10


@pytest.mark.parametrize("case", ["missing", "empty folder", "no answers", "no rows", "not a table", "txt"])
def test_a_bad_predictions_table_is_named(tmp_path, case):
    source = {"empty folder": tmp_path / "p.parquet", "txt": tmp_path / "p.txt"}.get(case, tmp_path / "p.csv")
    if case == "empty folder":
        source.mkdir()
    elif case == "no answers":
        predictions(5)[["GalaxyID", "Class1.1"]].to_csv(source, index=False)
    elif case == "no rows":
        predictions(5).iloc[:0].to_csv(source, index=False)
    elif case in ("not a table", "txt"):
        source.write_bytes(b"\x00\x01 not a table \xff\n\"unclosed")
    with pytest.raises(data.DataError, match=str(source.name)):
        large_catalog.build(source, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("catalogues/*.arrow"))  # nothing half-written kept


def test_browse_shows_a_predictions_table_with_its_images(dashboard_env, monkeypatch, tmp_path):
    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID.to_numpy()
    table = predictions(len(ids) + 30)  # 30 without an image
    table["GalaxyID"] = np.concatenate([ids, np.arange(900_000, 900_030)])
    table.to_parquet(tmp_path / "p.parquet", index=False)
    at = app_with(dashboard_env, monkeypatch)
    at.query_params["predictions"] = str(tmp_path / "p.parquet")
    at.query_params["images"] = dashboard_env["GZ_DATA"]
    at = show(at, BROWSE)
    assert f"{len(table):,} of {len(table):,} galaxies match" in texts(at.caption)
    assert len([b for b in at.button if b.label.startswith("Open ")]) == 24
    at.selectbox(key="browse_sort").set_value("GalaxyID").run()
    assert [b.label for b in at.button if b.label.startswith("Open ")][0] == "Open 900029"
    assert "no image 900029.*" in texts(at.caption)
    at.toggle(key="browse_descending").set_value(False).run()
    first = next(b for b in at.button if b.label.startswith("Open "))
    assert first.label == f"Open {ids.min()}" and len(at.get("image")) == 24  # thumbnails from the folder
    at.selectbox(key="browse_column").set_value("cond Class1.1").run()
    slider = at.slider(key="browse_range_cond Class1.1")
    slider.set_value((0.5, slider.max)).run()
    at.button[0].click().run()  # "Add filter"
    expected = int((in_memory(table)["cond Class1.1"] >= 0.5).sum())
    assert f"{expected:,} of {len(table):,} galaxies match" in texts(at.caption)
    first = next(b for b in at.button if b.label.startswith("Open "))
    first.click().run()
    assert not at.exception and "Model's path:" in texts(at.markdown)
    assert len(at.get("plotly_chart")) == 11  # the 11 questions in the galaxy's dialog


def test_a_bad_predictions_table_shows_a_message_with_a_way_home(dashboard_env, monkeypatch, tmp_path):
    at = app_with(dashboard_env, monkeypatch)
    at.query_params["predictions"] = str(tmp_path / "nothing.parquet")
    at = show(at, BROWSE)
    assert "nothing.parquet: no such predictions file or folder" in texts(at.error)
    at = show(at, HOME)
    assert at.text_input(key="home_predictions").value == str(tmp_path / "nothing.parquet")
    at.text_input(key="home_predictions").set_value("").run()
    at = show(at, BROWSE)
    assert not at.error and "of 96 galaxies match" in texts(at.caption)  # the folder's catalogue again
