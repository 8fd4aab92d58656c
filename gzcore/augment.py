"""Batch augmentation on tensors, on whatever device the batch lives (CPU or GPU).

Galaxies have no preferred orientation, so any-angle rotation and flips keep the labels; small
translations and zooms mimic the centring and scaling noise of the cutouts. All of it is one
affine resample per batch (`grid_sample`), so it costs little next to the network.
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

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

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
