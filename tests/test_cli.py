"""The `gz` contract scripts rely on, run end to end on a tiny synthetic universe."""
import subprocess
import sys

import pandas as pd
import pytest
import torch

from gzcore import checkpoint, cli, data, tree


def gz(*args):
    return subprocess.run([sys.executable, "-m", "gzcore.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "m.pt"
    r = gz("train", "--data", synth_dir, "--epochs", 2, "--batch-size", 16, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_train_prints_a_final_table(trained):
    out, stdout = trained
    assert out.is_file() and "val RMSE" in stdout and "val RMSE, 8-view TTA" in stdout


def test_evaluate_prints_metrics_beside_the_baselines(trained, synth_dir, tmp_path):
    out, _ = trained
    table = tmp_path / "pred.csv"
    r = gz("evaluate", "--data", synth_dir, "--checkpoint", out, "--no-tta", "--out", table)
    assert r.returncode == 0, r.stderr
    for text in ("baseline: mean answer vector", "baseline: central pixel (linear)",
                 "baseline: average colour (linear)", "Q11 arm count"):
        assert text in r.stdout
    df = pd.read_csv(table)
    assert {"GalaxyID", "Class1.1", "crowd Class1.1", "rmse"} <= set(df.columns)


def test_predict_writes_a_kaggle_submission(trained, synth_dir, tmp_path):
    out, _ = trained
    sub = tmp_path / "sub.csv"
    r = gz("predict", "--data", synth_dir, "--checkpoint", out, "--out", sub)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(sub)
    assert list(df.columns) == ["GalaxyID", *tree.COLUMNS] and len(df) == 48
    assert tree.check_labels(df[list(tree.COLUMNS)].to_numpy(), tol=1e-4) == []


def test_predict_on_a_plain_folder_of_images(trained, synth_dir, tmp_path):
    out, _ = trained
    folder = tmp_path / "plain"
    folder.mkdir()
    for p in sorted((synth_dir / data.IMAGE_DIRS[0]).iterdir())[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "bad.jpg").write_bytes(b"broken")
    r = gz("predict", "--data", folder, "--checkpoint", out, "--out", tmp_path / "s.csv")
    assert r.returncode == 2 and "bad.jpg" in r.stderr and "Traceback" not in r.stderr
    r = gz("predict", "--data", folder, "--checkpoint", out, "--out", tmp_path / "s.csv", "--skip-bad")
    assert r.returncode == 0 and "bad.jpg" in r.stdout
    assert len(pd.read_csv(tmp_path / "s.csv")) == 3


def test_wrong_checkpoint_and_folder_get_clear_errors(trained, tmp_path, synth_dir):
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"nope")
    r = gz("evaluate", "--data", synth_dir, "--checkpoint", bogus)
    assert r.returncode == 2 and "x.pt" in r.stderr and "Traceback" not in r.stderr
    r = gz("predict", "--data", tmp_path, "--checkpoint", trained[0], "--out", tmp_path / "s.csv")
    assert r.returncode == 2 and "not a Galaxy Zoo folder" in r.stderr


def test_synth_writes_the_kaggle_layout(tmp_path):
    r = gz("synth", "--n", 5, "--out", tmp_path / "u", "--seed", 2)
    assert r.returncode == 0, r.stderr
    g = data.open_folder(tmp_path / "u")
    assert len(g) == 5


def test_ensemble_averages_members_and_refuses_a_leaky_one(trained, synth_dir, tmp_path):
    out, _ = trained
    other = tmp_path / "other.pt"
    r = gz("train", "--data", synth_dir, "--epochs", 1, "--batch-size", 16, "--init-seed", 5,
           "--no-tta", "--out", other)
    assert r.returncode == 0, r.stderr
    bigger = tmp_path / "bigger.pt"
    assert gz("train", "--data", synth_dir, "--epochs", 1, "--batch-size", 16, "--input-size", 64,
              "--crop", "centre", "--no-tta", "--out", bigger).returncode == 0
    crops = {ckpt["input_size"]: (ckpt["preprocess"]["crop"], ckpt["preprocess"]["crop_px"],
                                  ckpt["preprocess"]["size"]) for ckpt in map(checkpoint.read, (out, bigger))}
    assert crops == {56: ("roi", 160, 63), 64: ("centre", 232, 72)}
    r = gz("ensemble", out, bigger, "--data", synth_dir, "--out", tmp_path / "mixed.pt")
    assert r.returncode == 2 and "bigger.pt" in r.stderr and "same crops" in r.stderr
    r = gz("ensemble", out, other, "--data", synth_dir, "--out", tmp_path / "e.pt", "--half")
    assert r.returncode == 0, r.stderr
    stored = torch.load(tmp_path / "e.pt", weights_only=True)["model"]
    assert stored["members.0.head.linear.weight"].dtype == torch.float16
    assert "ensemble of 2" in r.stdout and "other.pt" in r.stdout and (tmp_path / "e.pt").is_file()
    r = gz("evaluate", "--data", synth_dir, "--checkpoint", tmp_path / "e.pt")
    assert r.returncode == 0 and "model ensemble" in r.stdout, r.stderr
    leaky = tmp_path / "leaky.pt"
    assert gz("train", "--data", synth_dir, "--epochs", 1, "--batch-size", 16, "--seed", 5,
              "--no-tta", "--out", leaky).returncode == 0
    r = gz("ensemble", out, leaky, "--data", synth_dir, "--out", tmp_path / "bad.pt")
    assert r.returncode == 2 and "leaky.pt" in r.stderr and "validation split" in r.stderr
    assert not (tmp_path / "bad.pt").exists()


def test_help_explains_every_command():
    text = cli.parser().format_help()
    for cmd in ("synth", "train", "ensemble", "evaluate", "predict"):
        assert cmd in text
    train_help = subprocess.run([sys.executable, "-m", "gzcore.cli", "train", "--help"],
                                capture_output=True, text=True).stdout
    assert "--minutes" in train_help and "--epochs" in train_help and "--skip-bad" in train_help
