"""The tilt offset from the fall of each tilt's mean intensity with the path through the slab."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tomoprep.algorithms.slab_attenuation import MAX_OFFSET_ERROR_DEG, tilt_offset_from_attenuation
from tomoprep.simulate.blob_stack import BlobStackSpec, make_blob_stack

NOMINAL_DEG = np.arange(-60.0, 61.0, 3.0)


def _beer_lambert(offset_deg: float, *, path_per_mean_free_path: float = 0.3, scatter: float = 0.002,
                  seed: int = 0) -> np.ndarray:  # fmt: skip
    """Means of a bright-field series of a slab, with a relative scatter per tilt (the content in each field)."""
    rng = np.random.default_rng(seed)
    path = path_per_mean_free_path / np.cos(np.radians(NOMINAL_DEG + offset_deg))
    return 40.0 * np.exp(-path) * (1 + rng.normal(0.0, scatter, NOMINAL_DEG.size))


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "stage_offset_deg", "pretilt_deg"), [(1, 3.5, 0.0), (2, -6.0, 4.0), (3, 12.0, -4.0)])
def test_blob_stack_offset_within_a_third_of_a_degree(seed: int, stage_offset_deg: float, pretilt_deg: float) -> None:
    """On stacks of the second generator (a level less the projected density: not exactly exponential) the
    offset that makes the slab flat comes out within the alignment's 0.3° tolerance."""
    spec = BlobStackSpec(size_px=192, seed=seed, stage_offset_deg=stage_offset_deg, pretilt_deg=pretilt_deg,
                         thickness_px=40, helix_blobs=0)  # fmt: skip
    stack, truth = make_blob_stack(spec)
    found = tilt_offset_from_attenuation(stack.mean(axis=(1, 2)), truth.nominal_tilts_deg)
    assert found.usable, found.reason
    assert abs(found.offset_deg - truth.flat_tilt_offset_deg) <= 0.3
    assert found.offset_error_deg <= MAX_OFFSET_ERROR_DEG


@pytest.mark.parametrize("offset_deg", [-20.0, -1.5, 0.0, 9.5])
def test_beer_lambert_means_give_the_offset_within_its_standard_error(offset_deg: float) -> None:
    """Means scattered by 0.2 % per tilt: the offset within three of its standard errors, which are under 0.15°."""
    for seed in range(4):
        found = tilt_offset_from_attenuation(_beer_lambert(offset_deg, seed=seed), NOMINAL_DEG)
        assert found.usable, found.reason
        assert found.offset_error_deg < 0.15
        assert abs(found.offset_deg - offset_deg) <= 3 * found.offset_error_deg


def test_longer_exposures_at_high_tilt_are_divided_out() -> None:
    """A series exposed as 1/cos of the tilt is brighter at high tilt; given the exposures, the offset holds."""
    exposures = 2.0 / np.cos(np.radians(NOMINAL_DEG))
    means = _beer_lambert(4.0, seed=1) * exposures
    given = tilt_offset_from_attenuation(means, NOMINAL_DEG, exposures=exposures)
    assert given.usable and given.offset_deg == pytest.approx(4.0, abs=0.1)
    ignored = tilt_offset_from_attenuation(means, NOMINAL_DEG)
    assert not ignored.usable or abs(ignored.offset_deg - 4.0) > 0.3


@pytest.mark.parametrize(
    ("means", "why"),
    [
        (_beer_lambert(3.0) - _beer_lambert(3.0).mean(), "not all positive"),
        (100.0 - _beer_lambert(3.0), "does not fall with the path"),  # a dark-field series brightens
        (
            np.full(NOMINAL_DEG.size, 5.0) * (1 + np.random.default_rng(0).normal(0, 0.01, NOMINAL_DEG.size)),
            "does not fall with the path",
        ),  # normalised to one level: no trend
        (_beer_lambert(3.0, scatter=0.05), "explains"),  # means dominated by something else than the slab
    ],
)
def test_means_that_are_not_a_slab_s_attenuation_are_not_used(means: np.ndarray, why: str) -> None:
    found = tilt_offset_from_attenuation(means, NOMINAL_DEG)
    assert not found.usable
    assert why in found.reason


def test_too_few_tilts_are_not_used() -> None:
    found = tilt_offset_from_attenuation(_beer_lambert(1.0)[:5], NOMINAL_DEG[:5])
    assert not found.usable and "fewer than" in found.reason
    assert math.isnan(found.offset_deg)
