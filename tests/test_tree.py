import numpy as np
import pytest

from gzcore import data, tree
from conftest import random_tree_rows


def test_37_answers_in_kaggle_order():
    assert len(tree.COLUMNS) == 37 and tree.COLUMNS[0] == "Class1.1" and tree.COLUMNS[-1] == "Class11.6"
    assert [tree.SLICES[n].start for n in range(1, 12)] == [0, 3, 5, 7, 9, 13, 15, 18, 25, 28, 31]


def test_reach_columns_follow_the_data_quirks():
    q = tree.QUESTION_BY_NUMBER
    assert q[5].reached_by == "Class2.2"   # both Q4 answers lead to Q5
    assert q[6].reached_by is None         # Q6 sums to 1 in the released labels
    assert q[8].reached_by == "Class6.1"


def test_conditional_round_trip():
    w = random_tree_rows(200)
    assert tree.check_labels(w) == []
    back = tree.to_weighted(tree.to_conditional(w))
    np.testing.assert_allclose(back, w, atol=1e-12)
    cond = tree.to_conditional(w)
    for q in tree.QUESTIONS:
        np.testing.assert_allclose(cond[:, tree.SLICES[q.number]].sum(1), 1, atol=1e-9)


def test_unreached_questions_are_nan_when_conditional():
    w = random_tree_rows(1)
    w[0, tree.SLICES[1]] = [1.0, 0.0, 0.0]  # all smooth: nobody reaches Q2
    w = tree.to_weighted(np.nan_to_num(tree.to_conditional(w)))
    cond = tree.to_conditional(w)
    assert np.isnan(cond[0, tree.SLICES[2]]).all()
    assert not np.isnan(cond[0, tree.SLICES[7]]).any()


def test_check_labels_names_the_row_and_question():
    w = random_tree_rows(5)
    w[3, tree.COLUMN_INDEX["Class3.1"]] += 0.2
    problems = tree.check_labels(w, ids=np.arange(100, 105))
    assert [(p.row, p.question) for p in problems] == [(3, 3)]
    assert "GalaxyID 103" in problems[0].message and "Q3" in problems[0].message
    w[1, 0] = np.nan
    w[2, 4] = 1.7
    msgs = " ".join(p.message for p in tree.check_labels(w))
    assert "row 1: missing value in Class1.1" in msgs and "row 2: value outside [0, 1] in Class2.2" in msgs


def test_most_likely_path_walks_the_tree():
    w = random_tree_rows(1)
    c = tree.to_conditional(w)
    c[0, tree.SLICES[1]] = [0.1, 0.8, 0.1]   # features
    c[0, tree.SLICES[2]] = [0.2, 0.8]        # not edge-on
    c[0, tree.SLICES[4]] = [0.7, 0.3]        # spiral
    c[0, tree.SLICES[6]] = [0.1, 0.9]        # nothing odd
    path = tree.most_likely_path(tree.to_weighted(c)[0])
    assert [s.question for s in path] == [1, 2, 3, 4, 10, 11, 5, 6]
    assert path[3].answer.column == "Class4.1" and path[3].probability == pytest.approx(0.7)
    assert path[3].reach == pytest.approx(0.8 * 0.8)
    assert tree.summary(tree.to_weighted(c)[0]).startswith("features/disk 80% · not edge-on 80%")


def test_every_real_row_obeys_the_tree(real_dir):
    ids, labels = data.read_labels(real_dir / "training_solutions_rev1.csv")
    assert len(ids) >= 1000 and tree.check_labels(labels) == []


def test_labels_for_charts():
    q3 = tree.QUESTION_BY_NUMBER[3]
    assert q3.label == "Q3 bar" and q3.title.startswith("Q3. Is there a sign of a bar")
    assert tree.answer_label("Class3.1") == "Q3 bar"
    assert len({tree.answer_label(c) for c in tree.COLUMNS}) == 37  # every answer tells itself apart
