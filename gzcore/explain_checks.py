"""Can an attribution map be trusted? The checks of the literature, for any map of gzcore.explain.

Removal: what the model loses when the map's pixels go, against `RANDOM_ORDERS` seeded random orders
(the baseline; ties in a map are broken at random too). Each test at pixel level and at patch level
(`PATCH` x `PATCH` squares ranked by their summed attribution):
- deletion and insertion (Petsiuk et al. 2018): the most-attributed pixels are replaced by a blurred
  copy of the image (explain.blurred) first (the explained output should fall fast: a smaller area under its curve than
  random's), or, starting from the blurred copy, put back first (it should rise fast: a larger area);
- ROAD (Rong et al. 2022): removed pixels are imputed from their neighbours by noisy linear
  imputation, so that a curve measures the information removed rather than the artefact of a grey or
  blurred hole; most-relevant first (MoRF: should fall faster than random) and least-relevant first
  (LeRF: should stay higher).
Signed maps rank by their signed value: "most relevant" is the most positive (raises the answer).

Model randomisation (Adebayo et al. 2018): the model's weights are re-initialised layer by layer, from
the head down to the first convolution (cascading), on a deep copy; each step's map is compared with
the original by the Spearman rank correlation of |map| and of the signed map, and by the SSIM of |map|.
A layer is a convolution or linear layer with the parametrised modules after it (its batch norm);
re-initialising uses each module's `reset_parameters` (N(0, 1) for parameters of a module without one).

A map *passes* on a galaxy when it beats random on all eight removal curves and, with every layer
randomised, the rank correlation of the map as Explain draws it (signed for signed methods, whose
colour says which pixels raise or lower the answer; |map| for the others) is below `RANDOMISED_BELOW`
in size (a sign-flipped copy is no more independent of the weights than the original). |map| of a
signed method is reported beside it: for integrated gradients it keeps the layout of the image's
light, because the method multiplies each gradient by the pixel's difference from the baseline.

Positive control (`positive_control`): on synthetic galaxies, whose bar or arms we rendered, the share
of the map's positive attribution that falls on the feature, against a random map's share (the
feature's area).

Everything runs on deep copies of the model in eval mode, on the CPU in float32, seeded: the same
inputs give the same figures, and the caller's model is never touched.
"""
from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
import torch
from torch import nn

from . import explain, models, tree

STEPS = 20              # deletion and insertion: 0, 1/20, ..., all of the pixels
ROAD_FRACTIONS = np.round(np.arange(0, 1, 0.1), 2)  # ROAD: 0-90 % removed (as Rong et al.; 100 % has nothing to impute from)
RANDOM_ORDERS = 3       # random orders averaged into each baseline curve
PATCH = 4               # patch level: 4x4-pixel squares (16x16 of them at 64 px)
ROAD_NOISE = 0.01       # ROAD: noise added to imputed pixels, in units of the image's standard deviation
RANDOMISED_BELOW = 0.2  # passing: rank correlation with the fully randomised model's map below this in size
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

# test -> True when the map's curve should lie *below* random's (the output falls faster)
TESTS = {"deletion": True, "insertion": False, "road_morf": True, "road_lerf": False}
LEVELS = {"pixel": 1, "patch": PATCH}
TEST_NAMES = {"deletion": "deletion", "insertion": "insertion", "road_morf": "ROAD, most relevant first",
              "road_lerf": "ROAD, least relevant first"}


@dataclass(frozen=True, eq=False)  # eq=False: arrays
class Randomisation:
    layers: tuple[str, ...]      # in the order randomised, the head first; step k has randomised layers[:k]
    steps: np.ndarray            # (n,) the steps mapped, 0 (the model as it is) first
    spearman_abs: np.ndarray     # (n,) rank correlation of |map| at each step with the original's (1 at step 0)
    spearman_signed: np.ndarray  # (n,) the same for the signed maps (= spearman_abs for unsigned methods)
    ssim: np.ndarray             # (n,) structural similarity of |map| with the original's
    maps: np.ndarray             # (n, H, W) the map at each step
    signed: bool                 # the maps are signed: judged by spearman_signed (else spearman_abs)

    def at(self, step: int, figure: str = "spearman_abs") -> float:
        return float(getattr(self, figure)[list(self.steps).index(step)])

    @property
    def depth(self) -> np.ndarray:
        """(n,) how deep each step's randomisation reaches: 0 (none) to 1 (down to the input)."""
        return self.steps / len(self.layers)

    @property
    def full(self) -> float:
        """|map|'s correlation with every layer randomised."""
        return self.at(len(self.layers))

    @property
    def full_signed(self) -> float:
        return self.at(len(self.layers), "spearman_signed")

    @property
    def full_ssim(self) -> float:
        return self.at(len(self.layers), "ssim")

    @property
    def full_as_drawn(self) -> float:
        """The correlation of the map as Explain draws it (signed or |map|), every layer randomised."""
        return self.full_signed if self.signed else self.full

    @property
    def independent(self) -> bool:
        """Does the map as drawn fall apart once every weight is random (|correlation| < RANDOMISED_BELOW)?"""
        return abs(self.full_as_drawn) < RANDOMISED_BELOW


@dataclass(frozen=True, eq=False)
class Curve:
    """One removal test of one map: the explained output as pixels go in the map's order and in random
    orders (their mean)."""
    test: str               # a key of TESTS
    level: str              # a key of LEVELS
    fractions: np.ndarray   # share of the pixels removed (or, for insertion, put back)
    attributed: np.ndarray  # the explained output, in the map's order
    random: np.ndarray      # the same, mean over RANDOM_ORDERS random orders

    @property
    def area(self) -> float:
        return float(np.trapezoid(self.attributed, self.fractions))

    @property
    def random_area(self) -> float:
        return float(np.trapezoid(self.random, self.fractions))

    @property
    def beats_random(self) -> bool:
        return self.area < self.random_area if TESTS[self.test] else self.area > self.random_area

    @property
    def name(self) -> str:
        return f"{TEST_NAMES[self.test]}, {self.level} level"


@dataclass(frozen=True, eq=False)
class Check:
    attribution: explain.Attribution  # the original map (seeded: smoothgrad's noise is drawn with `seed`)
    randomisation: Randomisation
    curves: tuple[Curve, ...]         # one per (test, level)
    seconds: float

    def curve(self, test: str, level: str = "pixel") -> Curve:
        return next(c for c in self.curves if c.test == test and c.level == level)

    @property
    def failures(self) -> list[str]:
        """What the map failed, in words; empty when it passes."""
        r = self.randomisation
        failed = [f"{c.name}: no better than random" for c in self.curves if not c.beats_random]
        if not r.independent:
            failed.append(f"randomisation: still correlated with the original once every layer is random "
                          f"(Spearman {r.full_as_drawn:.2f})")
        return failed

    @property
    def passes(self) -> bool:
        return not self.failures

    def verdict(self) -> str:
        """One line in plain words."""
        beaten = sum(c.beats_random for c in self.curves)
        r = self.randomisation
        weights = f"with every layer randomised its rank correlation with the original is {r.full_as_drawn:.2f}"
        if r.signed:
            weights += f" (|map|: {r.full:.2f}, the layout of the image's light)"
        if self.passes:
            return (f"Passes here: removing its pixels beats random orders in all {len(self.curves)} removal tests, "
                    f"and {weights}.")
        return (f"Fails here: it beats random orders in {beaten} of {len(self.curves)} removal tests, and {weights} "
                f"(passing needs all {len(self.curves)}, and a correlation below {RANDOMISED_BELOW}). "
                f"Failed: {'; '.join(self.failures)}.")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (ties get their mean rank). A constant map has no
    ranking: its correlation with anything is 0."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / norm) if norm > 0 else 0.0


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    starts = np.r_[True, v[order][1:] != v[order][:-1]]  # the first of each run of equal values
    first = np.flatnonzero(starts)
    mean_rank = first + (np.diff(np.r_[first, len(v)]) - 1) / 2
    ranks = np.empty(len(v))
    ranks[order] = mean_rank[np.cumsum(starts) - 1]
    return ranks


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Structural similarity (Wang et al. 2004) of two maps scaled to [0, 1] by their own maximum,
    mean over `window`-pixel square windows (scikit-image's default form)."""
    a, b = (np.asarray(m, np.float64) for m in (a, b))
    a, b = (m / m.max() if m.max() > 0 else m for m in (a, b))
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mean = lambda m: scipy.ndimage.uniform_filter(m, window, mode="reflect")  # noqa: E731
    ma, mb = mean(a), mean(b)
    n = window * window
    va, vb, cov = [(mean(p) - q) * n / (n - 1) for p, q in ((a * a, ma * ma), (b * b, mb * mb), (a * b, ma * mb))]
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return float(s.mean())


def layers(model: models.GalaxyModel) -> list[tuple[str, list[nn.Module]]]:
    """(name, modules) of each weight layer, input to output (module registration order): a
    convolution or linear layer and the parametrised modules after it up to the next one."""
    found: list[tuple[str, list[nn.Module]]] = []
    for name, module in model.named_modules():
        if not list(module.parameters(recurse=False)):
            continue
        if isinstance(module, WEIGHT_LAYERS) or not found:
            found.append((name, [module]))
        else:
            found[-1][1].append(module)
    return found


def _cascade(model) -> list[tuple[str, list[nn.Module]]]:
    """The steps of the cascade, the head first. In an ensemble step k re-initialises the k-th layer
    from the top of every member (named by the first member that has one)."""
    tops = [layers(m)[::-1] for m in models.members(model)]
    steps = []
    for k in range(max(map(len, tops))):
        found = [member[k] for member in tops if k < len(member)]
        steps.append((found[0][0], [m for _, group in found for m in group]))
    return steps


def cascade_steps(model) -> int:
    """How many layers the cascade randomises (its last step: every weight random)."""
    return len(_cascade(model))


def _reinitialise(modules: list[nn.Module]) -> None:
    """Each module's default initialisation (N(0, 1) for parameters of a module without one)."""
    with torch.no_grad():
        for module in modules:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    nn.init.normal_(p)


def _cpu_copy(model):
    return copy.deepcopy(model).cpu().float().eval()


def randomisation(model, attribute, seed: int = 0, at=None, progress=None, signed: bool = False,
                  original: np.ndarray | None = None) -> Randomisation:
    """Cascading model randomisation of the map `attribute(model) -> (H, W)`, on a deep copy of
    `model`: the map of the copy as it is (step 0; `original` when already drawn), then after
    re-initialising each layer in turn, the head first (see the module's docstring). `at`: the steps to
    map (default every one; the weights at a step do not depend on which are mapped).
    `progress(done, total)` counts the maps."""
    randomised = _cpu_copy(model)
    cascade = _cascade(randomised)
    mapped = sorted({0, *(range(len(cascade) + 1) if at is None else at)})
    maps = []
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        for k, (_, group) in enumerate([("", []), *cascade]):
            torch.manual_seed(seed + k)
            _reinitialise(group)
            if k in mapped:
                drawn = original if k == 0 and original is not None else attribute(randomised)
                maps.append(np.asarray(drawn, np.float32))
                if progress:
                    progress(len(maps), len(mapped))
    original = maps[0]
    return Randomisation(tuple(name for name, _ in cascade), np.array(mapped),
                         np.array([spearman(np.abs(original), np.abs(m)) for m in maps]),
                         np.array([spearman(original, m) for m in maps]),
                         np.array([ssim(np.abs(original), np.abs(m)) for m in maps]), np.stack(maps), signed)


# ---------------------------------------------------------------- removal

def _neighbours(h: int, w: int):
    """Every pixel's 8 neighbours inside the image: (pixel, neighbour, weight) index arrays; direct
    neighbours weigh 1/6 and diagonal ones 1/12, as in ROAD's imputer."""
    ys, xs = np.mgrid[:h, :w]
    rows, cols, weights = [], [], []
    for dy, dx, weight in [(0, 1, 1 / 6), (0, -1, 1 / 6), (1, 0, 1 / 6), (-1, 0, 1 / 6),
                           (1, 1, 1 / 12), (1, -1, 1 / 12), (-1, 1, 1 / 12), (-1, -1, 1 / 12)]:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        rows.append((ys * w + xs)[inside])
        cols.append((ny * w + nx)[inside])
        weights.append(np.full(inside.sum(), weight))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


def impute(x: np.ndarray, removed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ROAD's noisy linear imputation: the removed pixels of `x` (C, H, W) (`removed`: (H, W) bool)
    become the weighted mean of their neighbours (a sparse linear system, solved for every channel),
    plus Gaussian noise of ROAD_NOISE times the channel's standard deviation."""
    c, h, w = x.shape
    gone = np.flatnonzero(removed.ravel())
    if not len(gone):
        return x.copy()
    pixel, neighbour, weight = _neighbours(h, w)
    where = np.full(h * w, -1)
    where[gone] = np.arange(len(gone))
    mine = where[pixel] >= 0
    pixel, neighbour, weight = pixel[mine], neighbour[mine], weight[mine]
    total = np.bincount(where[pixel], weight, len(gone))  # each removed pixel: sum of its neighbours' weights
    unknown = where[neighbour] >= 0
    system = scipy.sparse.csc_matrix(
        (np.r_[total, -weight[unknown]], (np.r_[np.arange(len(gone)), where[pixel][unknown]],
                                          np.r_[np.arange(len(gone)), where[neighbour][unknown]])),
        shape=(len(gone), len(gone)))
    flat = x.reshape(c, -1).astype(np.float64)
    known = np.stack([np.bincount(where[pixel][~unknown], weight[~unknown] * flat[k, neighbour[~unknown]],
                                  len(gone)) for k in range(c)], axis=1)
    solved = scipy.sparse.linalg.splu(system).solve(known)  # (removed, C)
    out = flat.copy()
    out[:, gone] = solved.T + rng.normal(0, 1, solved.T.shape) * ROAD_NOISE * flat.std(1, keepdims=True)
    return out.reshape(c, h, w).astype(x.dtype)


def _order(scores: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel order (flat indices), highest score first: by pixel (`size` 1) or by `size`-pixel patch
    (a patch's pixels together, ranked by their summed score); ties broken at random."""
    h, w = scores.shape
    patches = torch.nn.functional.avg_pool2d(torch.as_tensor(scores, dtype=torch.float64)[None],
                                            size, ceil_mode=True)[0].numpy() if size > 1 else scores
    ranked = np.lexsort((rng.random(patches.size), -patches.ravel()))  # last key first: score, then ties
    ys, xs = np.mgrid[:h, :w]
    patch_of = (ys // size) * patches.shape[1] + xs // size
    rank_of_patch = np.empty(patches.size, np.int64)
    rank_of_patch[ranked] = np.arange(patches.size)
    return np.argsort(rank_of_patch[patch_of].ravel(), kind="stable")


def _masks(order: np.ndarray, fractions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(len(fractions), H, W) bool: the first round(f * pixels) of `order` at each fraction."""
    n = shape[0] * shape[1]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return (rank[None] < np.round(fractions * n)[:, None]).reshape(-1, *shape)


class _Removal:
    """The removal tests of one image and explained output: curves of any order, and the random
    orders' curves, computed once per image and reused for every map of it."""

    def __init__(self, model, image, output: int, conditional: bool, seed: int):
        self.forward = explain.explained_outputs(_cpu_copy(model), conditional)
        self.x = _as_input(image)
        self.shape = tuple(self.x.shape[-2:])
        self.blur = explain.blurred(self.x, explain.BLUR_SIGMA * self.shape[-1])
        self.output, self.seed = output, seed
        self.random: dict[tuple[str, str], np.ndarray] = {}

    def _outputs(self, images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.forward(images)[:, self.output].numpy().astype(np.float64)

    def curves(self, order: np.ndarray, test: str, rng: np.random.Generator) -> np.ndarray:
        """The explained output as pixels go (or come back) in `order` for `test`."""
        if test in ("deletion", "insertion"):
            gone = torch.as_tensor(_masks(order, np.linspace(0, 1, STEPS + 1), self.shape))[:, None]
            start, end = (self.x, self.blur) if test == "deletion" else (self.blur, self.x)
            return self._outputs(torch.where(gone, end, start))
        if test == "road_lerf":
            order = order[::-1]
        x = self.x.numpy()
        images = [impute(x, m, rng) for m in _masks(order, ROAD_FRACTIONS, self.shape)]
        return self._outputs(torch.as_tensor(np.stack(images)))

    def random_curve(self, test: str, level: str) -> np.ndarray:
        key = ("road" if test.startswith("road") else test, level)  # MoRF and LeRF share random orders
        if key not in self.random:
            rng = np.random.default_rng(self.seed)
            self.random[key] = np.mean([self.curves(_order(rng.random(self.shape), LEVELS[level], rng), test, rng)
                                        for _ in range(RANDOM_ORDERS)], axis=0)
        return self.random[key]

    def all(self, attribution_map: np.ndarray) -> tuple[Curve, ...]:
        rng = np.random.default_rng(self.seed + 1)
        found = []
        for level, size in LEVELS.items():
            order = _order(np.asarray(attribution_map, np.float64), size, rng)
            for test in TESTS:
                fractions = np.linspace(0, 1, STEPS + 1) if test in ("deletion", "insertion") else ROAD_FRACTIONS
                found.append(Curve(test, level, fractions, self.curves(order, test, rng),
                                   self.random_curve(test, level)))
        return tuple(found)


def _as_input(image) -> torch.Tensor:
    """explain's image (a (C, H, W) float tensor in [0, 1] or a uint8 crop) as a float32 CPU tensor."""
    image = torch.as_tensor(image)
    x = explain.model_input(image) if image.dtype == torch.uint8 else image
    return x.detach().cpu().float()


def check(model, image, question: int | None, answer: str | None = None, method: str = "saliency",
          conditional: bool = True, output: int | None = None, seed: int = 0, at=None,
          removal: _Removal | None = None, progress=None, **options) -> Check:
    """Every check of one map: `explain.explain(model, image, question, answer, method, conditional,
    **options)`, or with `question` None `explain.explain_output(model, image, output, method)`.
    `at`: the randomisation steps to map (default all); `removal`: the image's removal tests when
    already set up for this answer (its random curves are reused). `progress(done, total)` counts the
    maps, then the removal curves."""
    start = time.perf_counter()
    x = _as_input(image)

    def attribute(m, answer=answer) -> explain.Attribution:
        torch.manual_seed(seed)  # smoothgrad: the same noise for every model compared
        if question is None:
            return explain.explain_output(m, x, output, method, **options)
        return explain.explain(m, x, question, answer, method, conditional, **options)
    with torch.random.fork_rng(devices=[]):
        original = attribute(_cpu_copy(model))
    report = (lambda done, total: progress(done, total + 1)) if progress else None
    randomised = randomisation(model, lambda m: attribute(m, original.answer).map, seed, at, report,
                               original.signed, original.map)
    if removal is None:
        removal = _Removal(model, x, original.output, original.conditional, seed)
    curves = removal.all(original.map)
    if progress:
        progress(len(randomised.steps) + 1, len(randomised.steps) + 1)
    return Check(original, randomised, curves, time.perf_counter() - start)


def survey(model, images, methods=tuple(explain.METHODS), question: int = 1, seed: int = 0,
           options: dict[str, dict] | None = None, progress=None,
           variants: dict[str, tuple[str, dict]] | None = None) -> pd.DataFrame:
    """`check` of each image's top answer to `question` (the model's, conditional) by each method: one
    row per (image, method) with the randomisation figures (every layer randomised), each removal
    curve's area and its random orders', whether it beats them, `passes` and seconds.
    `options`: a method's options by its name, e.g. {"occlusion": {"stride": 8}}; `variants`: more
    rows named by their key, each a (method, options), e.g. {"IG, black": ("integrated_gradients",
    {"baseline": "black"})}. Every method meets the same random orders."""
    runs = {m: (m, (options or {}).get(m, {})) for m in methods} | (variants or {})
    rows, n_layers = [], cascade_steps(model)
    for i, image in enumerate(images):
        x = _as_input(image)
        with torch.no_grad():
            values = explain.explained_outputs(_cpu_copy(model), True)(x[None])[0]
        answer = explain._answer_column(values, question, None)  # the model's top answer
        removal = _Removal(model, x, tree.COLUMN_INDEX[answer], True, seed)  # shared by every method
        for name, (method, opts) in runs.items():
            c = check(model, x, question, answer, method, seed=seed, at=(n_layers,), removal=removal, **opts)
            r = c.randomisation
            row = {"image": i, "method": name, "answer": c.attribution.answer,
                   "spearman_full": r.full, "spearman_signed_full": r.full_signed,
                   "spearman_as_drawn_full": r.full_as_drawn,
                   "ssim_full": r.full_ssim, "randomisation_passes": r.independent}
            for curve in c.curves:
                key = f"{curve.test}_{curve.level}"
                row |= {f"{key}_area": curve.area, f"{key}_random": curve.random_area, f"{key}_beats": curve.beats_random}
            rows.append(row | {"passes": c.passes, "seconds": c.seconds})
        if progress:
            progress(i + 1, len(images))
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method (`survey`'s rows): galaxies, the mean and sd of each figure, and the share of the
    galaxies on which it beats random in each removal test, falls apart under randomisation, and
    passes every check."""
    figures = [c for c in rows.columns if c.endswith(("_area", "_random", "_full")) or c == "seconds"]
    shares = [c for c in rows.columns if c.endswith(("_beats", "_passes")) or c == "passes"]
    grouped = rows.groupby("method", sort=False)
    out = grouped[figures].agg(["mean", "std"])
    out.columns = [f"{name} {stat.replace('std', 'sd')}" for name, stat in out.columns]
    return out.join(grouped[shares].mean()).assign(galaxies=grouped.size())


# ---------------------------------------------------------------- positive control

CONTROLS = {"bar": (3, "Class3.1"), "arms": (4, "Class4.1")}  # feature -> the answer that says it is there
CONTROL_UNIVERSE = 2026  # synthetic universe of the control galaxies (the shipped synthetic.pt saw universe 0)
FEATURE_SHARE = 0.8      # a feature's mask: the fewest pixels holding this share of its light
CONTROL_BEATS = 0.8      # passing: the map beats a random map's share on at least this share of galaxies


def feature_mask(light: np.ndarray) -> np.ndarray:
    """The fewest pixels of `light` holding FEATURE_SHARE of it, as a bool mask."""
    flat = np.sort(light.ravel())[::-1]
    held = np.cumsum(flat) / flat.sum()
    return light >= flat[np.searchsorted(held, FEATURE_SHARE)]


@functools.lru_cache(maxsize=4)  # every method checked meets the same galaxies
def _controls(feature: str, seed: int, scanned: int) -> tuple:
    """Galaxies among the first `scanned` of universe `seed` that clearly show `feature`: strong and
    seen within 50 degrees of face-on. (index, 424 px image, its feature light) each."""
    from . import synthetic
    strong = {"bar": 0.5, "arms": 0.3}[feature]
    found = []
    for index in range(scanned):
        params, image = synthetic.galaxy(seed, index)
        if getattr(params, synthetic.FEATURES[feature]) >= strong and params.incl <= 50:
            found.append((index, image, synthetic.feature_light(seed, index, feature)))
    return tuple(found)


def positive_control(model, preprocess, input_size: int, feature: str, n: int = 30,
                     method: str = explain.DEFAULT_METHOD, seed: int = CONTROL_UNIVERSE, progress=None,
                     **options) -> pd.DataFrame:
    """Does the map put its attribution on a feature we rendered? On the first `n` galaxies of
    synthetic universe `seed` with a strong `feature` (a key of CONTROLS) that `model` also finds (its
    conditional answer >= 0.5; at most 40 n galaxies are looked at): the share of the map's positive attribution inside the feature's mask
    (`feature_mask`, cut like the model's input) against a random map's (the mask's area). One row per
    galaxy: index, model (its answer), share, random_share, beats."""
    from PIL import Image

    from . import data
    question, answer = CONTROLS[feature]
    rows = []
    for index, image, light in _controls(feature, seed, 40 * n):
        box = data.crop_box(Image.fromarray(image), preprocess)
        x = explain.model_input(data.crop_of(Image.fromarray(image), preprocess, box), input_size)
        scaled = np.round(light / light.max() * 255).astype(np.uint8)
        seen = explain.model_input(data.crop_of(Image.fromarray(scaled), preprocess, box), input_size)[0].numpy()
        mask = feature_mask(seen)
        a = explain.explain(model, x, question, answer, method, **options)
        if a.target_value < 0.5:  # the model does not see it: nothing for the map to point at
            continue
        positive = np.maximum(a.map, 0)
        share = float(positive[mask].sum() / positive.sum()) if positive.sum() > 0 else 0.0
        rows.append({"index": index, "model": a.target_value, "share": share, "random_share": float(mask.mean()),
                     "beats": share > mask.mean()})
        if progress:
            progress(len(rows), n)
        if len(rows) == n:
            break
    return pd.DataFrame(rows, columns=["index", "model", "share", "random_share", "beats"])
