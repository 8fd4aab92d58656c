import numpy as np
import pytest
import torch

from gzcore import checkpoint, data, evaluate, models, tree


DEEPER = {"resnet34", "resnet50", "xresnet34"}  # a family's deeper members: seconds each to build and run


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEPER else n
                                  for n in models.BACKBONES])
def test_every_model_obeys_the_tree_for_any_input(name):
    torch.manual_seed(0)
    model = models.build(name).eval()
    x = torch.rand(3, 3, 64, 64) * 4 - 2  # also far outside the training range
    with torch.no_grad():
        y = model(x).numpy()
    assert y.shape == (3, 37)
    assert tree.check_labels(y, tol=1e-5) == []


@pytest.mark.parametrize("name", ["dieleman", "xresnet18"])
def test_folded_batch_norms_give_the_same_answers(name):
    torch.manual_seed(0)
    model = models.build(name, width=8)
    model.train()(torch.rand(16, 3, 48, 48))  # batch-norm statistics away from their initial values
    model.eval()
    x = torch.rand(4, 3, 48, 48)
    fast = models.folded(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    with torch.no_grad():
        np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), atol=1e-5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the model itself is untouched


def test_tree_head_property_on_random_logits():
    """Whatever the features, each question sums to its reach weight and values lie in [0, 1]."""
    head = models.TreeHead(16)
    gen = torch.Generator().manual_seed(0)
    for scale in (0.01, 1.0, 100.0):
        with torch.no_grad():
            head.linear.weight.normal_(0, scale, generator=gen)
            y = head(torch.randn(256, 16, generator=gen) * scale).numpy()
        assert tree.check_labels(y, tol=1e-5) == []
        r = tree.reach(y)
        for i, q in enumerate(tree.QUESTIONS):
            np.testing.assert_allclose(y[:, tree.SLICES[q.number]].sum(1), r[:, i], atol=1e-5)


def test_regression_head_and_embedding():
    m = models.build("dieleman", head="regression", n_outputs=2).eval()
    x = torch.rand(2, 3, 64, 64)
    assert m(x).shape == (2, 2)
    assert m.embed(x).shape == (2, m.backbone.out_features)


def test_grayscale_input():
    m = models.build("resnet18", in_channels=1).eval()
    assert m(torch.rand(1, 1, 64, 64)).shape == (1, 37)


def test_unknown_model_or_head_names_the_choices():
    with pytest.raises(ValueError, match="dieleman"):
        models.build("vgg99")
    with pytest.raises(ValueError, match="unknown head 'trees'; choose one of tree, regression"):
        models.build("dieleman", head="trees")


@pytest.mark.parametrize("config", [
    {"name": "dieleman", "width": 8, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]},
    {"name": "xresnet18", "width": 8, "in_channels": 1},
    {"name": "dieleman", "head": "regression", "n_outputs": 2},
    {"name": "ensemble", "members": [{"name": "dieleman", "width": 8}, {"name": "xresnet18", "width": 8}]},
])
def test_a_model_carries_the_config_that_rebuilds_it(config, tmp_path):
    """checkpoint.save stores `model.config`; the model rebuilt from the file computes the same."""
    model = models.build(**config).eval()
    path = checkpoint.save(tmp_path / "m.pt", model, preprocess=data.Preprocess(), input_size=32)
    loaded, ckpt = checkpoint.load(path)
    assert ckpt["model_config"] == model.config and loaded.config == model.config
    x = torch.rand(2, config.get("in_channels", 3), 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def _save(path, name="dieleman"):
    m = models.build(name)
    return checkpoint.save(path, m, preprocess=data.Preprocess(), input_size=64), m


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    path, m = _save(tmp_path / "a.pt")
    loaded, ckpt = checkpoint.load(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m.eval()(x))
    assert ckpt["input_size"] == 64 and checkpoint.preprocess_of(ckpt) == data.Preprocess()


def test_wrong_checkpoints_say_what_differs(tmp_path):
    path, _ = _save(tmp_path / "a.pt")
    with pytest.raises(checkpoint.CheckpointError, match="holds a 'dieleman' model, not 'resnet18'"):
        checkpoint.load(path, expect_model="resnet18")
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["name"] = "resnet18"  # weights of one model under another's name
    torch.save(ckpt, tmp_path / "b.pt")
    with pytest.raises(checkpoint.CheckpointError, match="do not fit the 'resnet18' model"):
        checkpoint.load(tmp_path / "b.pt")
    torch.save(models.build().state_dict(), tmp_path / "c.pt")  # a bare state_dict
    with pytest.raises(checkpoint.CheckpointError, match="not a gzcore checkpoint"):
        checkpoint.load(tmp_path / "c.pt")
    (tmp_path / "d.pt").write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="d.pt"):
        checkpoint.load(tmp_path / "d.pt")


class _Boom:
    def __reduce__(self):
        return (print, ("code ran at load time",))


def test_loading_never_runs_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "payload": _Boom()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable gzcore checkpoint"):
        checkpoint.read(path)


def test_the_shipped_default_checkpoint_loads_offline():
    model, ckpt = checkpoint.load()
    assert ckpt["metrics"]["val_rmse"] < 0.1
    assert model(torch.rand(1, 3, ckpt["input_size"], ckpt["input_size"])).shape == (1, 37)


@pytest.mark.slow
@pytest.mark.parametrize("name", [checkpoint.DEFAULT_NAME, "ensemble.pt"])
def test_the_shipped_models_score_their_figures_on_galaxies_they_never_saw(real_dir, name):
    """Re-score the shipped models on the real galaxies their split held out, with 8-view TTA as
    `gz evaluate` and `gz predict` run them: the figures they store and checkpoints/README.md quotes,
    and ≤ 0.087 (`default.pt`: the student distilled from `ensemble.pt`)."""
    model, ckpt = checkpoint.load(checkpoint.default().with_name(name))
    held = checkpoint.data_for(ckpt, real_dir, labels=True)
    pred = evaluate.predict(model, held.crops, ckpt["input_size"], index=held.val_idx, tta=True)
    rmse = evaluate.rmse(pred, held.galaxies.labels[held.val_idx])
    assert len(held.val_idx) == ckpt["metrics"]["val_images"] == 574
    assert rmse == pytest.approx(ckpt["metrics"]["val_rmse_tta"], abs=2e-5)
    assert rmse <= 0.087


def test_width_option_where_the_family_has_one():
    narrow, wide = models.build("dieleman", width=8), models.build("dieleman", width=16)
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters())
    assert narrow(torch.rand(2, 3, 32, 32)).shape == (2, 37)
    assert models.has_width("xresnet18") and not models.has_width("resnet18")
    with pytest.raises(ValueError, match="no width option"):
        models.build("resnet18", width=8)
