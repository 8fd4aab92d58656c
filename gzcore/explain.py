"""Why did the model answer that? Captum attribution maps for one answer of one galaxy.

`explain(model, image, question=4, answer="Class4.1", method="gradcam")` returns an `Attribution`
whose `map` (H, W) says which pixels drove the answer; `overlay` paints it over the image. By default
the explained output is the *conditional* answer (its probability given the question was asked),
because the weighted one also carries the evidence for every question on the way to it.
`explain_output(model, image, output=k)` explains raw output k of any model: a target of a model of
other targets (gzcore.targets; in its standardised units, which moves with the target, so the map
is the target's), a classifier's logit for class k, or the tree's k-th weighted answer.

Maps are normalised per image, so they compare places within a galaxy, not between galaxies:
unsigned methods (saliency, smoothgrad, gradcam) give [0, 1], signed ones (integrated_gradients,
occlusion) give [-1, 1], positive where the pixels raise the answer. Grad-CAM keeps only regions
that raise the answer: an all-zero map means none does. Its resolution is the backbone's last
feature map, upsampled: 3x3 for dieleman at `gz train`'s default 56 px input and 4x4 at 64 px;
2x2 for the resnets and xresnets at both.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import (IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion,
                         Saliency)
from torch import nn

from . import augment, data, models, tree

# Each method's options and their defaults; `explain(..., **options)` overrides them.
METHODS: dict[str, dict] = {
    "saliency": {},
    "gradcam": {},
    "smoothgrad": {"nt_samples": 16, "stdevs": 0.15, "batch_size": 8},  # noise sd, [0, 1] units
    "integrated_gradients": {"n_steps": 32, "batch_size": 8, "baseline": "blur"},
    "occlusion": {"window": 8, "stride": 4, "batch_size": 32, "baseline": "black"},  # a pass per window
}
BASELINES = ("black", "blur")  # what integrated gradients starts from and occlusion fills in: 0, or a blurred copy
SIGNED = ("integrated_gradients", "occlusion")
DEFAULT_METHOD = "integrated_gradients"  # what Explain shows first: signed (BENCHMARKS §5 says why)


@dataclass(frozen=True, eq=False)  # eq=False: the map is an array
class Attribution:
    map: np.ndarray       # (H, W) float32: [0, 1], or [-1, 1] when `signed`
    method: str
    question: int | None  # the tree's question; None from explain_output
    answer: str | None    # column, e.g. "Class4.1"; None from explain_output
    conditional: bool     # True: explains P(answer | question asked); False: the weighted or raw output
    target_value: float   # the model's value of the explained output for this image
    signed: bool
    seconds: float
    output: int = 0       # index of the explained output (among the 37 answers, or the raw outputs)


def model_input(crop, input_size: int | None = None) -> torch.Tensor:
    """A uint8 crop (H, W, C) -> the model's input (C, s, s) in [0, 1]: its central `input_size`
    pixels, as in training and `evaluate.predict`."""
    x = augment.to_float(torch.tensor(np.asarray(crop))[None])  # a copy: crops may be read-only
    return augment.centre(x, input_size)[0]


def explained_outputs(model: models.GalaxyModel | models.Ensemble, conditional: bool):
    """The function Captum differentiates: images (B, C, H, W) -> (B, 37); the model itself unless
    `conditional`. An ensemble's conditional answers are the mean of its members'."""
    if not conditional:
        return model
    singles = models.members(model)

    def answers(x):
        return torch.stack([m.head.conditional(m.head.linear(m.embed(x)).float())
                            for m in singles]).mean(0)
    return answers


def _counting(forward, total: int, progress):
    """`forward` that reports the images it has seen as progress(done, total)."""
    if progress is None:
        return forward
    seen = 0

    def counted(x):
        nonlocal seen
        out = forward(x)
        seen += len(x)
        progress(min(seen, total), total)
        return out
    return counted


def _evaluations(method: str, x: torch.Tensor, opts: dict) -> int:
    """How many images `method` pushes through the model (the progress total)."""
    if method == "smoothgrad":
        return opts["nt_samples"]
    if method == "integrated_gradients":
        return opts["n_steps"]
    if method == "occlusion":  # Captum's window count: ceil((side - window) / stride) + 1 per axis
        per_axis = [math.ceil((side - opts["window"]) / opts["stride"]) + 1 for side in x.shape[-2:]]
        return 1 + per_axis[0] * per_axis[1]
    return 1


def _feature_map_layer(model: models.GalaxyModel) -> nn.Module:
    """The backbone's global pooling: its input is the last convolutional feature map, after the
    final block's residual sum and activation, for every backbone in `models.BACKBONES`."""
    pools = [m for m in model.backbone.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise ValueError(f"gradcam needs a backbone ending in global average pooling; "
                         f"{type(model.backbone).__name__} has none (use saliency instead)")
    return pools[-1]


def blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images (..., H, W) blurred by a Gaussian of `sigma` pixels (edges reflected)."""
    radius = max(1, math.ceil(3 * sigma))
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.device)
    flat = x.reshape(-1, 1, *x.shape[-2:])
    for dim in (-1, -2):  # separable: rows, then columns
        pad = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
        weight = kernel.view(1, 1, 1, -1) if dim == -1 else kernel.view(1, 1, -1, 1)
        flat = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, pad, mode="reflect"), weight)
    return flat.reshape(x.shape)


BLUR_SIGMA = 5 / 224  # a blurred copy: sigma as a share of the image side (Petsiuk et al.: 5 px at 224 px)


def _baseline(x: torch.Tensor, name: str) -> torch.Tensor:
    """The reference image of integrated gradients and occlusion (see BASELINES)."""
    if name == "black":
        return torch.zeros_like(x)
    if name == "blur":
        return blurred(x.detach(), BLUR_SIGMA * x.shape[-1])
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def _attribute(method: str, forward, model, x: torch.Tensor, target: int, opts: dict) -> torch.Tensor:
    """The raw (H, W) map of `method`, before normalisation."""
    if method == "saliency":
        return Saliency(forward).attribute(x, target=target, abs=True)[0].amax(0)
    if method == "smoothgrad":
        attr = NoiseTunnel(Saliency(forward)).attribute(
            x, nt_type="smoothgrad", nt_samples=opts["nt_samples"], stdevs=opts["stdevs"],
            nt_samples_batch_size=opts["batch_size"], target=target, abs=True)
        return attr[0].amax(0)
    if method == "gradcam":  # for an ensemble: the mean of its members' maps
        cams = [LayerGradCam(forward, _feature_map_layer(m)).attribute(
                    x, target=target, attribute_to_layer_input=True, relu_attributions=True)
                for m in models.members(model)]
        cam = torch.stack([LayerAttribution.interpolate(c, tuple(x.shape[-2:]), "bilinear")[0, 0]
                           for c in cams])
        return cam.mean(0)
    if method == "integrated_gradients":
        return IntegratedGradients(forward).attribute(
            x, baselines=_baseline(x, opts["baseline"]), target=target, n_steps=opts["n_steps"],
            internal_batch_size=opts["batch_size"])[0].sum(0)
    if method == "occlusion":
        c, w, s = x.shape[1], opts["window"], opts["stride"]
        return Occlusion(forward).attribute(
            x, sliding_window_shapes=(c, w, w), strides=(c, s, s), baselines=_baseline(x, opts["baseline"]),
            target=target, perturbations_per_eval=opts["batch_size"])[0].mean(0)
    raise AssertionError(method)


def _answer_column(values: torch.Tensor, question: int, answer: str | None) -> str:
    if question not in tree.QUESTION_BY_NUMBER:
        raise ValueError(f"question {question} does not exist; the tree has questions 1-11")
    columns = [a.column for a in tree.QUESTION_BY_NUMBER[question].answers]
    if answer is None:  # the top answer: same under conditional and weighted values
        return columns[int(values[tree.SLICES[question]].argmax())]
    if answer not in columns:
        raise ValueError(f"{answer!r} is not an answer to Q{question}; choose one of {', '.join(columns)}")
    return answer


def explain(model: models.GalaxyModel | models.Ensemble, image, question: int, answer: str | None = None,
            method: str = "saliency", conditional: bool = True, progress=None,
            **options) -> Attribution:
    """Attribute one answer of one galaxy to its pixels.

    `image`: the model's input, a (C, H, W) float tensor in [0, 1], or a uint8 (H, W, C) crop
    already cut to the model's input size (see `model_input`). `answer`: a column of `question`,
    by default the model's top answer. `progress(done, total)` is called as images go through the
    model (useful for smoothgrad, integrated_gradients and occlusion, which take many).
    `options` override `METHODS[method]`.

    Pass a loaded copy of the model (e.g. `checkpoint.load`), never the instance being trained: it
    runs in eval mode here, and its previous mode is restored afterwards. Weights are not changed.
    """
    if not all(isinstance(m.head, models.TreeHead) for m in models.members(model)):
        raise ValueError("explain needs a model with the decision-tree head (explain_output explains "
                         "any model's outputs)")
    chosen = {}

    def target_of(values):
        chosen["column"] = _answer_column(values, question, answer)
        return tree.COLUMN_INDEX[chosen["column"]]
    heat, value, target, seconds = _run(model, image, explained_outputs(model, conditional), target_of,
                                        method, options, progress)
    return Attribution(heat, method, question, chosen["column"], conditional, value, method in SIGNED,
                       seconds, target)


def explain_output(model: models.GalaxyModel | models.Ensemble, image, output: int,
                   method: str = "saliency", progress=None, **options) -> Attribution:
    """Attribute raw output `output` (an index of `model(x)`'s columns: a target, a class's logit, or
    one of the tree's weighted answers) of one galaxy to its pixels; as `explain` otherwise.
    `target_value` is the raw output (`targets.Task.decode` turns it into the target's units)."""
    def target_of(values):
        if not 0 <= output < len(values):
            raise ValueError(f"output {output} does not exist; the model has {len(values)} "
                             f"(0-{len(values) - 1})")
        return output
    heat, value, target, seconds = _run(model, image, model, target_of, method, options, progress)
    return Attribution(heat, method, None, None, False, value, method in SIGNED, seconds, target)


def _run(model, image, outputs, target_of, method: str, options: dict, progress):
    """(normalised map, the explained output's value, its index, seconds): the attribution of
    `outputs(x)[:, target_of(outputs(x)[0])]` by `method`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = set(options) - set(METHODS[method])
    if unknown:
        raise ValueError(f"{method} has no option(s) {', '.join(sorted(unknown))}; "
                         f"its options are {dict(METHODS[method]) or 'none'}")
    opts = {**METHODS[method], **options}
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:  # gradients are needed even if the caller runs under no_grad or inference_mode
        with torch.inference_mode(False), torch.enable_grad():
            image = torch.as_tensor(image)
            x = model_input(image) if image.dtype == torch.uint8 else image
            x = x.to(next(model.buffers()).device, torch.float32).clone()[None]
            x.requires_grad_()  # the only tensor whose gradient is taken
            with torch.no_grad():
                values = outputs(x)[0]
            target = target_of(values)
            forward = _counting(outputs, _evaluations(method, x, opts), progress)
            raw = _attribute(method, forward, model, x, target, opts).detach()
    finally:
        model.train(was_training)
    scale = raw.abs().max()
    heat = (raw / scale if scale > 0 else raw).cpu().numpy().astype(np.float32)
    return heat, float(values[target]), target, time.perf_counter() - start


# Colormaps sampled at 9 even steps from matplotlib's inferno and coolwarm (linear in between).
COLORMAPS: dict[str, np.ndarray] = {
    "inferno": np.array([(0, 0, 4), (33, 12, 74), (87, 16, 110), (138, 34, 106), (188, 55, 84),
                         (228, 90, 49), (249, 142, 9), (249, 203, 53), (252, 255, 164)], np.float32),
    "coolwarm": np.array([(59, 76, 192), (98, 130, 234), (141, 176, 254), (185, 208, 249),
                          (221, 220, 220), (245, 196, 172), (244, 152, 122), (221, 95, 75),
                          (180, 4, 38)], np.float32),
}


def overlay(image: np.ndarray, attribution_map: np.ndarray, alpha: float = 0.5,
            cmap: str = "inferno") -> np.ndarray:
    """The map, colour-mapped, blended over a uint8 image (H, W, 3 or 1) -> uint8 (H, W, 3).

    Opacity grows with |value| up to `alpha`, so unimportant pixels show the galaxy. "inferno" maps
    [0, 1] (for unsigned maps); "coolwarm" maps [-1, 1], blue negative, red positive (signed maps).
    """
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown colormap {cmap!r}; choose one of {', '.join(COLORMAPS)}")
    image = np.asarray(image)
    m = np.asarray(attribution_map, np.float32)
    if image.shape[:2] != m.shape:
        raise ValueError(f"image {image.shape[:2]} and map {m.shape} differ in size; "
                         f"pass the model input's pixels (model_input) as the image")
    rgb = np.broadcast_to(image[..., :3], (*m.shape, 3)).astype(np.float32)
    table = COLORMAPS[cmap]
    if cmap == "coolwarm":
        m = np.clip(m, -1, 1)
        position = (m + 1) / 2
    else:
        m = np.clip(m, 0, 1)
        position = m
    steps = np.linspace(0, 1, len(table))
    colour = np.stack([np.interp(position, steps, table[:, k]) for k in range(3)], axis=-1)
    weight = alpha * np.abs(m)[..., None]
    return np.round((1 - weight) * rgb + weight * colour).astype(np.uint8)


# ---------------------------------------------------------------- the map over the full image


def input_box(image, pp: data.Preprocess, input_size: int | None = None) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the pixels the model sees, as fractions of the image's width
    and height: the square `data.crop_of` resamples into the `pp.size` crop (the central one, or the
    ROI around the central source), narrowed to the crop's central `input_size` pixels (`model_input`).
    `image`: the image as `data.read_rgb` returns it (a PIL image), so that the ROI is found as the
    crop found it. Fractions hold at any resolution of the same image (the full-size cutout)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2  # non-square: crop_of takes the central square
    lo, hi = data.crop_box(image, pp)  # in pixels of that square
    s = input_size or pp.size
    step, first = (hi - lo) / pp.size, (pp.size - s) // 2  # crop pixel i covers [lo + i step, lo + (i + 1) step]
    a, b = lo + first * step, lo + (first + s) * step
    return (left + a) / w, (top + a) / h, (left + b) / w, (top + b) / h


def _resampling(n_out: int, start: float, stop: float, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear weights: output pixel j (centre j + 0.5) samples the input's n_in pixels
    spread over [start, stop), clamped at their edge."""
    u = ((np.arange(n_out) + 0.5 - start) / (stop - start) * n_in - 0.5).clip(0, n_in - 1)
    lo = np.floor(u).astype(int).clip(0, max(n_in - 2, 0))
    frac = u - lo
    weights = np.zeros((n_out, n_in), np.float32)
    weights[np.arange(n_out), lo] = 1 - frac
    weights[np.arange(n_out), np.minimum(lo + 1, n_in - 1)] += frac
    return weights


def overlay_full(picture: np.ndarray, attribution_map: np.ndarray, box: tuple[float, float, float, float],
                 alpha: float = 0.5, cmap: str = "inferno", outline=(255, 255, 255)) -> np.ndarray:
    """The map (s, s), upsampled bilinearly to the box it was computed on (`input_box`: fractions of
    the picture) and painted (`overlay`) over the uint8 picture (H, W, 3 or 1) at that place, with
    the box outlined in `outline` just outside it (about 1/200 of the picture's side) -> uint8
    (H, W, 3). Pixels whose centre lies outside the box keep their colour, but for the outline."""
    picture = np.asarray(picture)
    h, w = picture.shape[:2]
    out = np.array(np.broadcast_to(picture[..., :3], (h, w, 3)), np.uint8)
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    # the pixels whose centre lies in the box
    c0, c1 = max(0, math.ceil(x0 - 0.5)), min(w, math.ceil(x1 - 0.5))
    r0, r1 = max(0, math.ceil(y0 - 0.5)), min(h, math.ceil(y1 - 0.5))
    if c1 <= c0 or r1 <= r0:
        return out
    m = np.asarray(attribution_map, np.float32)
    rows = _resampling(r1 - r0, y0 - r0, y1 - r0, m.shape[0])
    cols = _resampling(c1 - c0, x0 - c0, x1 - c0, m.shape[1])
    out[r0:r1, c0:c1] = overlay(out[r0:r1, c0:c1], rows @ m @ cols.T, alpha, cmap)
    t = max(1, round(max(h, w) / 200))  # the outline's width
    ring = np.zeros((h, w), bool)
    ring[max(0, r0 - t):r1 + t, max(0, c0 - t):c1 + t] = True
    ring[r0:r1, c0:c1] = False
    out[ring] = outline
    return out


def display_scale(attribution_map: np.ndarray, percentile: float = 99.0) -> float:
    """The |value| at which a map's colours saturate when it is shown: the `percentile` of |map|
    (Smilkov et al. 2017 cap their maps at the 99th), or its maximum where that is 0 (Grad-CAM's
    mostly empty maps). Integrated gradients puts most of its mass in a few pixels: scaled by its
    maximum alone, the rest of the map is nearly transparent."""
    m = np.abs(np.asarray(attribution_map, np.float32))
    top = float(np.percentile(m, percentile)) if m.size else 0.0
    return top if top > 0 else (float(m.max()) if m.size and m.max() > 0 else 1.0)
