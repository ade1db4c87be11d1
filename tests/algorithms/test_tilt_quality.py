"""Tilt quality: planted bad tilts of simulated series are found with the right reason, and good ones are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoprep.algorithms.brightness import beer_lambert_fit, dark_fractions, gaussian_lowpass, is_absolute
from tomoprep.algorithms.tilt_quality import (
    QualityThresholds,
    TiltQuality,
    measure_tilt_quality,
    neighbour_shifts_px,
    neighbour_trend,
)
from tomoprep.io.mrc import read_mrc
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import SeriesTruth

#: A demo series at 10 Å/px: 31 tilts of 512², 2 frames each, 1500 Å of ice; three planted bad tilts.
DEMO = {"preset": "demo", "n_tilt_series": 1, "write_tilt_stack": True, "frames_per_tilt": 2,
        "pixel_spacing_angstrom": 10.0, "thickness_min_angstrom": 1500.0, "thickness_max_angstrom": 1500.0,
        "bad_tilts": 3}  # fmt: skip
DEFAULTS = QualityThresholds()


@pytest.fixture(
    scope="module",
    params=[pytest.param((1, 85.0), marks=pytest.mark.slow), pytest.param((2, -95.0), marks=pytest.mark.slow)],
    ids=["seed1-axis85", "seed2-axis-95"],
)
def series(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Stack (sorted by angle), its series truth and the measures with default thresholds."""
    seed, axis = request.param
    out = tmp_path_factory.mktemp("quality") / "session"
    truth = simulate_session(out, SimulateParams(**DEMO, seed=seed, tilt_axis_angle_deg=axis))
    series = truth.tilt_series[0]
    stack = torch.from_numpy(read_mrc(out / series.stack).copy())  # type: ignore[operator]
    tilts = sorted(series.tilts, key=lambda t: t.stack_index)
    quality = measure_tilt_quality(
        stack, [t.nominal_tilt_deg for t in tilts], axis_deg=axis, pixel_spacing_angstrom=10.0
    )
    return stack, series, quality


def _planted(series: SeriesTruth) -> list[str | None]:
    return [t.planted_defect for t in sorted(series.tilts, key=lambda t: t.stack_index)]


def _found(quality: TiltQuality) -> list[str | None]:
    return [reasons[0].split(":")[0] if reasons else None for reasons in quality.reasons]


def test_every_planted_tilt_is_found_with_its_reason_and_no_good_one(series) -> None:
    _, truth, quality = series
    assert quality.absolute
    assert _found(quality) == _planted(truth)
    for reasons in quality.reasons:
        assert len({r.split(":")[0] for r in reasons}) <= 1  # one kind of reason per bad tilt


def test_measures_clear_their_thresholds_with_margin(series) -> None:
    _, truth, quality = series
    planted = np.array(_planted(truth), dtype=object)
    good = planted == None  # noqa: E711
    # Planted jumps are 20-30 % of the field; good tilts move a few pixels of 512 from their neighbours.
    assert np.nanmax(quality.shift_fraction[good]) < 0.05 < DEFAULTS.shift_fraction
    assert np.all(quality.shift_fraction[planted == "shifted"] > 0.18)
    assert np.all(np.abs(quality.mean_ratio[good] - 1) < 0.05) and np.all(quality.dark_fraction[good] == 0)
    dark = planted == "dark"
    # A region over half the image at the least: its mean may be just above half, its area is below the level.
    assert np.all((quality.mean_ratio[dark] < 0.45) | (quality.dark_fraction[dark] > 0.45))
    assert np.nanmin(quality.sharpness_ratio[good]) > 0.6
    assert np.all(quality.sharpness_ratio[planted == "blurred"] < 0.15)
    assert np.all(quality.sharpness_z[planted == "blurred"] < -10)


def test_normalised_images_judge_darkness_by_area_only(series) -> None:
    stack, truth, _ = series
    normalised = (stack - stack.mean(dim=(1, 2), keepdim=True)) / stack.std(dim=(1, 2), keepdim=True)
    tilts = sorted(truth.tilts, key=lambda t: t.stack_index)
    angles = [t.nominal_tilt_deg for t in tilts]
    quality = measure_tilt_quality(
        normalised, angles, axis_deg=truth.nominal_tilt_axis_deg, pixel_spacing_angstrom=10.0
    )
    assert not quality.absolute and np.all(np.isnan(quality.mean_ratio))
    expected = _planted(truth)
    for k, tilt in enumerate(tilts):
        if tilt.planted_defect == "dark" and "whole image" in (tilt.planted_defect_detail or ""):
            # Normalised, a uniformly dark image has no level to betray it; a tenth of the electrons leaves a
            # tenth of the detail's signal-to-noise, so it goes as having lost its detail.
            expected[k] = "blurred"
    assert _found(quality) == expected


def _textured(shape: tuple[int, int], seed: int) -> torch.Tensor:
    noise = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, *shape)).astype(np.float32))
    return 100.0 + 30.0 * gaussian_lowpass(noise, 3.0)[0] / gaussian_lowpass(noise, 3.0).std()


@pytest.mark.parametrize("jumped", [4, 7, 8])
def test_one_jump_flags_its_tilt_and_not_the_tilt_beyond(jumped: int) -> None:
    """Nine tilts of one texture; one is moved by 50 px of 256 (the last is compared beyond its neighbour)."""
    texture = _textured((384, 384), 0)
    tilts = [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]
    images = torch.stack([texture[32:288, 32:288] for _ in tilts])
    images[jumped] = texture[32 + 30 : 288 + 30, 32 + 40 : 288 + 40]
    shifts = neighbour_shifts_px(images, tilts, axis_deg=85.0, usable=np.ones(9, dtype=bool))
    smallest = np.nanmin(shifts.from_sides_px, axis=1)
    assert smallest[jumped] == pytest.approx(50.0, abs=1.5)
    assert np.all(np.delete(smallest, jumped) < 1.5)
    assert np.all(shifts.closure_px < 1.5)  # every correlation found the texture


def test_a_steady_drift_is_no_jump() -> None:
    """Nine tilts each 40 px of 256 further along: far from both neighbours, but on the line through them."""
    texture = _textured((640, 640), 1)
    tilts = [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]
    images = torch.stack([texture[40 + 20 * k : 296 + 20 * k, 40 + 35 * k : 296 + 35 * k] for k in range(9)])
    shifts = neighbour_shifts_px(images, tilts, axis_deg=85.0, usable=np.ones(9, dtype=bool))
    assert np.all(shifts.from_sides_px[:, :2] > 35)
    assert np.all(shifts.from_sides_px[:, 2] < 1.5)
    quality = measure_tilt_quality(images, tilts, axis_deg=85.0, pixel_spacing_angstrom=10.0)
    assert not quality.shifted.any()


#: The further seeds (1.5-3 s each on two cores) run in the full suite; the quick tier keeps the first.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_correlations_that_disagree_exclude_no_tilt(seed: int) -> None:
    """Seven tilts of independent noise: every correlation peaks somewhere, the triangles stay open, and no tilt
    is called shifted; the same tilts with one moved by 60 px of 256 still show the jump."""
    rng = np.random.default_rng(seed)
    tilts = [-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0]
    noise = torch.from_numpy(rng.normal(100.0, 10.0, size=(7, 256, 256)).astype(np.float32))
    quality = measure_tilt_quality(noise, tilts, axis_deg=85.0, pixel_spacing_angstrom=10.0)
    assert np.nanmin(quality.shift_closure_fraction) > DEFAULTS.shift_fraction / 3
    assert not quality.shifted.any() and not any("shifted" in r for rs in quality.reasons for r in rs)
    texture = _textured((384, 384), seed)
    images = torch.stack([texture[64:320, 64:320] for _ in tilts])
    images[seed + 2] = texture[64 + 36 : 320 + 36, 64 + 48 : 320 + 48]
    quality = measure_tilt_quality(images, tilts, axis_deg=85.0, pixel_spacing_angstrom=10.0)
    assert [bool(b) for b in quality.shifted] == [k == seed + 2 for k in range(7)]


def test_trend_extrapolates_to_the_outermost_tilt() -> None:
    ranks = np.arange(12)
    values = np.exp(-0.1 * ranks)  # falls steadily, as sharpness does with tilt
    values[5] *= 0.02
    ratio, z = neighbour_trend(values, ranks, judged=np.ones(12, bool), reference=np.arange(12) != 5)
    assert ratio[0] == pytest.approx(1.0, abs=1e-6) and ratio[11] == pytest.approx(1.0, abs=1e-6)
    assert ratio[5] == pytest.approx(0.02, rel=1e-3) and z[5] < -50


def test_beer_lambert_fit_ignores_dark_tilts() -> None:
    tilts = np.arange(-60.0, 61.0, 3.0)
    log_means = 5.0 - 0.4 / np.cos(np.radians(tilts - 8.0))
    log_means[[5, 20, 33]] += np.log(0.1)
    a, b, offset = beer_lambert_fit(tilts, log_means)
    assert (a, b, offset) == pytest.approx((5.0, 0.4, 8.0), abs=1e-6)


def test_dark_area_of_counts_and_of_normalised_images() -> None:
    rng = np.random.default_rng(1)
    light = np.ones((2, 128, 128), dtype=np.float32)
    light[1, :, :80] = 0.04  # 62.5 % behind a bar
    counts = torch.from_numpy(rng.poisson(light * 300).astype(np.float32))
    assert is_absolute(counts)
    fractions = dark_fractions(counts, absolute=True, dark_level=0.3)
    assert fractions[0] == 0 and fractions[1] == pytest.approx(80 / 128, abs=0.03)
    normalised = (counts - counts.mean(dim=(1, 2), keepdim=True)) / counts.std(dim=(1, 2), keepdim=True)
    assert not is_absolute(normalised)
    fractions = dark_fractions(normalised, absolute=False, dark_level=0.3)
    assert fractions[0] < 0.01 and fractions[1] == pytest.approx(80 / 128, abs=0.05)


#: The further seeds (1.5-3 s each on two cores) run in the full suite; the quick tier keeps the first.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_dark_ground_of_a_dark_field_series_is_no_dark_tilt(seed: int) -> None:
    """Sparse bright particles on a dark ground in every tilt (dark-field STEM): only the tilt mostly behind a
    bar is dark."""
    rng = np.random.default_rng(seed)
    tilts = np.arange(-45.0, 46.0, 5.0)
    field = np.full((160, 160), 20.0)
    for y, x in rng.integers(8, 152, (40, 2)):
        field[y - 6 : y + 6, x - 6 : x + 6] = 400.0
    drift = np.cumsum(rng.integers(-1, 2, (len(tilts), 2)), axis=0) + 16
    ground = np.stack([field[y : y + 128, x : x + 128] for y, x in drift])
    barred = 7
    ground[barred, :, :96] = 2.0
    images = torch.from_numpy(rng.poisson(ground).astype(np.float32))
    quality = measure_tilt_quality(images, tilts, axis_deg=0.0, pixel_spacing_angstrom=20.0)
    assert quality.usual_dark_fraction > 0.5  # most of every image lies below 30 % of its bright level
    dark = np.array(["dark" in " ".join(reasons) for reasons in quality.reasons])
    assert dark[barred] and not np.delete(dark, barred).any()
    assert not np.delete(quality.bad, barred).any()


def _slab_series(seed: int, tilts: list[float], *, jump_along_axis_px: dict[int, float]) -> torch.Tensor:
    """Tilt images of a slab 2000 Å thick on a field of 128 px at 4 Å (axis along image Y): five textured layers
    at depths -1000..1000 Å, each moving across the axis by ``z sin(tilt)`` and foreshortened by ``cos(tilt)``,
    each with a weight drawn per tilt (which layer dominates changes from tilt to tilt), a few pixels of
    tracking error, and the given jumps along the axis."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    depths_px = np.linspace(-1000.0, 1000.0, 5) / 4.0
    layers = [_textured((384, 384), 100 * seed + k).numpy() - 100.0 for k in range(len(depths_px))]
    yy, xx = np.indices((128, 128), dtype=float) - 64.0
    images = []
    for index, tilt in enumerate(tilts):
        sine, cosine = np.sin(np.radians(tilt)), np.cos(np.radians(tilt))
        wander_x, wander_y = rng.normal(0.0, 2.0, size=2)
        y = yy - wander_y - jump_along_axis_px.get(index, 0.0)
        image = np.full((128, 128), 100.0)
        for depth, layer in zip(depths_px, layers, strict=True):
            x = (xx - wander_x - depth * sine) / cosine
            image += rng.uniform(0.5, 1.0) * ndimage.map_coordinates(layer, [y + 192.0, x + 192.0], order=1)
        images.append(image)
    return torch.from_numpy(np.stack(images).astype(np.float32))


SLAB_TILTS = [-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_parallax_of_a_thick_slab_on_a_small_field_is_no_displacement(seed: int) -> None:
    """Ice four times as thick as the field is wide: its layers move apart across the axis by most of the field
    from tilt to tilt and which depth dominates changes, so the raw correlations put good tilts up to a third of
    the field from their neighbours; beyond the parallax no tilt is displaced, and none is called shifted."""
    images = _slab_series(seed, SLAB_TILTS, jump_along_axis_px={})
    flat = QualityThresholds(specimen_thickness_angstrom=0.0)
    raw = measure_tilt_quality(images, SLAB_TILTS, axis_deg=0.0, pixel_spacing_angstrom=4.0, thresholds=flat)
    quality = measure_tilt_quality(images, SLAB_TILTS, axis_deg=0.0, pixel_spacing_angstrom=4.0)
    assert np.nanmax(raw.shift_fraction) > DEFAULTS.shift_fraction  # the case the allowance is for
    assert np.nanmax(quality.shift_fraction) < 0.05 and not quality.shifted.any(), quality.shift_fraction


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_jump_along_the_axis_of_a_thick_slab_still_shows(seed: int) -> None:
    """The same series with one tilt (each in turn) jumped along the axis by 0.3 of the field, where depth moves
    nothing: the jump is measured beyond the parallax (in the median over the positions; where another layer
    dominates a pair, a correlation may miss it), and the other tilts stay near their neighbours."""
    measured, others = [], []
    for jumped in range(len(SLAB_TILTS)):
        images = _slab_series(seed, SLAB_TILTS, jump_along_axis_px={jumped: 0.3 * 128})
        quality = measure_tilt_quality(images, SLAB_TILTS, axis_deg=0.0, pixel_spacing_angstrom=4.0)
        measured.append(quality.shift_fraction[jumped])
        others.append(np.median(np.delete(quality.shift_fraction, jumped)))
    assert 0.22 < np.median(measured) < 0.36, measured
    assert np.max(others) < 0.05, others


@pytest.mark.parametrize("thickness_angstrom", [800.0, 2000.0, 5000.0])
def test_slab_thickness_comes_from_the_fall_of_brightness(thickness_angstrom: float) -> None:
    """Means falling as exp(-t / cos / 4000 Å), with 1 % noise and a dose raised at high tilt: the thickness is
    recovered to within 10 %; means that do not fall give none."""
    from tomoprep.algorithms.parallax import MEAN_FREE_PATH_ANGSTROM, slab_thickness_angstrom

    tilts = np.arange(-60.0, 61.0, 3.0)
    doses = 3.0 * (1.0 + (np.abs(tilts) > 40))
    path = thickness_angstrom / np.cos(np.radians(tilts)) / MEAN_FREE_PATH_ANGSTROM
    noise = 1.0 + 0.01 * np.random.default_rng(0).normal(size=tilts.size)
    means = 500.0 * doses * np.exp(-path) * noise
    assert slab_thickness_angstrom(means, tilts, doses) == pytest.approx(thickness_angstrom, rel=0.1)
    assert slab_thickness_angstrom(np.full(tilts.size, 500.0), tilts) is None
