"""The least-squares slab fit that measures how closely a stack's data determine its tilt axis
(:mod:`tomoprep.algorithms.axis_determinacy`), on noise-free blob stacks whose geometry is known."""

from __future__ import annotations

import pytest
import torch

from tomoprep.algorithms.axis_determinacy import fit_slab
from tomoprep.algorithms.backprojection import shared_field_window
from tomoprep.simulate.blob_stack import BlobStackSpec, make_blob_stack


def _fit(spec: BlobStackSpec, axis_offset_deg: float, *, rows: int, iterations: int, depth_px: int):
    stack, truth = make_blob_stack(spec)
    images = torch.from_numpy(stack).double()
    shifts = torch.tensor(truth.shifts_px, dtype=torch.float64)
    field = shared_field_window(images.shape[-2:], axis_deg=truth.tilt_axis_deg, shifts_px=shifts,
                                axis_margin_deg=1.5)  # fmt: skip
    middle = images.shape[-2] // 2
    return fit_slab(images, [t + truth.pretilt_deg for t in truth.tilts_deg], shifts_px=shifts, field=field,
                    axis_deg=truth.tilt_axis_deg + axis_offset_deg, nz=depth_px,
                    rows=slice(middle - rows // 2, middle + rows // 2), iterations=iterations)  # fmt: skip


def test_the_fit_explains_a_consistent_stack() -> None:
    """At the true geometry the images are projections of a specimen in the slab: the fit explains all but a
    small fraction of their energy, and what it leaves falls along the iterations."""
    spec = BlobStackSpec(size_px=48, tilt_step_deg=10.0, thickness_px=6, helix_blobs=0, noise_to_signal=0.0, seed=4)
    fit = _fit(spec, 0.0, rows=6, iterations=40, depth_px=16)
    fractions = [fraction for _, fraction in fit.history]
    assert fractions == sorted(fractions, reverse=True)
    assert fit.residual_energy / fit.data_energy < 1e-3
    assert fit.data_energy > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_sheet_shows_a_wrong_axis_that_a_thick_slab_absorbs(seed: int) -> None:
    """A sheet a few pixels deep has fewer unknowns per row than the tilts give measurements: turned 1° off the
    true axis its images are left with several times the unexplained energy. A slab 48 px deep has twice as many
    unknowns as measurements, and its specimen takes up nearly all of the same error."""
    sheet = BlobStackSpec(seed=seed, thickness_px=4, face_width_px=0.5, helix_blobs=0, noise_to_signal=0.0)
    slab = BlobStackSpec(seed=seed, noise_to_signal=0.0)
    sheet_fits = [_fit(sheet, d, rows=16, iterations=100, depth_px=15) for d in (0.0, 1.0)]
    slab_fits = [_fit(slab, d, rows=16, iterations=100, depth_px=68) for d in (0.0, 1.0)]
    assert sheet_fits[1].residual_energy > 2.5 * sheet_fits[0].residual_energy
    # The slab's whole difference is a small part of what the sheet's axis error leaves.
    slab_gain = (slab_fits[1].residual_energy - slab_fits[0].residual_energy) / slab_fits[0].data_energy
    sheet_gain = (sheet_fits[1].residual_energy - sheet_fits[0].residual_energy) / sheet_fits[0].data_energy
    assert slab_gain < 0.2 * sheet_gain
