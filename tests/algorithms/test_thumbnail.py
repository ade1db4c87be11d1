"""Thumbnails are block averages stretched between percentiles; one helper serves every picture."""

from __future__ import annotations

import numpy as np

from tomoprep.algorithms.thumbnail import stretch, thumbnail


def test_thumbnail_averages_whole_blocks_and_drops_the_rest() -> None:
    image = np.arange(10 * 7, dtype=np.float64).reshape(10, 7)
    small = thumbnail(image, size_px=3)  # block side 10 // 3 = 3: rows 9, columns 6 kept
    blocks = image[:9, :6].reshape(3, 3, 2, 3).mean(axis=(1, 3))
    assert small.shape == (3, 2)
    np.testing.assert_allclose(small, stretch(blocks))
    assert thumbnail(image, size_px=64).shape == image.shape  # smaller than asked: not enlarged


def test_stretch_maps_the_percentiles_to_0_and_1_so_a_hot_pixel_does_not_set_the_scale() -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(10.0, 1.0, (64, 64))
    image[5, 5] = 1e6
    shown = stretch(image)
    low, high = np.percentile(image, [1, 99])
    assert shown.min() == 0.0 and shown.max() == 1.0 and shown[5, 5] == 1.0
    assert np.mean((shown > 0) & (shown < 1)) > 0.9  # the hot pixel did not squash the rest to 0
    np.testing.assert_allclose(shown[image <= low], 0.0)
    np.testing.assert_allclose(stretch(np.full((4, 4), 7.0)), 0.0)  # one value: no division by zero
    assert high > low
