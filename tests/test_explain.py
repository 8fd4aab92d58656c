"""Attribution maps (gzcore.explain) and "galaxies like this" (gzcore.neighbours), on random-init
models and tiny inputs."""
import numpy as np
import pytest
import torch
from torch import nn

from gzcore import explain, models, neighbours, tree

SLOW_METHODS = ("smoothgrad", "integrated_gradients", "occlusion")
FEWER = {"smoothgrad": {"nt_samples": 4, "batch_size": 2},  # quicker tests, still in batches
         "integrated_gradients": {"n_steps": 8, "batch_size": 4}}


@pytest.fixture(scope="module")
def model():
    # a random network's Grad-CAM can be negative everywhere (an all-zero map after its ReLU);
    # with this seed it is not, so every method has a map to normalise
    torch.manual_seed(1)
    return models.build("dieleman").eval()


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))


def _outputs(model, x):
    with torch.no_grad():
        return model(x[None])[0].numpy()


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_every_method_maps_every_input_pixel(model, image, method):
    a = explain.explain(model, image, question=1, method=method)
    assert a.map.shape == (32, 32) and a.map.dtype == np.float32
    assert np.isfinite(a.map).all()
    assert np.abs(a.map).max() == pytest.approx(1.0)
    assert a.map.min() >= (-1.0 if a.signed else 0.0)
    assert a.signed == (method in explain.SIGNED)
    assert (a.method, a.question, a.conditional) == (method, 1, True)


class _LeftHalf(nn.Module):
    def forward(self, x):
        return x[..., :x.shape[-1] // 2]


@pytest.mark.parametrize("method", ["saliency", *SLOW_METHODS])
def test_attributions_stay_on_the_pixels_the_model_reads(method):
    """A model that only sees the left half of the image: nothing may be credited to the right."""
    torch.manual_seed(0)
    backbone = nn.Sequential(_LeftHalf(), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = models.GalaxyModel(backbone, models.TreeHead(8), [0.0] * 3, [1.0] * 3).eval()
    a = explain.explain(model, torch.rand(3, 32, 32), question=1, method=method, **FEWER.get(method, {}))
    edge = 20 if method == "occlusion" else 16  # the 8 px window at x = 12 also covers 16-19
    assert (a.map[:, edge:] == 0).all()
    assert (a.map[:, :16] != 0).mean() > 0.5


def test_saliency_is_the_gradient_of_the_conditional_answer(model, image):
    a = explain.explain(model, image, question=3, answer="Class3.2")
    x = image[None].clone().requires_grad_()
    cond = model.head.conditional(model.head.linear(model.embed(x)))
    cond[0, tree.COLUMN_INDEX["Class3.2"]].backward()
    expected = x.grad[0].abs().amax(0)
    np.testing.assert_allclose(a.map, (expected / expected.max()).numpy(), atol=1e-5)


@pytest.mark.parametrize("question", [1, 4, 8, 11])
def test_default_answer_is_the_models_top_answer(model, image, question):
    y = _outputs(model, image)
    s = tree.SLICES[question]
    top = tree.COLUMNS[s.start + int(np.argmax(y[s]))]
    assert explain.explain(model, image, question).answer == top


def test_conditional_target_is_the_weighted_output_over_the_reach(model, image):
    y = _outputs(model, image)
    column = "Class11.2"  # deep in the tree: reached through Class1.2 -> 2.2 -> 4.1
    cond = explain.explain(model, image, 11, column, conditional=True)
    weighted = explain.explain(model, image, 11, column, conditional=False)
    assert weighted.target_value == pytest.approx(y[tree.COLUMN_INDEX[column]], rel=1e-5)
    assert cond.target_value == pytest.approx(y[tree.COLUMN_INDEX[column]] / y[tree.COLUMN_INDEX["Class4.1"]],
                                              rel=1e-4)
    assert cond.target_value > 2 * weighted.target_value
    assert not np.allclose(cond.map, weighted.map, atol=1e-3)


@pytest.mark.parametrize("name", ["dieleman", "resnet18", "xresnet18"])
def test_gradcam_works_on_every_backbone_family(name):
    torch.manual_seed(0)
    model = models.build(name).eval()
    x = torch.rand(3, 64, 64)
    maps = [explain.explain(model, x, 1, a.column, method="gradcam").map
            for a in tree.QUESTION_BY_NUMBER[1].answers]
    assert all(m.shape == (64, 64) and np.isfinite(m).all() and m.min() >= 0 for m in maps)
    # A question's conditional answers sum to 1, so their gradients, and Grad-CAMs before the ReLU,
    # sum to 0: some answer must light up somewhere.
    assert max(m.max() for m in maps) == pytest.approx(1.0)


def test_explain_runs_in_eval_mode_and_leaves_the_model_as_it_was(image):
    torch.manual_seed(0)
    model = models.build("dieleman").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    expected = _outputs(model, image)[tree.COLUMN_INDEX["Class1.1"]]
    model.train()
    for method in explain.METHODS:
        a = explain.explain(model, image, 1, "Class1.1", method=method, conditional=False,
                            **FEWER.get(method, {}))
        assert a.target_value == pytest.approx(expected, rel=1e-5)  # eval mode: BN stats, no dropout
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_explain_works_inside_inference_mode(model, image):
    with torch.inference_mode():
        a = explain.explain(model, image, 2)
    assert np.abs(a.map).max() == pytest.approx(1.0)


@pytest.mark.parametrize("method", SLOW_METHODS)
def test_slow_methods_report_progress_up_to_the_total(model, image, method):
    calls = []
    explain.explain(model, image, 1, method=method, progress=lambda done, total: calls.append((done, total)),
                    **FEWER.get(method, {}))
    assert len(calls) >= 2
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and calls[-1][0] == calls[-1][1]


def test_a_uint8_crop_gives_the_same_map_as_its_float_input(model):
    crop = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    x = explain.model_input(crop, 32)
    assert x.shape == (3, 32, 32)
    np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), crop[4:36, 4:36] / np.float32(255))
    np.testing.assert_array_equal(explain.explain(model, crop[4:36, 4:36], 1).map,
                                  explain.explain(model, x, 1).map)


def test_bad_arguments_name_the_choices(model, image):
    with pytest.raises(ValueError, match="gradcam"):
        explain.explain(model, image, 1, method="lime")
    with pytest.raises(ValueError, match="Class2.1"):
        explain.explain(model, image, 2, "Class1.1")
    with pytest.raises(ValueError, match="n_steps"):
        explain.explain(model, image, 1, method="integrated_gradients", steps=8)
    with pytest.raises(ValueError, match="1-11"):
        explain.explain(model, image, 12)


@pytest.mark.parametrize("method", ["saliency", "gradcam", "integrated_gradients"])
def test_explain_output_attributes_any_models_raw_output(image, method):
    """A model of other targets (regression head, 3 outputs): output k's map and raw value."""
    torch.manual_seed(0)
    model = models.build("dieleman", head="regression", n_outputs=3).eval()
    a = explain.explain_output(model, image, 2, method, **FEWER.get(method, {}))
    assert a.map.shape == (32, 32) and np.isfinite(a.map).all()
    assert np.abs(a.map).max() == pytest.approx(1.0) or (method == "gradcam" and not a.map.any())  # see above
    assert (a.question, a.answer, a.output) == (None, None, 2)
    assert a.target_value == pytest.approx(_outputs(model, image)[2], rel=1e-5)
    if method == "saliency":  # the gradient of that output, as explain's of an answer
        x = image[None].clone().requires_grad_()
        model(x)[0, 2].backward()
        expected = x.grad[0].abs().amax(0)
        np.testing.assert_allclose(a.map, (expected / expected.max()).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="has 3"):
        explain.explain_output(model, image, 3)
    with pytest.raises(ValueError, match="explain_output"):
        explain.explain(model, image, 1)


def test_overlay_blends_by_strength():
    img = np.full((8, 8, 3), 100, np.uint8)
    heat = np.zeros((8, 8), np.float32)
    heat[0, 0], heat[0, 1] = 1.0, -1.0
    out = explain.overlay(img, heat, alpha=1.0)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[1:] == 100).all()  # zero attribution leaves the galaxy visible
    assert tuple(out[0, 0]) == (252, 255, 164)  # inferno's top colour at full strength
    cw = explain.overlay(img, heat, alpha=1.0, cmap="coolwarm")
    assert cw[0, 1, 2] > cw[0, 1, 0] and cw[0, 0, 0] > cw[0, 0, 2]  # negative blue, positive red
    gray = explain.overlay(img[..., :1], heat, alpha=0.5)
    assert gray.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="differ"):
        explain.overlay(img, np.zeros((4, 4)))


# ------------------------------------------------------------------ neighbours


def test_embeddings_are_unit_rows_of_the_centre_crop(model):
    crops = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    e = neighbours.embed(model, crops, 32, batch_size=2)
    assert e.shape == (5, model.backbone.out_features) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, rtol=1e-5)
    border = crops.copy()
    border[:, :4] = 0  # outside the central 32 pixels
    np.testing.assert_allclose(neighbours.embed(model, border, 32), e, atol=1e-6)


def test_nearest_is_the_top_k_by_cosine_similarity_without_the_query():
    e = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    idx, sims = neighbours.nearest(e, 7, k=5)
    full = e @ e[7]
    full[7] = -np.inf
    np.testing.assert_array_equal(idx, np.argsort(-full)[:5])
    np.testing.assert_allclose(sims, full[idx])
    assert 7 not in idx and (np.diff(sims) <= 0).all()
    idx_v, sims_v = neighbours.nearest(e, 3 * e[7], k=1)  # a vector query is normalised, not excluded
    assert idx_v[0] == 7 and sims_v[0] == pytest.approx(1.0)


def test_a_duplicated_galaxy_is_its_own_nearest_neighbour():
    # Random-init CNN features are nearly parallel for every image; a thumbnail is not.
    thumbnail = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
    model = models.GalaxyModel(thumbnail, models.TreeHead(48), [0.5] * 3, [0.25] * 3)
    crops = np.random.default_rng(0).integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    crops = np.concatenate([crops, crops[3:4]])  # row 12 repeats row 3
    idx, sims = neighbours.nearest(neighbours.embed(model, crops, 32, batch_size=5), 3, k=3)
    assert idx[0] == 12 and sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] < 0.9
