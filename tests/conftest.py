"""Shared fixtures: tiny synthetic folders for unit tests, the real sample where realism matters."""
import os
from pathlib import Path

import numpy as np
import pytest

REAL = Path(os.environ.get("GZ_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "galaxy-zoo-2014"))


@pytest.fixture(scope="session")
def real_dir():
    if not (REAL / "training_solutions_rev1.csv").is_file():
        pytest.skip(f"real Galaxy Zoo sample not found at {REAL} (set GZ_REAL_DATA to a Kaggle-layout folder)")
    return REAL


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes decoded-crop caches to a temporary folder, never to ~/.cache."""
    monkeypatch.setenv("GZ_CACHE", str(tmp_path_factory.getbasetemp() / "gzcache"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A 48-galaxy synthetic universe in the Kaggle layout (built once per session)."""
    from gzcore import synthetic
    return synthetic.generate(tmp_path_factory.mktemp("synth") / "universe", 48, seed=1)


def random_tree_rows(n, seed=0):
    """Random label rows that obey the tree (conditional Dirichlet draws, weighted)."""
    from gzcore import tree
    rng = np.random.default_rng(seed)
    cond = np.concatenate([rng.dirichlet(np.ones(len(q.answers)), n) for q in tree.QUESTIONS], axis=1)
    return tree.to_weighted(cond)
