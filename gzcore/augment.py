"""Batch augmentation on tensors, on whatever device the batch lives (CPU or GPU).

Galaxies have no preferred orientation, so rotations and flips keep the labels, and small
translations mimic the centring noise of the cutouts. Two policies, each one batched call:
`random_dihedral` (the default) takes a randomly placed crop in one of the 8 flips/rotations by
90 degrees: exact pixels, the very views test-time augmentation averages over. `random_affine`
rotates by any angle and zooms too, at the price of a bilinear resample that blurs every training
image a little (measured: 0.001 worse validation RMSE after 10 minutes on the real sample).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_float(batch_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) uint8 crops -> (B, C, H, W) float32 in [0, 1]."""
    return batch_uint8.permute(0, 3, 1, 2).float().div_(255.0)


def random_affine(x: torch.Tensor, generator: torch.Generator | None = None, max_shift: float = 0.05,
                  zoom: tuple[float, float] = (0.9, 1.1), out_size: int | None = None) -> torch.Tensor:
    """Rotate by any angle, flip half of the images, shift by up to `max_shift` of the width and
    zoom, each drawn per image. `out_size` crops/resamples to a smaller side."""
    b = x.shape[0]
    dev = x.device

    def rand(*shape):  # drawn on the host (the generator's device), copied without waiting
        return torch.rand(*shape, generator=generator, device="cpu").to(dev, non_blocking=True)

    angle = rand(b) * 2 * math.pi
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0).to(dev)
    scale = 1.0 / (zoom[0] + rand(b) * (zoom[1] - zoom[0]))
    shift = (rand(b, 2) * 2 - 1) * max_shift * 2  # grid units: the image spans [-1, 1]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    size = out_size or x.shape[-1]
    if out_size:
        theta[:, :, :2] *= out_size / x.shape[-1]
    grid = F.affine_grid(theta, (b, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_dihedral(x: torch.Tensor, generator: torch.Generator | None = None,
                    out_size: int | None = None) -> torch.Tensor:
    """Per image: a crop of side `out_size` at a random position, in one of the 8 dihedral views.
    One gather, no resampling; the result is channels_last when `x` came from `to_float`."""
    b, _, h, w = x.shape
    size = out_size or w
    dev = x.device

    def draw(high: int) -> torch.Tensor:  # B numbers drawn on the host, copied without waiting
        return torch.randint(0, high, (b,), generator=generator).to(dev, non_blocking=True)

    span = torch.arange(size, device=dev)
    rows = draw(h - size + 1)[:, None] + span                          # (B, S) source rows
    cols = draw(w - size + 1)[:, None] + span
    rows = torch.where(draw(2)[:, None] == 1, rows.flip(1), rows)      # vertical flip
    cols = torch.where(draw(2)[:, None] == 1, cols.flip(1), cols)      # horizontal flip
    swap = (draw(2) == 1)[:, None, None]                               # transpose
    r = torch.where(swap, rows[:, None, :], rows[:, :, None])          # (B, S, S)
    c = torch.where(swap, cols[:, :, None], cols[:, None, :])
    batch = torch.arange(b, device=dev)[:, None, None]
    return x.permute(0, 2, 3, 1)[batch, r, c].permute(0, 3, 1, 2)


POLICIES = {"dihedral": random_dihedral, "affine": random_affine}


def centre(x: torch.Tensor, out_size: int | None = None) -> torch.Tensor:
    """The evaluation view: the central `out_size` pixels at the training scale."""
    if not out_size or out_size == x.shape[-1]:
        return x
    lo = (x.shape[-1] - out_size) // 2
    return x[..., lo:lo + out_size, lo:lo + out_size]


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """View k in 0..7 of the 8 flips/rotations by 90 degrees (for test-time augmentation)."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))
