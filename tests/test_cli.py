"""The `gz` contract scripts rely on, run end to end on a tiny synthetic universe (in this process:
`conftest.gz` calls `cli.main`)."""
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import gz, tiny_cli

from gzcore import checkpoint, cli, data, shipped, train, tree


@pytest.fixture(scope="module")
def trained(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "m.pt"
    r = gz("train", "--data", synth_dir, *tiny_cli(), "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


@pytest.mark.slow
def test_train_prints_a_final_table(trained):
    out, stdout = trained
    metrics = checkpoint.read(out)["metrics"]
    assert "dieleman (cpu, fp32, 2 threads)" in stdout  # what ran, as resolved
    printed = dict(re.findall(r"^(val RMSE.*?)  +(\S+)$", stdout, re.M))
    assert printed == {"val RMSE": f"{metrics['val_rmse']:.4f}",
                       "val RMSE, 8-view TTA": f"{metrics['val_rmse_tta']:.4f}"}


def test_evaluate_prints_metrics_beside_the_baselines(tiny_model, synth_dir, tmp_path):
    out = tiny_model
    table = tmp_path / "pred.csv"
    r = gz("evaluate", "--data", synth_dir, "--checkpoint", out, "--no-tta", "--out", table)
    assert r.returncode == 0, r.stderr
    for text in ("baseline: mean answer vector", "baseline: central pixel (linear)",
                 "baseline: average colour (linear)", "Q11 arm count"):
        assert text in r.stdout
    df = pd.read_csv(table)
    assert {"GalaxyID", "Class1.1", "crowd Class1.1", "rmse"} <= set(df.columns)


def test_predict_writes_a_kaggle_submission(tiny_model, synth_dir, tmp_path):
    out = tiny_model
    sub = tmp_path / "sub.csv"
    r = gz("predict", "--data", synth_dir, "--checkpoint", out, "--out", sub)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(sub)
    assert list(df.columns) == ["GalaxyID", *tree.COLUMNS] and len(df) == 48
    assert tree.check_labels(df[list(tree.COLUMNS)].to_numpy(), tol=1e-4) == []


def test_predict_on_a_plain_folder_of_images(tiny_model, synth_dir, tmp_path):
    out = tiny_model
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


def test_wrong_checkpoint_and_folder_get_clear_errors(tiny_model, tmp_path, synth_dir):
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"nope")
    r = gz("evaluate", "--data", synth_dir, "--checkpoint", bogus)
    assert r.returncode == 2 and "x.pt" in r.stderr and "Traceback" not in r.stderr
    r = gz("predict", "--data", tmp_path, "--checkpoint", tiny_model, "--out", tmp_path / "s.csv")
    assert r.returncode == 2 and "not a Galaxy Zoo folder" in r.stderr


def test_synth_writes_the_kaggle_layout(tmp_path):
    r = gz("synth", "--n", 5, "--out", tmp_path / "u", "--seed", 2)
    assert r.returncode == 0, r.stderr
    g = data.open_folder(tmp_path / "u")
    assert len(g) == 5


@pytest.mark.slow
def test_ensemble_averages_members_and_refuses_a_leaky_one(trained, synth_dir, tmp_path):
    out, _ = trained
    other = tmp_path / "other.pt"
    r = gz("train", "--data", synth_dir, *tiny_cli(1), "--init-seed", 5, "--no-tta", "--out", other)
    assert r.returncode == 0, r.stderr
    bigger = tmp_path / "bigger.pt"
    assert gz("train", "--data", synth_dir, *tiny_cli(1), "--input-size", 64, "--crop", "centre",
              "--no-tta", "--out", bigger).returncode == 0
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
    assert gz("train", "--data", synth_dir, *tiny_cli(1), "--seed", 5, "--no-tta",
              "--out", leaky).returncode == 0
    r = gz("ensemble", out, leaky, "--data", synth_dir, "--out", tmp_path / "bad.pt")
    assert r.returncode == 2 and "leaky.pt" in r.stderr and "validation split" in r.stderr
    assert not (tmp_path / "bad.pt").exists()


def test_every_option_of_every_command_is_explained():
    commands = cli.parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"synth", "train", "distill", "ensemble", "shrink", "evaluate", "predict", "lr-find",
                             "atlas", "oddballs", "compare", "explain-check", "serve", "catalog"}
    for name, command in commands.items():
        unexplained = [a.option_strings or a.dest for a in command._actions if not a.help]
        assert not unexplained, (name, unexplained)
    r = gz("train", "--help")
    assert r.returncode == 0 and "--minutes" in r.stdout and f"default {train.TrainConfig().epochs}" in r.stdout


def test_gz_train_defaults_are_train_configs_and_lr_find_takes_the_same_options():
    parse = cli.parser().parse_args
    assert cli._train_config(parse(["train", "--data", "d", "--out", "m.pt"]), "train") == train.TrainConfig()
    options = ["--data", "d", "--model", "xresnet18", "--width", "8", "--input-size", "40", "--crop",
               "centre", "--augment", "affine", "--precision", "fp32", "--threads", "1", "--lr", "1e-3"]
    lr_find = cli._train_config(parse(["lr-find", *options]), "lr-find")
    assert lr_find == cli._train_config(parse(["train", *options, "--out", "m.pt"]), "train")
    assert (lr_find.model, lr_find.width, lr_find.input_size, lr_find.preprocess.crop, lr_find.augment,
            lr_find.precision, lr_find.threads, lr_find.lr) == \
        ("xresnet18", 8, 40, "centre", "affine", "fp32", 1, 1e-3)


@pytest.mark.slow
def test_lr_find_suggests_a_rate(synth_dir):
    r = gz("lr-find", "--data", synth_dir, *tiny_cli())
    assert r.returncode == 0, r.stderr
    suggestion = float(r.stdout.split("suggested peak learning rate: ")[1].split()[0])
    assert 1e-5 < suggestion < 1.0 and "cpu, fp32, 2 threads" in r.stdout


def test_predict_without_checkpoint_uses_the_shipped_model(synth_dir, tmp_path):
    default, explicit = tmp_path / "default.csv", tmp_path / "explicit.csv"
    r = gz("predict", "--data", synth_dir, "--no-tta", "--out", default)
    assert r.returncode == 0, r.stderr
    assert gz("predict", "--data", synth_dir, "--no-tta", "--checkpoint", shipped.folder() / "default.pt",
              "--out", explicit).returncode == 0
    a, b = pd.read_csv(default), pd.read_csv(explicit)
    assert len(a) == 48 and a.equals(b)
    assert tree.check_labels(a[list(tree.COLUMNS)].to_numpy(), tol=1e-4) == []
    assert np.ptp(a["Class1.1"]) > 0.05  # a trained model tells these galaxies apart


def test_a_missing_shipped_model_is_a_clear_error(synth_dir, tmp_path, monkeypatch, capsys):
    """A non-editable install without the data files, or a checkout without checkpoints/."""
    monkeypatch.setattr(shipped, "CHECKOUT", tmp_path / "checkout")
    monkeypatch.setattr(shipped, "INSTALLED", tmp_path / "installed")
    assert cli.main(["predict", "--data", str(synth_dir), "--out", str(tmp_path / "s.csv")]) == 2
    assert "default.pt is not installed" in capsys.readouterr().err
    (tmp_path / "installed").mkdir()  # where `pip install .` puts the shipped models
    (tmp_path / "installed" / "default.pt").write_bytes(b"")
    assert checkpoint.default() == tmp_path / "installed" / "default.pt"
