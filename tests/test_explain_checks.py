"""Can a map be trusted (gzcore.explain_checks): removal tests (deletion, insertion, ROAD), cascading model
randomisation and the positive control, on tiny models whose answer is known; the Explain page's check
and `gz explain-check`."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_app import app_with, figures, show
from torch import nn

from gzcore import data, explain, explain_checks, models, tree
from gzcore.dashboard.navigation import EXPLAIN

torch.set_num_threads(2)  # as conftest's TINY


def _tiny(features: nn.Module, n: int) -> models.GalaxyModel:
    return models.GalaxyModel(features, models.TreeHead(n), [0.0] * 3, [1.0] * 3).eval()


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained to say "smooth" (Class1.1) as the left half of the image brightens."""
    torch.manual_seed(0)
    model = _tiny(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()),
                  32).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        x = torch.rand(32, 3, 16, 16)
        target = x[..., :8].mean((1, 2, 3))
        cond = model.head.conditional(model.head.linear(model.embed(x)))
        loss = ((cond[:, tree.COLUMN_INDEX["Class1.1"]] - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.slow
def test_the_check_leaves_the_users_model_and_random_state_alone_and_repeats(trained, image):
    model = trained.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    expected_draw = torch.rand(1)
    torch.manual_seed(7)
    first = explain_checks.check(model, image, 1, "Class1.1", "smoothgrad", nt_samples=4, batch_size=4)
    assert torch.rand(1) == expected_draw  # the caller's random state is untouched
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    again = explain_checks.check(model.eval(), image, 1, "Class1.1", "smoothgrad", nt_samples=4, batch_size=4)
    np.testing.assert_array_equal(first.randomisation.spearman_abs, again.randomisation.spearman_abs)
    for a, b in zip(first.curves, again.curves):
        np.testing.assert_array_equal(a.attributed, b.attributed)
        np.testing.assert_array_equal(a.random, b.random)


@pytest.mark.slow
def test_randomising_a_trained_model_decorrelates_its_saliency(trained, image):
    c = explain_checks.check(trained, image, 1, "Class1.1", "saliency")
    r = c.randomisation
    assert r.layers == ("head.linear", "backbone.3", "backbone.0")  # head first; batch norm goes with its conv
    assert list(r.steps) == [0, 1, 2, 3] and r.maps.shape == (4, 16, 16)
    assert r.spearman_abs[0] == pytest.approx(1.0) and r.ssim[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(r.spearman_signed, r.spearman_abs)  # saliency is unsigned
    assert list(r.depth) == [0, 1 / 3, 2 / 3, 1]
    assert r.full < 0.5 < r.spearman_abs[0]
    assert np.array_equal(r.maps[0], c.attribution.map)
    partial = explain_checks.check(trained, image, 1, "Class1.1", "saliency", at=[3])
    assert list(partial.randomisation.steps) == [0, 3]  # the same weights at step 3, fewer maps
    assert partial.randomisation.full == pytest.approx(r.full)
    assert c.verdict()


def _edges(x: torch.Tensor) -> np.ndarray:
    """A "method" that never looks at the model: the image's gradient magnitude."""
    grey = x.mean(0).numpy()
    return np.hypot(*np.gradient(grey))


def test_a_model_independent_map_fails_the_randomisation_check(trained, image):
    r = explain_checks.randomisation(trained, lambda m: _edges(image))
    assert len(r.layers) == 3
    np.testing.assert_allclose(r.spearman_abs, 1.0)
    np.testing.assert_allclose(r.ssim, 1.0)
    assert not r.independent


class _Patch(nn.Module):
    """The mean brightness of the top-left 4x4 pixels: the only thing the model reads."""

    def forward(self, x):
        return x[..., :4, :4].mean((1, 2, 3))[:, None]


def test_a_map_of_what_the_model_reads_beats_random_in_every_removal_test(monkeypatch):
    monkeypatch.setattr(explain, "BLUR_SIGMA", 0.2)  # at 16 px the literature's blur would barely touch the patch
    model = _tiny(_Patch(), 1)
    with torch.no_grad():
        model.head.linear.weight.zero_()
        model.head.linear.bias.zero_()
        model.head.linear.weight[tree.COLUMN_INDEX["Class1.1"]] = 8.0
    x = torch.full((3, 16, 16), 0.2)
    x[:, :4, :4] = 1.0
    c = explain_checks.check(model, x, 1, "Class1.1", "saliency")
    assert {(k.test, k.level) for k in c.curves} == {(t, level) for t in explain_checks.TESTS
                                                    for level in explain_checks.LEVELS}
    deletion = c.curve("deletion", "pixel")
    assert deletion.fractions[0] == 0 and deletion.fractions[-1] == 1
    assert len(deletion.fractions) == explain_checks.STEPS + 1
    assert deletion.attributed[0] == pytest.approx(c.attribution.target_value, rel=1e-5)
    assert deletion.attributed[1] < deletion.random[1]  # the patch is 1/16 of the image: gone after the first step
    assert deletion.attributed[-1] == pytest.approx(deletion.random[-1], rel=1e-5)  # all blurred: the same image
    for curve in c.curves:
        assert curve.beats_random, curve.name
    lerf = c.curve("road_lerf", "patch")
    assert lerf.attributed[-1] > lerf.random[-1]  # the patch outlives 90 % of the pixels
    # the head is the only layer, and randomising it leaves the saliency map on the patch: not trustworthy
    assert not c.passes and c.failures == [c.failures[-1]] and c.failures[-1].startswith("randomisation")
    assert "8 of 8 removal tests" in c.verdict()


def test_road_imputes_a_smooth_image_exactly_and_patches_go_whole(monkeypatch):
    monkeypatch.setattr(explain_checks, "ROAD_NOISE", 0.0)
    i, j = np.mgrid[:12, :12]
    ramp = np.stack([0.01 * i + 0.02 * j, 0.5 + 0 * i, 0.03 * i]).astype(np.float32)
    removed = np.zeros((12, 12), bool)
    removed[3:9, 2:7] = True
    filled = explain_checks.impute(ramp, removed, np.random.default_rng(0))
    np.testing.assert_allclose(filled, ramp, atol=1e-5)
    noisy = explain_checks.impute(ramp * 0 + np.random.default_rng(1).random((3, 12, 12)).astype(np.float32),
                                  removed, np.random.default_rng(0))
    assert np.isfinite(noisy).all()
    hot = np.zeros((8, 8))
    hot[5, 6] = 1.0
    first = explain_checks._order(hot, explain_checks.PATCH, np.random.default_rng(0))[:16]
    assert {(k // 8, k % 8) for k in first} == {(y, x) for y in range(4, 8) for x in range(4, 8)}


def test_ssim_of_a_map_with_itself_is_one_and_with_noise_low():
    rng = np.random.default_rng(0)
    smooth = np.outer(np.hanning(32), np.hanning(32))
    assert explain_checks.ssim(smooth, smooth) == pytest.approx(1.0)
    assert explain_checks.ssim(smooth, rng.random((32, 32))) < 0.3


def test_a_synthetic_bar_has_its_light_where_it_was_drawn():
    from gzcore import synthetic
    index = next(i for i in range(200) if synthetic.galaxy(2026, i)[0].bar >= 0.5)
    params, image = synthetic.galaxy(2026, index)
    light = synthetic.feature_light(2026, index, "bar")
    assert light.shape == image.shape[:2] and (light >= 0).all()
    mask = explain_checks.feature_mask(light)
    assert 0 < mask.mean() < 0.2  # a bar, not the whole cutout
    ys, xs = np.nonzero(mask)
    assert abs(ys.mean() - 212) < 20 and abs(xs.mean() - 212) < 20  # centred on the target
    spread = np.linalg.eigvalsh(np.cov(np.stack([xs, ys])))
    assert spread[1] > 2 * spread[0]  # elongated, as a bar is
    with pytest.raises(ValueError, match="no arms"):
        synthetic.feature_light(2026, next(i for i in range(200) if not synthetic.galaxy(2026, i)[0].arm_strength),
                                "arms")


@pytest.mark.slow
def test_the_default_map_of_the_shipped_model_falls_on_the_arms_it_finds():
    from gzcore import checkpoint
    model, ckpt = checkpoint.load(None)
    found = explain_checks.positive_control(model, data.Preprocess(**ckpt["preprocess"]), ckpt["input_size"],
                                            "arms", n=3)
    assert len(found) == 3 and (found.model >= 0.5).all()
    assert (found.share > found.random_share).all()


def test_spearman_ranks_ties_and_constants():
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert explain_checks.spearman(a, a ** 3) == pytest.approx(1.0)
    assert explain_checks.spearman(a, -a) == pytest.approx(-1.0)
    assert explain_checks.spearman(np.array([0, 0, 1, 2]), np.array([1, 1, 2, 3])) == pytest.approx(1.0)
    assert explain_checks.spearman(a, np.zeros_like(a)) == 0.0


def test_an_ensemble_randomises_its_members_together(image):
    torch.manual_seed(0)
    ensemble = models.Ensemble([_tiny(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 4)
                                for _ in range(2)]).eval()
    r = explain_checks.randomisation(ensemble, lambda m: explain.explain(m, image, 1, "Class1.1").map)
    assert r.layers == ("head.linear", "backbone.0") and len(r.spearman_abs) == 3


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


def test_the_explain_page_checks_the_map_on_demand(app):
    at = show(app, EXPLAIN)
    assert "explain_randomisation" not in figures(at)
    at.button(key="explain_check").click().run()
    assert not at.exception, [e.message for e in at.exception]
    shown = figures(at)
    assert {"explain_randomisation", "explain_removal"} <= set(shown)
    assert len(shown["explain_removal"]["data"]) == 16  # 8 tests, each the map's curve and random's
    x_axis = shown["explain_randomisation"]["layout"]["xaxis"]
    assert "head" in x_axis["title"]["text"] and "input" in x_axis["title"]["text"]  # depth, not layer names
    verdicts = [m.value for m in [*at.success, *at.warning] if "removal tests" in m.value]
    assert len(verdicts) == 1 and "rank correlation" in verdicts[0]
    assert at.get("image")  # the randomised maps as small images


@pytest.mark.slow
def test_gz_explain_check_for_one_galaxy_and_over_held_out_ones(dashboard_env, capsys):
    from gzcore import cli
    folder, ckpt = dashboard_env["GZ_DATA"], dashboard_env["GZ_CHECKPOINT"]
    galaxy = pd.read_csv(f"{folder}/{data.LABELS_FILE}").GalaxyID.iat[0]
    cli.main(["explain-check", "--data", folder, "--checkpoint", ckpt, "--galaxy", str(galaxy), "--answer",
              "Class1.2", "--method", "saliency"])
    one = capsys.readouterr().out
    assert f"saliency, galaxy {galaxy}, Class1.2" in one and "head.linear" in one and "head to input" in one
    assert "ROAD, least relevant first, patch level" in one and "rank correlation" in one
    cli.main(["explain-check", "--data", folder, "--checkpoint", ckpt, "--held-out", "2", "--method", "saliency",
              "gradcam", "--control", "0", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["default"] == explain.DEFAULT_METHOD and report["galaxies"] == 2
    for method in ("saliency", "gradcam"):
        assert 0 <= report[method]["passes"] <= 1
        assert set(report[method]["checks"]) == {f"{t}_{level}" for t in explain_checks.TESTS
                                                 for level in explain_checks.LEVELS} | {"randomisation"}
    cli.main(["explain-check", "--data", folder, "--checkpoint", ckpt, "--held-out", "1", "--control", "0"])
    assert f"default method: {explain.DEFAULT_METHOD}" in capsys.readouterr().out  # no --method: the default
    for bad, said in ((["--galaxy", str(galaxy), "--method", "lime"], "occlusion"),
                      (["--held-out", "0"], "1 or more")):
        with pytest.raises(SystemExit) as exit:
            cli.main(["explain-check", "--data", folder, "--checkpoint", ckpt, *bad])
        assert said in str(exit.value.code)
