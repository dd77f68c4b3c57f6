"""Masks: exact counts, block alignment, connected groups, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from vitprobe.errors import ConfigError
from vitprobe.train.masking import block_mask, group_mask, random_mask, upsample_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n,ratio,masked", [(64, 0.75, 48), (49, 0.75, 37), (196, 0.75, 147),
                                            (10, 0.33, 4), (4, 0.6, 3), (16, 0.01, 1)])
def test_random_mask_exact_count(n: int, ratio: float, masked: int) -> None:
    """MAE keeps int(N * (1 - ratio)) patches: 10 at 0.33 masks 4 (not round(3.3) = 3)."""
    for seed in range(5):
        m = random_mask(n, ratio, gen(seed))
        assert m.shape == (n,) and m.dtype == torch.bool
        assert int(m.sum()) == masked


def test_random_mask_deterministic_and_seed_dependent() -> None:
    assert torch.equal(random_mask(64, 0.75, gen(3)), random_mask(64, 0.75, gen(3)))
    assert not torch.equal(random_mask(64, 0.75, gen(3)), random_mask(64, 0.75, gen(4)))


@pytest.mark.parametrize("img,patch,mps,ratio,cells_masked",
                         [(32, 4, 8, 0.6, 10), (224, 16, 32, 0.6, 30), (32, 4, 4, 0.5, 32)])
def test_block_mask_counts_and_alignment(img: int, patch: int, mps: int, ratio: float,
                                         cells_masked: int) -> None:
    """SimMIM masks ceil(M * ratio) cells: 30 of the 49 at 224 px (round would give 29)."""
    m = block_mask(img, patch, mps, ratio, gen(0))
    side, scale = img // patch, mps // patch
    assert m.shape == (side, side)
    assert int(m.sum()) == cells_masked * scale * scale
    # every mask-patch cell is either wholly masked or wholly visible
    blocks = m.view(side // scale, scale, side // scale, scale).permute(0, 2, 1, 3).flatten(2)
    assert bool((blocks.all(-1) | ~blocks.any(-1)).all())


def test_block_mask_rejects_bad_geometry() -> None:
    with pytest.raises(ConfigError, match="multiple of the model patch"):
        block_mask(32, 4, 6, 0.6, gen(0))
    with pytest.raises(ConfigError, match="multiple of mask_patch_size"):
        block_mask(40, 4, 16, 0.6, gen(0))
    with pytest.raises(ConfigError, match=r"must lie in \(0, 1\)"):
        random_mask(10, 1.5, gen(0))


def _component_sizes(mask: torch.Tensor) -> list[int]:
    labels, n = ndimage.label(mask.numpy())
    return [int((labels == i).sum()) for i in range(1, n + 1)]


@pytest.mark.parametrize("grid,ratio,target", [((8, 8), 0.5, 32), ((14, 14), 0.4, 79),
                                               ((8, 8), 0.7, 45), ((14, 14), 0.3, 59)])
def test_group_mask_stops_at_the_target(grid: tuple[int, int], ratio: float, target: int) -> None:
    """SiT draws rectangles (sides <= 30% of the grid) until at least h w ratio patches are
    masked (79 for 78.4), so the overshoot is below one largest rectangle: 2 x 2 on an 8-grid,
    4 x 4 on a 14-grid."""
    largest = int(0.3 * grid[0]) * int(0.3 * grid[1])
    for seed in range(10):
        m = group_mask(grid, ratio, gen(seed))
        assert m.shape == grid
        assert target <= int(m.sum()) <= target + largest - 1


def test_group_mask_single_rectangle_sizes() -> None:
    """One patch to mask -> exactly one rectangle, 1..4 patches a side on a 14 x 14 grid (SiT: up
    to 30% of the side, 1-patch blocks allowed), clipped at the border."""
    sides = set()
    for seed in range(200):
        m = group_mask((14, 14), 0.004, gen(seed))  # target 0.78: one rectangle
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        box = m[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool(box.all())  # a single filled rectangle
        assert box.shape[0] <= 4 and box.shape[1] <= 4
        sides.update(box.shape)
    assert sides == {1, 2, 3, 4}


def test_group_mask_unit_blocks_hit_the_target_exactly() -> None:
    """max_block small enough that every rectangle is 1 x 1: each draw adds at most one patch."""
    for seed in range(5):
        assert int(group_mask((8, 8), 0.5, gen(seed), max_block=0.1).sum()) == 32
    with pytest.raises(ConfigError, match="max_block"):
        group_mask((8, 8), 0.5, gen(0), max_block=0.0)


def test_group_size_check_can_fail_on_scattered_masks() -> None:
    """The connectivity check above rejects per-patch random masks: they contain lone patches."""
    sizes = [min(_component_sizes(random_mask(64, 0.5, gen(s)).view(8, 8))) for s in range(10)]
    assert min(sizes) < 4


def test_upsample_mask() -> None:
    m = torch.tensor([[True, False], [False, True]])
    up = upsample_mask(m, 3)
    assert up.shape == (6, 6)
    assert np.array_equal(up.numpy(), np.kron(m.numpy(), np.ones((3, 3), dtype=bool)))


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_every_mask_refuses_a_ratio_of_0_or_1(ratio: float) -> None:
    """Ratios lie in the open interval (0, 1): 0 leaves the masked-patch loss empty, 1 hides the image."""
    for make in (lambda: random_mask(16, ratio, gen(0)), lambda: block_mask(32, 4, 8, ratio, gen(0)),
                 lambda: group_mask((8, 8), ratio, gen(0))):
        with pytest.raises(ConfigError, match=r"must lie in \(0, 1\)"):
            make()


def _single_rectangles(grid: tuple[int, int], max_block: float, seeds) -> list[tuple[int, int, int, int]]:
    """(height, width, top, left) of the one rectangle group_mask draws when h w ratio < 1."""
    h, w = grid
    out = []
    for s in seeds:
        m = group_mask(grid, 0.5 / (h * w), gen(s), max_block)
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        top, left = int(rows.min()), int(cols.min())
        height, width = int(rows.max()) - top + 1, int(cols.max()) - left + 1
        assert int(m.sum()) == height * width  # one filled rectangle
        out.append((height, width, top, left))
    return out


def test_group_mask_bounds_height_and_width_separately_on_a_non_square_grid() -> None:
    """SiT: height uniform in 1..floor(0.3 h), width independently in 1..floor(0.3 w): on a
    20 x 10 grid heights 1..6 and widths 1..3 (clipping at the border only shortens a side)."""
    rects = _single_rectangles((20, 10), 0.3, range(400))
    assert {r[0] for r in rects} == set(range(1, 7))
    assert {r[1] for r in rects} == {1, 2, 3}


def test_group_mask_top_left_is_uniform_over_the_grid_and_clipped_at_the_border() -> None:
    """The top-left patch is uniform over all 14 rows and the rectangle is clipped: it touches
    the first row with P(top = 0) = 1/14 but the last row with P(top >= 14 - height) =
    E[height] / 14 = 2.5 / 14 (heights 1..4). A top-left drawn only where the whole rectangle
    fits would touch both borders equally often."""
    rects = _single_rectangles((14, 14), 0.3, range(3000))
    first = sum(top == 0 for _, _, top, _ in rects) + sum(left == 0 for _, _, _, left in rects)
    last = (sum(top + hh == 14 for hh, _, top, _ in rects) + sum(left + ww == 14 for _, ww, _, left in rects))
    assert 1.9 < last / first < 3.3  # 2.5 expected (2.68 with these seeds); 1.0 if rectangles were never clipped


def test_group_mask_side_bound_is_floor_of_the_exact_product() -> None:
    """floor(0.58 * 50) = 29 although 0.58 * 50 is 28.999999999999996 in floating point."""
    rects = _single_rectangles((50, 2), 0.58, range(600))
    assert max(r[0] for r in rects) == 29


def test_group_mask_accepts_max_block_1() -> None:
    """max_block lies in (0, 1]: 1 lets a rectangle span the whole grid."""
    m = group_mask((4, 4), 0.5, gen(0), max_block=1.0)
    assert int(m.sum()) >= 8
