"""Shared fixtures and the one tiny training configuration every test trains with.

Precision and threads are pinned (fp32, 2 threads), so a test gives the same verdict on a CPU with
AVX512-BF16 (where `precision="auto"` picks bf16) as on one without; `GZ_CPU_BF16=1|0` forces the
detection either way, to prove it."""
import contextlib
import io
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import REAL_DATA, ROOT  # noqa: F401  (ROOT: imported by the test modules)
from gzcore import cli, data, train

# the one tiny training configuration of the suite; tests change fields with dataclasses.replace
TINY = train.TrainConfig(epochs=2, batch_size=16, input_size=32, val_fraction=0.25, tta=False,
                         preprocess=data.Preprocess(crop="centre", crop_px=232, size=36),
                         precision="fp32", threads=2)


# the dashboard tests' model: one epoch with `gz train`'s default crop and input, TINY's precision
DASHBOARD = replace(train.TrainConfig(), epochs=1, batch_size=32, tta=False, precision=TINY.precision,
                    threads=TINY.threads)


def tiny_cli(epochs: int = TINY.epochs) -> list[str]:
    """The options `gz train` gets in tests: TINY's precision, threads and batch size (the crop and
    input stay `gz train`'s defaults)."""
    return ["--epochs", str(epochs), "--batch-size", str(TINY.batch_size), "--precision",
            TINY.precision, "--threads", str(TINY.threads)]


def gz(*args) -> subprocess.CompletedProcess:
    """`gz ARGS` run in this process (`cli.main`), as `gz_process` runs it in a fresh one but without
    its ~6 s of imports: its exit status (a `sys.exit(message)` is 1 with the message on stderr, as
    Python gives it), stdout and stderr as text. An exception gz lets through fails the test (in a
    process it would be a traceback). Torch's thread count is put back afterwards."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(map(str, args)))
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                status = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                status = 1
        finally:
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["gz", *map(str, args)], status, out.getvalue(), err.getvalue())


def gz_process(*args) -> subprocess.CompletedProcess:
    """`gz ARGS` in a fresh process, as a script calls it (output captured as text): for tests about
    the process itself (its exit under a signal, torchrun, a server); the others use `gz`."""
    return subprocess.run([sys.executable, "-m", "gzcore.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="session")
def real_dir():
    if not (REAL_DATA / "training_solutions_rev1.csv").is_file():
        pytest.skip(f"real Galaxy Zoo sample not found at {REAL_DATA} (set GZ_REAL_DATA to a "
                    f"Kaggle-layout folder)")
    return REAL_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes decoded-crop caches to a temporary folder, never to ~/.cache."""
    monkeypatch.setenv("GZ_CACHE", str(tmp_path_factory.getbasetemp() / "gzcache"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A 48-galaxy synthetic universe in the Kaggle layout (built once per session)."""
    from gzcore import synthetic
    return synthetic.generate(tmp_path_factory.mktemp("synth") / "universe", 48, seed=1)


@pytest.fixture(scope="session")
def tiny_model(synth_dir, tmp_path_factory):
    """A checkpoint of TINY trained one epoch on synth_dir (about a second): the model of every test
    that needs a trained one and its split but is not about training."""
    out = tmp_path_factory.mktemp("tiny") / "m.pt"
    train.fit(synth_dir, replace(TINY, epochs=1), out=out)
    return out


@pytest.fixture(scope="session")
def universe400(tmp_path_factory):
    """A 400-galaxy synthetic universe: enough for a tiny model to learn (learning tests)."""
    from gzcore import synthetic
    return synthetic.generate(tmp_path_factory.mktemp("synth400") / "universe", 400, seed=5)


@pytest.fixture(scope="session")
def shared_data(real_dir):
    """`../shared/data` (beside the real Kaggle sample), for the other real sets."""
    return real_dir.parent


@pytest.fixture(scope="session")
def dashboard_env(tmp_path_factory):
    """A 96-galaxy synthetic universe and a one-epoch checkpoint, as the environment the dashboard
    reads (GZ_DATA, GZ_CHECKPOINT)."""
    from gzcore import synthetic
    base = tmp_path_factory.mktemp("dashboard")
    data_dir, ckpt = base / "universe", base / "quick.pt"
    synthetic.generate(data_dir, 96, seed=3)  # enough for one batch of 32 after the split
    train.fit(data_dir, DASHBOARD, out=ckpt, cache_dir=base / "cache")
    return {"GZ_DATA": str(data_dir), "GZ_CHECKPOINT": str(ckpt)}


@pytest.fixture(scope="session")
def target_env(dashboard_env, tmp_path_factory):
    """A regression model of `oh` = 8.4 + the crowd's Class1.1 (one epoch, dashboard_env's universe)
    and its labels CSV, where 4 galaxies have no value (unknown)."""
    base = tmp_path_factory.mktemp("target")
    crowd = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}")
    labels = pd.DataFrame({"id": crowd.GalaxyID, "oh": 8.4 + crowd["Class1.1"]})
    labels.loc[:3, "oh"] = np.nan
    labels.to_csv(base / "oh.csv", index=False)
    train.fit(dashboard_env["GZ_DATA"], replace(DASHBOARD, labels=str(base / "oh.csv"), targets=("oh",)),
              out=base / "oh.pt", cache_dir=base / "cache")
    return {"GZ_DATA": dashboard_env["GZ_DATA"], "GZ_CHECKPOINT": str(base / "oh.pt"),
            "labels": str(base / "oh.csv")}


@pytest.fixture(scope="session")
def partial_dir(dashboard_env, tmp_path_factory):
    """dashboard_env's universe with partial labels: Q1, Q2, Q6, Q7 and Q8 only, Q8 unknown for 10."""
    folder = shutil.copytree(dashboard_env["GZ_DATA"], tmp_path_factory.mktemp("partial") / "universe")
    crowd = pd.read_csv(folder / data.LABELS_FILE)
    kept = [c for c in crowd.columns[1:] if c.split(".")[0] in [f"Class{n}" for n in (1, 2, 6, 7, 8)]]
    crowd = crowd[["GalaxyID", *kept]]
    crowd.loc[:9, [c for c in kept if c.startswith("Class8")]] = np.nan
    crowd.to_csv(folder / data.LABELS_FILE, index=False)
    return folder


def random_tree_rows(n, seed=0):
    """Random label rows that obey the tree (conditional Dirichlet draws, weighted)."""
    from gzcore import tree
    rng = np.random.default_rng(seed)
    cond = np.concatenate([rng.dirichlet(np.ones(len(q.answers)), n) for q in tree.QUESTIONS], axis=1)
    return tree.to_weighted(cond)


@pytest.fixture(scope="module")
def url(dashboard_env, tmp_path_factory):
    """The browser tests' `streamlit run app.py` on the dashboard data, with a crop cache of its own."""
    from benchmarks.browser import server
    with server({**dashboard_env, "GZ_CACHE": str(tmp_path_factory.mktemp("gzcache"))}) as base:
        yield base
