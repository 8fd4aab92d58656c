"""Oddballs: the anomaly score puts planted outliers first, "more like these" follows the marks and
never re-shows a marked galaxy, marks survive their CSV, `gz oddballs`, and the dashboard: the
Oddballs page (seeds -> ranking -> a mark changes it) and Browse (oddest first, a listed selection)."""
import io

import numpy as np
import pandas as pd
import pytest
from conftest import gz
from test_app import app_with, show, texts

from gzcore import computed, data, oddballs
from gzcore.dashboard import state
from gzcore.dashboard.navigation import BROWSE, ODDBALLS


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clusters(sizes=(60, 60, 60), dim=16, spread=0.15, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings in clusters around orthogonal directions -> (embeddings, cluster of each row)."""
    rng = np.random.default_rng(seed)
    which = np.repeat(np.arange(len(sizes)), sizes)
    centres = np.eye(dim)[which] + 0.3  # a shared component, as ReLU features have
    return unit(centres + spread * rng.standard_normal((len(which), dim))), which


def test_planted_outliers_score_highest():
    emb, _ = clusters((200,), seed=1)
    rng = np.random.default_rng(2)
    planted = unit(rng.standard_normal((3, emb.shape[1])))  # random directions, far from the cluster
    emb = np.concatenate([emb[:50], planted, emb[50:]])
    score = oddballs.anomaly(emb, chunk=64)  # several chunks
    assert set(oddballs.most_anomalous(score, 3)) == {50, 51, 52}
    assert np.array_equal(score, oddballs.anomaly(emb, chunk=64))  # deterministic
    within = oddballs.most_anomalous(score, 2, rows=[0, 51, 7])
    assert len(within) == 2 and within[0] == 51 and set(within) < {0, 51, 7}  # among the rows given
    assert oddballs.anomaly(emb[:1]).tolist() == [0.0]  # one galaxy: nothing to compare with


def test_the_score_is_cached_on_disk(tmp_path, synth_dir):
    emb, _ = clusters()
    (tmp_path / "model.pt").write_bytes(b"weights")
    subject = computed.Subject(data.open_folder(synth_dir), {"preprocess": {}}, tmp_path / "model.pt", tmp_path)
    first = oddballs.anomaly_cached(emb, subject)
    [path] = (tmp_path / "oddballs").glob("*.npy")
    np.save(path, np.full(len(emb), 7, np.float32))  # read back, not recomputed
    assert (oddballs.anomaly_cached(emb, subject) == 7).all()
    assert np.array_equal(first, oddballs.anomaly(emb))


def mean_rank(ranked: np.ndarray, rows: np.ndarray) -> float:
    return float(np.flatnonzero(np.isin(ranked, rows)).mean())


def test_more_like_follows_the_marks_and_never_reshows_them():
    emb, which = clusters()
    a, b, c = (np.flatnonzero(which == k) for k in range(3))
    ranked, p = oddballs.more_like(emb, [a[0]])
    assert a[0] not in ranked and len(ranked) == len(emb) - 1 and (np.diff(p) <= 0).all()
    assert set(ranked[:20]) <= set(a)  # like the seed first
    assert np.array_equal(ranked, oddballs.more_like(emb, [a[0]])[0])  # deterministic

    toward, _ = oddballs.more_like(emb, [a[0], b[0]])  # a galaxy of B marked interesting
    assert mean_rank(toward, b) < mean_rank(ranked, b)
    away, _ = oddballs.more_like(emb, [a[0]], negatives=c[:3])  # three of C marked not interesting
    assert mean_rank(away, c[3:]) > mean_rank(ranked, c[3:])
    assert not set(away) & {a[0], *c[:3]}  # marked galaxies are not shown again
    assert len(oddballs.more_like(emb, [a[0]], n=5)[0]) == 5
    with pytest.raises(ValueError, match="at least one positive"):
        oddballs.more_like(emb, [], negatives=[1])


def test_marks_round_trip_through_their_csv(tmp_path):
    marks = {1237648720693755918: "seed", 5: "interesting", 3: "not interesting"}  # an SDSS objID stays exact
    path = tmp_path / "marks.csv"
    oddballs.marks_table(marks).to_csv(path, index=False)
    assert list(pd.read_csv(path).columns) == ["GalaxyID", "mark"]
    again = oddballs.read_marks(path)
    assert again == marks and list(again) == list(marks)  # the order made, too
    assert oddballs.read_marks(io.StringIO("GalaxyID,mark\n"), "empty.csv") == {}
    assert oddballs.split_marks(marks, {5: 0, 3: 1}.get) == ([0], [1])  # a galaxy not here: left out
    for text, why in (("GalaxyID,mark\n7,maybe\n", "row 2 has the mark 'maybe'"),
                      ("id,mark\n7,seed\n", "columns GalaxyID, mark"),
                      ("GalaxyID,mark\nx7,seed\n", "row 2 has no GalaxyID"),
                      ("", "cannot read it")):
        with pytest.raises(data.DataError, match=f"mine.csv: .*{why}"):
            oddballs.read_marks(io.StringIO(text), "mine.csv")


def test_cli_writes_the_oddest(dashboard_env, tmp_path):
    out = tmp_path / "odd.csv"
    done = gz("oddballs", "--data", dashboard_env["GZ_DATA"], "--checkpoint", dashboard_env["GZ_CHECKPOINT"],
              "--top", 10, "--out", out)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["GalaxyID", "score", "rank"] and table["rank"].tolist() == list(range(1, 11))
    assert table.score.is_monotonic_decreasing
    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID
    assert set(table.GalaxyID) <= set(ids)
    bad = gz("oddballs", "--data", tmp_path / "nowhere", "--out", out)
    assert bad.returncode == 2 and "gz oddballs: error: " in bad.stderr and "nowhere" in bad.stderr
    assert "--top must be at least 1" in gz("oddballs", "--data", tmp_path, "--top", 0, "--out", out).stderr


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


def like_ids(at) -> list[str]:
    """GalaxyIDs of the "more like these" grid, in its order."""
    return [b.key.split("_")[-1] for b in at.button if b.key and b.key.startswith("like_interesting_")]


def test_oddballs_page_seeds_a_ranking_that_follows_the_marks(app):
    at = show(app, ODDBALLS)
    assert not at.error and "Tick **Seed**" in texts(at.info)
    oddness = [float(c.value.split()[1]) for c in at.caption if c.value.startswith("oddness ")]
    assert len(oddness) == 24 and oddness == sorted(oddness, reverse=True)
    assert "crowd odd " in texts(at.caption)
    seeds = [c for c in at.checkbox if c.key.startswith("odd_pick_")][:2]
    for box in seeds:
        box.check().run()
    assert at.button(key="odd_more").label == "More like these (2 picked)"
    at.button(key="odd_more").click().run()
    first = like_ids(at)
    assert len(first) == 12 and not {s.key.split("_")[-1] for s in seeds} & set(first)
    assert "2 seed(s), 0 marked interesting, 0 not" in texts(at.caption)
    at.button(key=f"like_not interesting_{first[0]}").click().run()
    second = like_ids(at)
    assert first[0] not in second and second != first[1:]  # never re-shown; the ranking refitted
    assert "1 not" in texts(at.caption)
    csv = next(d for d in at.get("download_button"))
    assert csv.proto.label == "Download the marks (CSV)"

    at.button(key="odd_browse").click().run()  # the seeds, then the ranking, in Browse
    opened = [b.label.split()[-1] for b in at.button if b.label.startswith("Open ")]
    assert opened[2:14] == second and "Oddballs: the seeds" in texts(at.info)


def test_browse_sorts_by_oddness_and_shows_a_list(app, dashboard_env):
    at = show(app, BROWSE)
    at.selectbox(key="browse_sort").set_value(oddballs.COLUMN).run()
    values = [float(c.value.split(" · ")[0]) for c in at.caption if " · " in c.value and "match" not in c.value]
    assert len(values) == 24 and values == sorted(values, reverse=True)
    assert "sorted by oddness (anomaly score" in texts(at.caption)

    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID.tolist()
    listed = [ids[40], ids[3], ids[77], 123]  # 123: not in the folder
    at = show(at, BROWSE, **{state.BROWSE_IDS: {"ids": listed, "why": "Three I liked"}})
    assert [b.label for b in at.button if b.label.startswith("Open ")] == [f"Open {i}" for i in listed[:3]]
    assert "Three I liked · 4 galaxies (1 of them not in this catalogue)" in texts(at.info)
    assert "3 of 3 galaxies match · in the order listed" in texts(at.caption)
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").set_index("GalaxyID")["Class1.1"]
    at.selectbox(key="browse_column").set_value("crowd cond Class1.1").run()
    at.slider(key="browse_range_crowd cond Class1.1").set_value((0.5, 1.0)).run()
    next(b for b in at.button if b.label == "Add filter").click().run()  # a filter narrows the list
    kept = [f"Open {i}" for i in listed[:3] if crowd[i] >= 0.5]
    assert [b.label for b in at.button if b.label.startswith("Open ")] == kept and 0 < len(kept) < 3
    next(b for b in at.button if b.label.startswith("✕")).click().run()
    at.button(key="browse_all").click().run()
    assert state.BROWSE_IDS not in at.session_state and "of 96 galaxies match" in texts(at.caption)
    assert "in the order listed" not in texts(at.caption)
