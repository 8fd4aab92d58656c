"""The dashboard's pure logic: the catalogue's derived columns, selections and confusion, and the
visitor's walk through the tree."""
import numpy as np
import pytest
from conftest import random_tree_rows

from gzcore import catalog, evaluate, play, tree


def one_hot_conditional(choices: dict[int, np.ndarray]) -> np.ndarray:
    """Weighted rows from per-question conditional distributions (uniform where not given)."""
    cond = np.concatenate([choices.get(q.number, np.full(len(q.answers), 1 / len(q.answers)))
                           for q in tree.QUESTIONS])
    return tree.to_weighted(cond[None])


@pytest.fixture(scope="module")
def table():
    crowd, model = random_tree_rows(500, seed=1), random_tree_rows(500, seed=2)
    return catalog.enrich(evaluate.predictions_table(np.arange(500), model, crowd))


def test_confident_disagreement_follows_its_definition():
    crowd = one_hot_conditional({1: np.array([0.95, 0.05, 0.0])})
    model = one_hot_conditional({1: np.array([0.5, 0.5, 0.0])})
    score, question, crowd_surer = catalog.disagreement(crowd, model)
    assert question[0] == 1 and crowd_surer[0]
    assert score[0] == pytest.approx(1.0 * abs(0.95 - 0.5) * abs(2 * 0.95 - 1))
    assert catalog.disagreement(model, model)[0][0] == pytest.approx(0.0)


def test_enrich_marks_unreached_questions(table):
    assert {"cond Class1.1", "crowd reach Q2", "top Q11", "crowd ptop Q4", "disagreement"} <= set(table)
    star_row = one_hot_conditional({1: np.array([0.0, 0.0, 1.0])})
    star = catalog.enrich(evaluate.predictions_table([1], star_row))
    assert star["top Q2"].iat[0] == -1 and np.isnan(star["ptop Q2"].iat[0]) and star["top Q1"].iat[0] == 2


def test_select_filters_and_sorts_with_nan_last(table):
    rows = catalog.select(table, [catalog.Range("crowd cond Class1.1", 0.5)], "rmse", descending=True)
    assert (table["crowd cond Class1.1"].to_numpy()[rows] >= 0.5).all()
    assert np.all(np.diff(table.rmse.to_numpy()[rows]) <= 0)
    t = table.copy()
    t.loc[0, "rmse"] = np.nan
    assert catalog.select(t, sort_by="rmse")[-1] == 0
    assert catalog.select(t, sort_by="rmse", descending=False)[-1] == 0


def test_a_confusion_cell_and_its_browse_filter_agree(table):
    counts = catalog.confusion(table, 2, confident=True)
    for crowd, model in [(0, 0), (0, 1), (1, 0)]:
        rows = catalog.select(table, catalog.confusion_ranges(2, crowd, model, confident=True))
        assert len(rows) == counts.iat[crowd, model]
    labels = catalog.column_labels(table)
    assert all(c in table for c in labels)
    assert catalog.Range("crowd top Q2", 1, 1).describe(labels) == "crowd top answer to Q2 = not edge-on"


def test_statistics_have_one_entry_per_answer(table):
    assert catalog.answer_correlations(table).shape == (37, 37)
    assert len(catalog.most_confident(table)) == 37
    shares = catalog.top_answer_shares(table)
    assert np.allclose(shares.groupby("question", sort=False).share.sum(), 1.0)
    assert list(catalog.export(table).columns[:2]) == ["GalaxyID", "Class1.1"]


def test_the_walk_follows_the_tree():
    assert play.next_question([]) == 1
    assert play.next_question([(1, 0)]) == 7            # smooth -> how rounded
    assert play.next_question([(1, 0), (7, 1)]) == 6    # then anything odd
    assert play.next_question([(1, 2)]) is None         # a star ends it
    assert play.next_question([(1, 0), (7, 0), (6, 0)]) == 8
    assert play.next_question([(1, 0), (7, 0), (6, 0), (8, 3)]) is None


def test_compare_finds_where_the_visitor_parted_ways():
    crowd = one_hot_conditional({1: np.array([0.1, 0.8, 0.1]), 2: np.array([0.2, 0.8])})
    walk = [(1, 1), (2, 0)]
    comparison = play.compare(walk, crowd, crowd)
    assert comparison["crowd share of your answer"].tolist() == pytest.approx([0.8, 0.2])
    assert play.parted_ways(comparison) == 1 and play.parted_ways(comparison.iloc[:1]) is None
