"""Can an attribution map be trusted? Two checks of a map from gzcore.explain, for any method.

Model randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): re-initialise the
model's weights layer by layer, from the head down to the first convolution (cascading), on a deep
copy, and compare each step's map with the original by the Spearman rank correlation of their
absolute values (as the paper does: a signed map's sign flips under random weights, its layout need
not). A map that stays correlated once the weights are gone shows the image (an edge detector), not
what the model learned. A layer is a convolution or linear layer together with the parametrised
modules that follow it before the next one (its batch norm); re-initialising uses each module's own
`reset_parameters` (PyTorch's default initialisation; batch norms go back to identity statistics),
and parameters of modules without one (the self-attention's gain) are drawn from N(0, 1).

Deletion (Petsiuk et al. 2018): replace the most-attributed pixels first (all channels) by the
image's per-channel mean, which is close to the sky's level in a galaxy cutout, in `STEPS` steps from
none to all, and record the explained output after each; the same for `RANDOM_ORDERS` seeded random
orders, averaged. A map that carries information lowers the output faster: its curve has the
smaller area. Signed maps delete their most positive pixels first (those said to raise the answer).

Everything runs on deep copies of the model in eval mode, on the CPU in float32, seeded: the same
inputs give the same figures, and the caller's model is never touched.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import explain, models

STEPS = 20             # deletion: 0, 1/20, ..., all of the pixels removed
RANDOM_ORDERS = 3      # deletion: random orders averaged into the baseline curve
DEPENDENT_BELOW = 0.5  # verdict: a map depends on the weights if fully randomised rank correlation < this
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True, eq=False)  # eq=False: arrays
class Randomisation:
    layers: tuple[str, ...]  # in the order randomised, the head first; step k has randomised layers[:k]
    steps: np.ndarray        # (n,) the steps mapped, 0 (the model as it is) first
    spearman: np.ndarray     # (n,) rank correlation of |map| at each step with |map| at step 0 (1 there)
    maps: np.ndarray         # (n, H, W) the map at each step

    def at(self, step: int) -> float:
        return float(self.spearman[list(self.steps).index(step)])

    @property
    def middle(self) -> float:
        """The correlation with the top half of the layers randomised (step `middle_step`)."""
        return self.at(middle_step(len(self.layers)))

    @property
    def full(self) -> float:
        """The correlation with every layer randomised."""
        return self.at(len(self.layers))


@dataclass(frozen=True, eq=False)
class Deletion:
    fractions: np.ndarray   # (STEPS + 1,) share of the pixels replaced, 0 to 1
    attributed: np.ndarray  # the explained output, most-attributed pixels replaced first
    random: np.ndarray      # the same, mean over RANDOM_ORDERS random orders

    @property
    def auc(self) -> float:
        return float(np.trapezoid(self.attributed, self.fractions))

    @property
    def random_auc(self) -> float:
        return float(np.trapezoid(self.random, self.fractions))


@dataclass(frozen=True, eq=False)
class Check:
    attribution: explain.Attribution  # the original map (seeded: smoothgrad's noise is drawn with `seed`)
    randomisation: Randomisation
    deletion: Deletion
    seconds: float

    def verdict(self) -> str:
        """One line in plain words."""
        r, d = self.randomisation.full, self.deletion
        weights = f"rank correlation {r:.2f} with every layer randomised"
        areas = f"area {d.auc:.3f} vs {d.random_auc:.3f} for random pixels"
        depends, informative = r < DEPENDENT_BELOW, d.auc < d.random_auc
        if depends and informative:
            return (f"Trustworthy here: the map falls apart when the model's weights are randomised ({weights}) "
                    f"and removing its top pixels lowers the answer faster than removing random ones ({areas}).")
        if depends:
            return (f"Doubtful: the map depends on the model's weights ({weights}), but removing its top pixels "
                    f"lowers the answer no faster than removing random ones ({areas}).")
        if informative:
            return (f"Doubtful: the map survives randomising the weights ({weights}), so much of it is the "
                    f"image's own structure, although its top pixels do matter ({areas}).")
        return (f"Not trustworthy here: the map survives randomising the weights ({weights}) and its top "
                f"pixels matter no more than random ones ({areas}): it shows the image, not the model.")


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


def _reinitialise(modules: list[nn.Module]) -> None:
    """Each module's default initialisation (N(0, 1) for parameters of a module without one)."""
    with torch.no_grad():
        for module in modules:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    nn.init.normal_(p)


def middle_step(n_layers: int) -> int:
    """The cascade's step with the top half of its `n_layers` layers randomised."""
    return n_layers // 2


def _cpu_copy(model):
    return copy.deepcopy(model).cpu().float().eval()


def randomisation(model, attribute, seed: int = 0, at=None, progress=None) -> Randomisation:
    """Cascading model randomisation of the map `attribute(model) -> (H, W)`, on a deep copy of
    `model`: the map of the copy as it is (step 0), then after re-initialising each layer in turn,
    the head first (see the module's docstring). `at`: the steps to map (default every one; the
    weights at a step do not depend on which are mapped). `progress(done, total)` counts the maps."""
    randomised = _cpu_copy(model)
    cascade = _cascade(randomised)
    mapped = sorted({0, *(range(len(cascade) + 1) if at is None else at)})
    maps = []
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        for k, (_, group) in enumerate([("", []), *cascade]):
            torch.manual_seed(seed + k)
            _reinitialise(group)
            if k in mapped:
                maps.append(np.asarray(attribute(randomised), np.float32))
                if progress:
                    progress(len(maps), len(mapped))
    original = np.abs(maps[0])
    return Randomisation(tuple(name for name, _ in cascade), np.array(mapped),
                         np.array([spearman(original, np.abs(m)) for m in maps]), np.stack(maps))


def deletion(model, image, attribution_map: np.ndarray, output: int, conditional: bool = True,
             seed: int = 0, steps: int = STEPS, orders: int = RANDOM_ORDERS,
             random: np.ndarray | None = None) -> Deletion:
    """Deletion curves of `attribution_map` for output `output` of `explain.explained_outputs(model,
    conditional)`: the most-attributed pixels replaced by the image's mean first, against random orders
    (seeded; ties in the map are broken at random too). One batch of `steps + 1` images per curve.
    `random`: the random orders' curve when already known (it depends on all but the map)."""
    model = _cpu_copy(model)
    forward = explain.explained_outputs(model, conditional)
    x = _as_input(image)
    n = x.shape[-1] * x.shape[-2]
    fractions = np.linspace(0, 1, steps + 1)
    removed = torch.as_tensor(np.round(fractions * n).astype(np.int64))
    mean = x.mean((1, 2), keepdim=True)
    rng = np.random.default_rng(seed)

    def curve(order: np.ndarray) -> np.ndarray:
        rank = torch.empty(n, dtype=torch.long)
        rank[torch.as_tensor(order)] = torch.arange(n)
        gone = (rank[None] < removed[:, None]).view(-1, 1, *x.shape[-2:])  # (steps + 1, 1, H, W)
        with torch.no_grad():
            return forward(torch.where(gone, mean, x))[:, output].numpy().astype(np.float64)
    by_map = np.lexsort((rng.random(n), -np.ravel(attribution_map)))  # last key first: map, then ties
    if random is None:
        random = np.mean([curve(rng.permutation(n)) for _ in range(orders)], axis=0)
    return Deletion(fractions, curve(by_map), random)


def _as_input(image) -> torch.Tensor:
    """explain's image (a (C, H, W) float tensor in [0, 1] or a uint8 crop) as a float32 CPU tensor."""
    image = torch.as_tensor(image)
    x = explain.model_input(image) if image.dtype == torch.uint8 else image
    return x.detach().cpu().float()


def check(model, image, question: int | None, answer: str | None = None, method: str = "saliency",
          conditional: bool = True, output: int | None = None, seed: int = 0, at=None,
          random: np.ndarray | None = None, progress=None, **options) -> Check:
    """Both checks of one map: `explain.explain(model, image, question, answer, method, conditional,
    **options)`, or with `question` None `explain.explain_output(model, image, output, method)`.
    `at`: the randomisation steps to map (default all); `random`: as in `deletion`. `progress(done,
    total)` counts the maps, then the deletion curves."""
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
    randomised = randomisation(model, lambda m: attribute(m, original.answer).map, seed, at, report)
    deleted = deletion(model, x, original.map, original.output, original.conditional, seed, random=random)
    if progress:
        progress(len(randomised.steps) + 1, len(randomised.steps) + 1)
    return Check(original, randomised, deleted, time.perf_counter() - start)


def survey(model, images, methods=tuple(explain.METHODS), question: int = 1, seed: int = 0,
           options: dict[str, dict] | None = None, progress=None) -> pd.DataFrame:
    """`check` of each image's top answer to `question` (the model's, conditional) by each method: one
    row per (image, method) with spearman_middle, spearman_full, auc, random_auc and seconds.
    `options`: a method's options by its name, e.g. {"occlusion": {"stride": 8}}."""
    rows, n_layers = [], len(_cascade(model))
    for i, image in enumerate(images):
        random = None  # every method explains the same answer: one random baseline per image
        for method in methods:
            c = check(model, image, question, method=method, seed=seed, at=(middle_step(n_layers), n_layers),
                      random=random, **(options or {}).get(method, {}))
            random = c.deletion.random
            rows.append({"image": i, "method": method, "answer": c.attribution.answer,
                         "spearman_middle": c.randomisation.middle, "spearman_full": c.randomisation.full,
                         "auc": c.deletion.auc, "random_auc": c.deletion.random_auc, "seconds": c.seconds})
        if progress:
            progress(i + 1, len(images))
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method (`survey`'s rows): galaxies, mean and sd of each figure, and the share of galaxies
    where the map's deletion curve has a smaller area than random's."""
    figures = ["spearman_middle", "spearman_full", "auc", "random_auc", "seconds"]
    grouped = rows.assign(beats_random=rows.auc < rows.random_auc).groupby("method", sort=False)
    out = grouped[figures].agg(["mean", "std"])
    out.columns = [f"{name} {stat.replace('std', 'sd')}" for name, stat in out.columns]
    return out.assign(galaxies=grouped.size(), beats_random=grouped.beats_random.mean())
