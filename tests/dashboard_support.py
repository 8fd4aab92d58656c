"""A tiny synthetic universe and a quick checkpoint for the dashboard tests, built once per session
(both test files import the fixture; the second finds the files already there)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dashboard_env(tmp_path_factory):
    from gzcore import synthetic, train

    base = tmp_path_factory.getbasetemp() / "dashboard"
    data_dir, ckpt = base / "universe", base / "quick.pt"
    if not ckpt.is_file():  # 96 galaxies: enough for one training batch of 64 after the split
        synthetic.generate(data_dir, 96, seed=3)
        train.fit(data_dir, train.TrainConfig(epochs=1, batch_size=32, tta=False), out=ckpt,
                  cache_dir=base / "cache")
    return {"GZ_DATA": str(data_dir), "GZ_CHECKPOINT": str(ckpt)}
