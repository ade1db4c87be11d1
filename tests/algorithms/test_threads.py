"""Kernels give the same result whatever the number of threads, and do not jump on rounding differences.

Another machine (more cores, other vector units, another FFT or BLAS build) sums in another order, so its results
differ from these in the last bits. A result that is continuous in its input moves by as little; one that passes a
threshold or picks a winner on the way (a block kept or dropped, a grid point chosen) may jump, and a test near its
tolerance then passes here and fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from tomoprep.algorithms.projection_matching import refine_shifts
from tomoprep.algorithms.specimen_slab import measure_slab
from tomoprep.algorithms.tilt_xcorr import coarse_align

TILTS_DEG = [float(t) for t in np.arange(-60.0, 60.1, 6.0)]


def _with_threads(threads: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        return compute()
    finally:
        torch.set_num_threads(before)


def _slab(seed: int, slope_x: float = 0.12) -> torch.Tensor:
    """Slices ``(ny, nz, nx)`` of a 40-voxel slab (strong random density, weak noise around it) tilted by
    ``slope_x`` along x and -0.03 along y, centred 6 voxels above the middle."""
    ny, nz, nx = 64, 96, 128
    rng = np.random.default_rng(seed)
    z = np.arange(nz)[None, :, None] - nz // 2
    mid = 6.0 + slope_x * (np.arange(nx)[None, None, :] - nx // 2) - 0.03 * (np.arange(ny)[:, None, None] - ny // 2)
    inside = (np.abs(z - mid) <= 20.0).astype(np.float32)
    return torch.from_numpy(rng.normal(size=(ny, nz, nx)).astype(np.float32) * (0.15 + inside))


def _slab_figures(slices: torch.Tensor) -> np.ndarray:
    measured = measure_slab(slices)
    return np.array([measured.fit.thickness, measured.fit.centre, measured.slope_x, measured.slope_y])


def _kernels(blob_series) -> Iterator[tuple[str, Callable[[], np.ndarray], float]]:
    """``(name, computation, tolerance)``: the tolerance is a hundredth of the kernel's own tests' tolerance."""
    images, shifts = blob_series(30.0, TILTS_DEG, 0)
    yield "measure_slab", lambda: _slab_figures(_slab(2)), 1e-4
    yield "coarse_align", lambda: coarse_align(images, TILTS_DEG, axis_deg=30.0).shifts_px.numpy(), 3e-3
    yield "refine_shifts", lambda: refine_shifts(images, TILTS_DEG, axis_deg=30.0, shifts_px=shifts, nz=24,
                                            iterations=1).shifts_px.numpy(), 3e-3  # fmt: skip


@pytest.mark.slow
def test_one_two_and_four_threads_agree(blob_series):
    for name, compute, tolerance in _kernels(blob_series):
        one, two, four = (_with_threads(threads, compute) for threads in (1, 2, 4))
        assert np.abs(two - one).max() <= tolerance, name
        assert np.abs(four - one).max() <= tolerance, name


#: The further seeds (1.5-3 s each on two cores) run in the full suite; the quick tier keeps the first.
@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_slab_figures_do_not_jump_on_rounding_differences(seed):
    """Density changed by a part in a million (rounding of float32 sums in another order is below that) moves
    the slab's thickness, centre and slopes continuously: by 1e-6 voxel and 1e-8 of slope here, where a block
    dropped or a box fit stopped elsewhere would move them by a tenth of the tests' tolerances."""
    slices = _slab(seed)
    exact = _slab_figures(slices)
    for k in range(3):
        noise = torch.randn(slices.shape, generator=torch.Generator().manual_seed(k))
        moved = _slab_figures(slices * (1 + 1e-6 * noise))
        assert (np.abs(moved - exact) <= [1e-3, 1e-3, 1e-5, 1e-5]).all()
