"""Can a map be trusted (gzcore.explain_checks): cascading model randomisation and deletion curves, on
tiny models whose answer is known, and the Explain page's check."""
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import gz
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
    np.testing.assert_array_equal(first.randomisation.spearman, again.randomisation.spearman)
    np.testing.assert_array_equal(first.deletion.attributed, again.deletion.attributed)


def test_randomising_a_trained_model_decorrelates_its_saliency(trained, image):
    c = explain_checks.check(trained, image, 1, "Class1.1", "saliency")
    r = c.randomisation
    assert r.layers == ("head.linear", "backbone.3", "backbone.0")  # head first; batch norm goes with its conv
    assert list(r.steps) == [0, 1, 2, 3] and r.maps.shape == (4, 16, 16)
    assert r.spearman[0] == pytest.approx(1.0)
    assert r.full < 0.5 < r.spearman[0]
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
    np.testing.assert_allclose(r.spearman, 1.0)
    assert r.full >= explain_checks.DEPENDENT_BELOW  # the verdict's threshold calls it image structure


class _Patch(nn.Module):
    """The mean brightness of the top-left 4x4 pixels: the only thing the model reads."""

    def forward(self, x):
        return x[..., :4, :4].mean((1, 2, 3))[:, None]


def test_deleting_the_attributed_pixels_drops_the_answer_faster_than_random():
    model = _tiny(_Patch(), 1)
    with torch.no_grad():
        model.head.linear.weight.zero_()
        model.head.linear.bias.zero_()
        model.head.linear.weight[tree.COLUMN_INDEX["Class1.1"]] = 8.0
    x = torch.full((3, 16, 16), 0.2)
    x[:, :4, :4] = 1.0
    c = explain_checks.check(model, x, 1, "Class1.1", "saliency")
    d = c.deletion
    assert d.fractions[0] == 0 and d.fractions[-1] == 1 and len(d.fractions) == explain_checks.STEPS + 1
    assert d.attributed[0] == pytest.approx(c.attribution.target_value, rel=1e-5)
    assert d.attributed[1] < d.random[1]  # the patch is 1/16 of the image: gone after the first step
    assert d.attributed[-1] == pytest.approx(d.random[-1], rel=1e-5)  # everything replaced: the same image
    assert d.auc < d.random_auc
    assert "top pixels" in c.verdict()


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
    assert r.layers == ("head.linear", "backbone.0") and len(r.spearman) == 3


@pytest.fixture
def app(dashboard_env, monkeypatch):
    return app_with(dashboard_env, monkeypatch)


def test_the_explain_page_checks_the_map_on_demand(app):
    at = show(app, EXPLAIN)
    assert "explain_randomisation" not in figures(at)
    at.button(key="explain_check").click().run()
    assert not at.exception, [e.message for e in at.exception]
    shown = figures(at)
    assert {"explain_randomisation", "explain_deletion"} <= set(shown)
    assert len(shown["explain_deletion"]["data"]) == 2  # the map's curve and random's
    assert any(m.value.startswith("**") and "rank correlation" in m.value for m in at.markdown)
    assert at.get("image")  # the randomised maps as small images


def test_gz_explain_check_for_one_galaxy_and_over_held_out_ones(dashboard_env):
    folder, ckpt = dashboard_env["GZ_DATA"], dashboard_env["GZ_CHECKPOINT"]
    galaxy = pd.read_csv(f"{folder}/{data.LABELS_FILE}").GalaxyID.iat[0]
    one = gz("explain-check", "--data", folder, "--checkpoint", ckpt, "--galaxy", galaxy, "--answer", "Class1.2")
    assert one.returncode == 0, one.stderr[-2000:]
    assert f"saliency, galaxy {galaxy}, Class1.2" in one.stdout and "head.linear" in one.stdout
    assert "area" in one.stdout and "rank correlation" in one.stdout
    many = gz("explain-check", "--data", folder, "--checkpoint", ckpt, "--held-out", 2, "--method", "saliency",
              "gradcam")
    assert many.returncode == 0, many.stderr[-2000:]
    assert "2 held-out galaxies" in many.stdout and "gradcam" in many.stdout
    bad = gz("explain-check", "--data", folder, "--checkpoint", ckpt, "--galaxy", galaxy, "--method", "lime")
    assert bad.returncode != 0 and "occlusion" in bad.stderr
