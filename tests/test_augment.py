import pytest
import torch

from gzcore import augment, train


def _views_of(image: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Every dihedral view of every crop of side `size`."""
    h = image.shape[-1]
    return [augment.dihedral(image[:, y:y + size, x:x + size], k)
            for y in range(h - size + 1) for x in range(h - size + 1) for k in range(8)]


def test_random_dihedral_gives_exact_views_of_crops():
    x = torch.rand(64, 3, 12, 12)
    out = augment.random_dihedral(x, torch.Generator().manual_seed(0), out_size=10)
    assert out.shape == (64, 3, 10, 10)
    seen_views = set()
    for i in range(len(x)):
        views = _views_of(x[i], 10)
        match = [j for j, v in enumerate(views) if torch.equal(v, out[i])]
        assert match, f"image {i} is not a flip/rotation of a crop"
        seen_views.add(match[0] % 8)
    assert seen_views == set(range(8))  # all 8 orientations are drawn


def test_random_dihedral_is_seeded_and_keeps_channels_last():
    x = augment.to_float(torch.randint(0, 255, (8, 20, 20, 3), dtype=torch.uint8))
    a = augment.random_dihedral(x, torch.Generator().manual_seed(1), out_size=16)
    b = augment.random_dihedral(x, torch.Generator().manual_seed(1), out_size=16)
    assert torch.equal(a, b)
    assert a.is_contiguous(memory_format=torch.channels_last)


def test_random_affine_keeps_a_symmetric_galaxy():
    """A centred round blob stays (nearly) itself under any rotation and flip (away from the
    corners, which rotation fills by reflection)."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((yy - 15.5) ** 2 + (xx - 15.5) ** 2) / 40).expand(16, 3, 32, 32)
    out = augment.random_affine(blob, torch.Generator().manual_seed(0), max_shift=0.0, zoom=(1, 1))
    assert (out - blob)[..., 4:-4, 4:-4].abs().max() < 0.03


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="augmentation"):
        train.TrainConfig(augment="mixup")
