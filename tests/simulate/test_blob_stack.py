"""The second stack generator: its geometry agrees with the projection model the alignment uses."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import mrcfile
import numpy as np
import pytest

from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.simulate.blob_stack import BlobStackSpec, make_blob_stack, write_blob_stack

SMALL = BlobStackSpec(size_px=96, thickness_px=24, tilt_range_deg=60, tilt_step_deg=15, seed=3)


def _helix_only(spec: BlobStackSpec) -> BlobStackSpec:
    return replace(spec, blob_volume_fraction=0.0, ice_contrast=0.0, noise_to_signal=0.0)


@pytest.mark.parametrize(("axis_deg", "stage_offset_deg", "pretilt_deg"), [(-95, 3.5, 0), (84.3, -6, 8), (178, 12, -5)])
def test_helix_centroid_lands_where_relion_projection_puts_it(axis_deg, stage_offset_deg, pretilt_deg):
    spec = _helix_only(
        replace(SMALL, tilt_axis_deg=axis_deg, stage_offset_deg=stage_offset_deg, pretilt_deg=pretilt_deg,
                slab_z_px=5.0)
    )  # fmt: skip
    stack, truth = make_blob_stack(spec)
    turn = np.linspace(0, 4 * math.pi, spec.helix_blobs)
    helix = np.column_stack(
        [6 * np.cos(turn), 6 * np.sin(turn), 0.6 * spec.thickness_px * (turn / turn[-1] - 0.5) + spec.slab_z_px]
    )
    slab = projection_rotation(y_tilt_deg=pretilt_deg, z_rot_deg=0).numpy()
    ys, xs = np.mgrid[: spec.size_px, : spec.size_px] - spec.size_px // 2
    for image, tilt, shift in zip(stack, truth.tilts_deg, truth.shifts_px, strict=True):
        mass = image.max() - image
        centroid = np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
        rotation = projection_rotation(y_tilt_deg=tilt, z_rot_deg=axis_deg).numpy()
        expected = (helix @ slab.T @ rotation.T)[:, :2].mean(axis=0) + shift
        assert np.allclose(centroid, expected, atol=0.05), (tilt, centroid, expected)


def test_truth_tilts_offset_and_noise_level():
    spec = replace(SMALL, noise_to_signal=1.0, stage_offset_deg=-4.0, pretilt_deg=2.5)
    stack, truth = make_blob_stack(spec)
    clean, _ = make_blob_stack(replace(spec, noise_to_signal=0.0))
    assert np.allclose(np.array(truth.tilts_deg) - truth.nominal_tilts_deg, -4.0)
    assert truth.flat_tilt_offset_deg == pytest.approx(-1.5)
    signal_sd = (clean - clean.mean(axis=(1, 2), keepdims=True)).std()
    assert (stack - clean).std() == pytest.approx(signal_sd, rel=0.02)
    again, _ = make_blob_stack(spec)
    assert np.array_equal(stack, again)


def test_ice_path_darkens_tilted_images_as_one_over_cosine():
    spec = replace(SMALL, blob_volume_fraction=0.0, helix_blobs=0, noise_to_signal=0.0, stage_offset_deg=0.0)
    stack, truth = make_blob_stack(spec)
    level = stack.mean(axis=(1, 2), dtype=np.float64)
    darkening = level[len(level) // 2] - level  # ice path beyond the untilted one, times a density
    excess_path = 1 / np.cos(np.radians(truth.tilts_deg)) - 1
    assert np.allclose(darkening / darkening[0], excess_path / excess_path[0], rtol=1e-3)
    assert np.ptp(stack[0]) < 1e-3 * darkening[0]


def test_written_stack_tilts_and_truth(tmp_path):
    truth = write_blob_stack(tmp_path, SMALL, name="TS_07")
    with mrcfile.open(tmp_path / "TS_07.mrc") as mrc:
        assert mrc.data.shape == (9, 96, 96)
        assert float(mrc.voxel_size.x) == pytest.approx(SMALL.pixel_spacing_angstrom)
    tilts = [float(v) for v in (tmp_path / "TS_07.rawtlt").read_text().split()]
    assert tilts == pytest.approx(truth.nominal_tilts_deg)
    record = json.loads((tmp_path / "TS_07_truth.json").read_text())
    assert record["truth"]["nominal_tilt_axis_deg"] == pytest.approx(SMALL.tilt_axis_deg + SMALL.nominal_axis_error_deg)
    assert record["truth"]["thickness_angstrom"] == pytest.approx(SMALL.thickness_px * SMALL.pixel_spacing_angstrom)
