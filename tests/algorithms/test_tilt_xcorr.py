"""Coarse alignment by stretched cross-correlation: the shifts planted between views of a flat specimen come back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.tilt_geometry import resample, stretch_matrix
from tomoprep.algorithms.tilt_xcorr import coarse_align, frame_change, neighbour_order, pair_shift

SIZE = 96


def _specimen(seed: int, size: int = 3 * SIZE) -> torch.Tensor:
    """A flat specimen's density seen untilted: white noise smoothed by a Gaussian of 2 px, ``(size, size)``."""
    rng = np.random.default_rng(seed)
    k2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    spectrum = np.fft.rfft2(rng.normal(size=(size, size))) * np.exp(-2 * (math.pi * 2.0) ** 2 * k2)
    return torch.from_numpy(np.fft.irfft2(spectrum, s=(size, size))).float()


def _view(specimen: torch.Tensor, *, axis_deg: float, tilt_deg: float, shift_px: np.ndarray) -> torch.Tensor:
    """The flat specimen at ``tilt_deg``: foreshortened by ``cos t`` across the axis, then moved by ``shift_px``
    ``(x, y)``; a point ``X`` lands at ``C X + shift``, so the image at ``r`` shows ``C⁻¹ (r - shift)``."""
    inverse = torch.linalg.inv(stretch_matrix(axis_deg, math.cos(math.radians(tilt_deg))))
    offset = -(inverse @ torch.from_numpy(shift_px).double())
    return resample(specimen[None], inverse, offset, out_shape_yx=(SIZE, SIZE))[0]


def _noisy(image: torch.Tensor, rng: np.random.Generator, noise_to_signal: float = 0.5) -> torch.Tensor:
    return image + noise_to_signal * float(image.std()) * torch.from_numpy(rng.normal(size=image.shape)).float()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_shift_recovers_the_shift_between_stretched_neighbours(seed):
    rng = np.random.default_rng(seed)
    specimen = _specimen(seed)
    axis = rng.uniform(-180, 180)
    low, high = rng.uniform(20, 35), rng.uniform(40, 55)
    reference = _view(specimen, axis_deg=axis, tilt_deg=low, shift_px=np.zeros(2))
    shift = rng.uniform(-8, 8, 2)
    moving = _view(specimen, axis_deg=axis, tilt_deg=high, shift_px=shift)
    found, score = pair_shift(_noisy(reference, rng), _noisy(moving, rng), axis_deg=axis, reference_tilt_deg=low,
                              moving_tilt_deg=high)  # fmt: skip
    # Over seeds 0-9 the largest error was 0.19 px (bilinear stretching of a 2-px texture, noise half the signal).
    assert found.numpy() == pytest.approx(shift, abs=0.25)
    assert 0.5 < score <= 1.0


def test_pair_shift_of_unrelated_images_scores_low():
    rng = np.random.default_rng(5)
    a = _view(_specimen(5), axis_deg=10.0, tilt_deg=0.0, shift_px=np.zeros(2))
    b = _view(_specimen(6), axis_deg=10.0, tilt_deg=3.0, shift_px=np.zeros(2))
    _, score = pair_shift(_noisy(a, rng), _noisy(b, rng), axis_deg=10.0, reference_tilt_deg=0.0, moving_tilt_deg=3.0)
    assert score < 0.3


def test_neighbour_order_walks_outward_from_the_tilt_nearest_zero():
    tilts = [30.0, -1.5, 15.0, -30.0, -15.0, 45.0]
    reference, pairs = neighbour_order(tilts)
    assert reference == 1
    # Each tilt is chained to its neighbour in angle on the side of 0°: 15 -> -1.5, 30 -> 15, ..., -30 -> -15.
    assert dict(pairs) == {2: 1, 0: 2, 5: 0, 4: 1, 3: 4}
    done = {reference}
    for j, i in pairs:
        assert i in done  # that neighbour is placed before
        done.add(j)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coarse_align_chains_the_shifts_of_a_series(seed):
    rng = np.random.default_rng(seed)
    specimen = _specimen(seed + 20)
    axis = rng.uniform(-180, 180)
    tilts = [-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0]
    order = rng.permutation(len(tilts))  # the stack's order is not the tilts' order
    shifts = rng.uniform(-6, 6, (len(tilts), 2))
    images = torch.stack([_noisy(_view(specimen, axis_deg=axis, tilt_deg=tilts[k], shift_px=shifts[k]), rng)
                          for k in order])  # fmt: skip
    result = coarse_align(images, [tilts[k] for k in order], axis_deg=axis)
    reference = int(np.argwhere(order == 3)[0, 0])
    assert result.reference_index == reference
    assert np.isnan(float(result.pair_scores[reference])) and result.neighbours[reference] == -1
    # Each image's shift relative to the reference's, the reference's own shift seen at the image's tilt. Errors
    # add up along the chain of three pairs: at most 0.17 px over seeds 0-9.
    for row, k in enumerate(order):
        to_here = frame_change(axis, 0.0, tilts[k]).numpy()
        expected = shifts[k] - to_here @ shifts[3]
        assert result.shifts_px[row].numpy() == pytest.approx(expected, abs=0.35), (tilts[k], row)
