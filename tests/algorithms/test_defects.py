"""Hot and dead pixels: found in Poisson sums without false positives, replaced from good neighbours."""

from __future__ import annotations

import pytest
import torch

from tomoprep.algorithms.defects import DefectMasks, correct_defects, detect_defects, local_median

HOT = [(10, 20), (100, 300), (383, 0), (250, 250), (251, 250)]  # a corner pixel and a vertical pair
DEAD = [(30, 40), (300, 100), (0, 383)]


def movie_with_defects(n_frames: int = 40, seed: int = 0) -> torch.Tensor:
    """``n_frames`` Poisson frames of 1 count/px, 384², with hot pixels at 4 counts/frame and dead ones at 0."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.poisson(torch.ones(n_frames, 384, 384), generator=generator)
    for y, x in HOT:
        frames[:, y, x] = torch.poisson(torch.full((n_frames,), 4.0), generator=generator)
    for y, x in DEAD:
        frames[:, y, x] = 0
    return frames


def positions(mask: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in mask.nonzero().tolist()}


def test_planted_defects_are_found_and_nothing_else() -> None:
    counts = movie_with_defects().sum(dim=0)
    masks = detect_defects(counts)
    assert positions(masks.hot) == set(HOT)
    assert positions(masks.dead) == set(DEAD)
    assert positions(masks.combined) == set(HOT) | set(DEAD)
    scaled = detect_defects(counts * 3.7)  # a gain-corrected sum: the robust spread absorbs the scale
    assert positions(scaled.hot) == set(HOT) and positions(scaled.dead) == set(DEAD)


@pytest.mark.parametrize("mean_counts", [25.0, 1000.0])
def test_no_false_defects_on_a_poisson_image(mean_counts: float) -> None:
    counts = torch.poisson(torch.full((1024, 1024), mean_counts), generator=torch.Generator().manual_seed(1))
    masks = detect_defects(counts)
    assert not masks.combined.any()


def test_specimen_contrast_raises_no_defects() -> None:
    generator = torch.Generator().manual_seed(2)
    ys = torch.arange(512.0)[:, None]
    texture = 1 + 0.1 * torch.sin(ys / 7) * torch.cos(torch.arange(512.0)[None, :] / 5)
    counts = torch.poisson(200 * texture, generator=generator)
    assert not detect_defects(counts).combined.any()


def test_local_median_ignores_outliers_and_lines() -> None:
    image = torch.full((40, 50), 7.0)
    image[10, 10] = 1000.0
    image[:, 30] = 0.0
    assert torch.equal(local_median(image), torch.full((40, 50), 7.0))
    with pytest.raises(ValueError, match="odd"):
        local_median(image, 4)


def test_neighbour_correction_copies_good_neighbours_frame_by_frame() -> None:
    movie = movie_with_defects()
    mask = detect_defects(movie.sum(dim=0)).combined
    frames = movie[:12]
    corrected = correct_defects(frames, mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(corrected[:, ~mask], frames[:, ~mask])
    for y, x in HOT + DEAD:
        window = frames[:, max(0, y - 2) : y + 3, max(0, x - 2) : x + 3]
        good = ~mask[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3]
        for frame, value in zip(window, corrected[:, y, x], strict=True):
            assert value in frame[good]
    # the counting statistics come back: defect pixels now sum like their neighbours (12 counts expected)
    sums = corrected.sum(dim=0)
    assert all(4 <= sums[y, x] <= 25 for y, x in HOT + DEAD)


def test_median_correction_and_empty_masks() -> None:
    image = torch.arange(36.0).reshape(6, 6)
    mask = torch.zeros(6, 6, dtype=torch.bool)
    assert torch.equal(correct_defects(image, mask), image)
    mask[2, 2] = True
    corrected = correct_defects(image, mask, method="median", window_px=3)
    assert corrected[2, 2] == torch.tensor([7.0, 8.0, 9.0, 13.0, 15.0, 19.0, 20.0, 21.0]).nanmedian()
    assert torch.equal(corrected[~mask], image[~mask])
    lonely = torch.ones(3, 3, dtype=torch.bool)  # no good neighbour at all: the image median is used
    assert torch.equal(correct_defects(torch.full((3, 3), 2.0), lonely), torch.full((3, 3), 2.0))
    with pytest.raises(ValueError, match="does not fit"):
        correct_defects(image, torch.zeros(5, 5, dtype=torch.bool))


def test_defect_masks_combine() -> None:
    hot = torch.tensor([[True, False]])
    dead = torch.tensor([[False, True]])
    assert torch.equal(DefectMasks(hot=hot, dead=dead).combined, torch.tensor([[True, True]]))


def test_defect_filler_replaces_only_defects_by_their_good_neighbours() -> None:
    from tomoprep.algorithms.defects import DefectFiller

    frame = torch.arange(100, dtype=torch.float32).reshape(10, 10)
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[4, 4] = mask[4, 5] = mask[0, 0] = True
    filled = DefectFiller(mask, window_px=3)(frame)
    assert torch.equal(filled[~mask], frame[~mask])
    # (4, 4): 3x3 neighbours without itself and (4, 5): mean of 33, 34, 35, 43, 53, 54, 55 = 43.857...
    assert filled[4, 4].item() == pytest.approx((33 + 34 + 35 + 43 + 53 + 54 + 55) / 7)
    # corner (0, 0): clamped window holds (0,1), (1,0), (1,1) and repeats; all good ones count
    assert 0 < filled[0, 0].item() < 12


def test_local_median_at_pixels_equals_the_whole_image_median() -> None:
    from tomoprep.algorithms.defects import local_median_at

    generator = torch.Generator().manual_seed(3)
    image = torch.poisson(torch.full((61, 47), 9.0), generator=generator)
    image[:, 5] = 40  # a bad column near the edge
    ys, xs = torch.meshgrid(torch.arange(61), torch.arange(47), indexing="ij")
    for window in (3, 5, 7):
        whole = local_median(image, window)
        assert torch.equal(local_median_at(image, ys.flatten(), xs.flatten(), window), whole.flatten())


def _defects_by_full_median(counts: torch.Tensor, threshold_sigma: float = 6.0) -> torch.Tensor:
    """The definition the screened detection must reproduce: the median at every pixel, the spread on all."""
    import math

    expected = local_median(counts, 5)
    residual = 2 * (torch.sqrt(counts + 0.375) - torch.sqrt(expected + 0.375))
    sigma = 1.4826 * (residual - residual.median()).abs().median().double()
    candidates = ((residual.abs() > (threshold_sigma - 2) * sigma) & (expected > 0)).nonzero(as_tuple=True)
    count, mean = counts[candidates].double() / sigma**2, expected[candidates].double() / sigma**2
    false_alarm = 0.5 * math.erfc(threshold_sigma / math.sqrt(2))
    found = torch.zeros_like(counts, dtype=torch.bool)
    hot = (count > mean) & (torch.special.gammainc(count.clamp_min(1e-9), mean) < false_alarm)
    dead = (count < mean) & (torch.special.gammaincc(count + 1, mean) < false_alarm)
    found[candidates] = hot | dead
    return found


def test_screened_detection_finds_what_the_median_at_every_pixel_finds() -> None:
    """Defects on a sum with strong specimen contrast, clusters, bad columns and a range of excesses, some
    near the threshold: the box-filter screen must not lose any that the full median test finds."""
    generator = torch.Generator().manual_seed(5)
    n = 512
    y, x = torch.meshgrid(torch.linspace(0, 12, n), torch.linspace(0, 9, n), indexing="ij")
    level = 40 + 25 * torch.sin(y) * torch.cos(x)  # contrast on the scale of the window
    counts = torch.poisson(level, generator=generator)
    ys = torch.randint(0, n, (200,), generator=generator)
    xs = torch.randint(0, n, (200,), generator=generator)
    excess = torch.linspace(10, 120, 100)  # from well below to well above 6 sigma
    counts[ys[:100], xs[:100]] += excess
    counts[ys[100:150], xs[100:150]] = 0
    counts[ys[150:], xs[150:]] *= 0.3
    counts[100:180, 300] += 45  # a hot column
    counts[200:260, 40:42] = 0  # a dead 2-wide column
    counts[400:402, 400:402] += 80  # a 2x2 cluster
    expected = _defects_by_full_median(counts)
    found = detect_defects(counts).combined
    assert int(expected.sum()) > 150
    # The spread is estimated on a subset: allow the odd pixel right at the threshold to differ.
    assert int((found ^ expected).sum()) <= 2
