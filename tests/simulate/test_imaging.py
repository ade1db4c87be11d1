"""The forward model: RELION 5 projection geometry, CTF (Thon rings, astigmatism, defocus gradient), damage, ice."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.simulate.crowding import CROWDER_SIGMAS_ANGSTROM, ball_volume_angstrom3
from tomoprep.simulate.ctf import electron_wavelength_angstrom, exposure_filter
from tomoprep.simulate.imaging import (
    Microscope,
    TiltCtf,
    TiltGeometry,
    ctf_1d,
    expected_image,
    ice_path_length_angstrom,
    project_points,
    projected_phase,
    projection_matrix,
)
from tomoprep.simulate.phantom import Phantom, empty_phantom, make_phantom

MICROSCOPE = Microscope()
COS85, SIN85 = math.cos(math.radians(85)), math.sin(math.radians(85))
R3 = math.sqrt(3) / 2 * 100  # 100 cos 30° = 100 sin 60° = 86.603 Å


def _one_ball(centre: tuple[float, float, float], *, sigma: float = 20.0, density: float = 0.002) -> Phantom:
    return dataclasses.replace(
        empty_phantom(thickness_angstrom=2000.0),
        ball_centres_angstrom=np.array([centre], dtype=float),
        ball_sigmas_angstrom=np.array([sigma]),
        ball_densities=np.array([density]),
        labels=("test",),
    )


def _complexes(*, seed: int, n_complexes: int, field_of_view_angstrom: float, pretilt_deg: float = 0.0) -> Phantom:
    """A phantom of complexes only (the chiral object's long arms would reach out of small test images)."""
    phantom = make_phantom(seed=seed, field_of_view_angstrom=(field_of_view_angstrom,) * 2, n_vesicles=0,
                           n_complexes=n_complexes, pretilt_deg=pretilt_deg)  # fmt: skip
    keep = np.array([label.startswith("complex:") for label in phantom.labels])
    return dataclasses.replace(
        phantom,
        ball_centres_angstrom=phantom.ball_centres_angstrom[keep],
        ball_sigmas_angstrom=phantom.ball_sigmas_angstrom[keep],
        ball_densities=phantom.ball_densities[keep],
        labels=tuple(label for label, kept in zip(phantom.labels, keep, strict=True) if kept),
    )


def _image(
    phantom: Phantom, g: TiltGeometry, ctf: TiltCtf, *, shape: int, pixel: float, microscope: Microscope = MICROSCOPE,
    **options,
) -> np.ndarray:  # fmt: skip
    settings = {"pre_exposure_e_per_angstrom2": 0.0, "dose_e_per_angstrom2": 0.0, "seed": 7} | options
    return expected_image(
        phantom, g, ctf, microscope, image_shape_yx=(shape, shape), pixel_spacing_angstrom=pixel, **settings
    )


def _radial_power(image: np.ndarray, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum: frequencies (1/Å) of one-Fourier-pixel bins and mean power."""
    power = np.abs(np.fft.rfft2(image - image.mean())) ** 2
    k_y = np.fft.fftfreq(image.shape[0], pixel)[:, None]
    k_x = np.fft.rfftfreq(image.shape[1], pixel)[None, :]
    step = 1.0 / (max(image.shape) * pixel)
    bins = np.rint(np.hypot(k_x, k_y) / step).astype(int)
    total = np.bincount(bins.ravel(), power.ravel())
    count = np.bincount(bins.ravel())
    return np.arange(total.size) * step, total / np.maximum(count, 1)


def _ctf_zeros(defocus: float, k_max: float, microscope: Microscope = MICROSCOPE) -> np.ndarray:
    k = np.linspace(1e-4, k_max, 200_000)
    values = ctf_1d(k, defocus_angstrom=defocus, microscope=microscope)
    return k[np.flatnonzero(np.diff(np.sign(values)) != 0)]


def _minimum_near(k: np.ndarray, power: np.ndarray, centre: float, half_width: float) -> float:
    """Position of the least power within ``centre ± half_width``, refined by a parabola through 3 bins."""
    inside = np.flatnonzero(np.abs(k - centre) <= half_width)
    i = inside[np.argmin(power[inside])]
    a, b, c = power[i - 1], power[i], power[i + 1]
    return float(k[i] + 0.5 * (a - c) / (a - 2 * b + c) * (k[1] - k[0]))


# --- geometry -------------------------------------------------------------------------------------------------

GEOMETRY_CASES = [
    # (axis, tilt, point xyz Å, expected (Δx, Δy) in Å from the centre, expected depth Å); worked by hand.
    (0, 0, (100, 0, 0), (100, 0), 0),
    (0, 30, (100, 0, 0), (R3, 0), -50),  # x·cos30 right of centre, rising -x·sin30 towards the source
    (0, 30, (0, 0, 100), (50, 0), R3),  # +z moves towards +x for a positive tilt about y
    (0, -60, (0, 0, 100), (-R3, 0), 50),
    (0, 60, (0, 100, 0), (0, 100), 0),  # points on the tilt axis do not move
    (90, 0, (100, 0, 0), (0, 100), 0),  # Rz(90): x -> y
    (90, 0, (0, 100, 0), (-100, 0), 0),  # the tilt axis (specimen y) lies along -x at axis 90
    (90, 30, (0, 0, 100), (0, 50), R3),
    (180, 30, (100, 0, 0), (-R3, 0), -50),
    (85, 60, (0, 0, 100), (R3 * COS85, R3 * SIN85), 50),  # (7.548, 86.273)
    (-95, 60, (0, 0, 100), (-R3 * COS85, -R3 * SIN85), 50),  # the same axis line, opposite direction
    (85, -30, (100, 0, 0), (R3 * COS85, R3 * SIN85), 50),
]


@pytest.mark.parametrize(("axis", "tilt", "point", "expected_xy", "expected_depth"), GEOMETRY_CASES)
def test_points_land_where_relion5_puts_them(
    axis: float, tilt: float, point: tuple[float, float, float], expected_xy: tuple[float, float], expected_depth: float
) -> None:
    shape, pixel = (120, 101), 2.0  # centre pixel (x, y) = (101 // 2, 120 // 2) = (50, 60)
    xy, depth = project_points(np.array([point]), TiltGeometry(tilt, axis), image_shape_yx=shape,
                               pixel_spacing_angstrom=pixel)  # fmt: skip
    assert xy[0] == pytest.approx([50 + expected_xy[0] / pixel, 60 + expected_xy[1] / pixel], abs=1e-9)
    assert depth[0] == pytest.approx(expected_depth, abs=1e-9)


def test_x_tilt_shift_and_centre() -> None:
    g = TiltGeometry(0.0, 0.0, x_tilt_deg=30.0)
    xy, depth = project_points(np.array([[0.0, 100.0, 0.0]]), g, image_shape_yx=(64, 64), pixel_spacing_angstrom=1.0)
    assert xy[0] == pytest.approx([32, 32 + R3]) and depth[0] == pytest.approx(50)  # Rx(30): y -> (0, cos, sin)
    shifted = TiltGeometry(40.0, 85.0, shift_x_angstrom=30.0, shift_y_angstrom=-20.0)
    plain = dataclasses.replace(shifted, shift_x_angstrom=0.0, shift_y_angstrom=0.0)
    points = np.random.default_rng(0).normal(0, 300, (5, 3))
    moved = project_points(points, shifted, image_shape_yx=(64, 65), pixel_spacing_angstrom=2.0)[0]
    still = project_points(points, plain, image_shape_yx=(64, 65), pixel_spacing_angstrom=2.0)[0]
    assert moved - still == pytest.approx(np.tile([15.0, -10.0], (5, 1)))
    origin = project_points(np.zeros((1, 3)), plain, image_shape_yx=(64, 65), pixel_spacing_angstrom=2.0)[0]
    assert origin[0] == pytest.approx([32, 32])  # N // 2 along each axis


def test_projection_matrix_is_rz_ry_rx() -> None:
    a, t, x = np.radians([85.0, -40.0, 7.0])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    assert projection_matrix(TiltGeometry(-40.0, 85.0, x_tilt_deg=7.0)) == pytest.approx(rz @ ry @ rx)


@pytest.mark.parametrize(("axis", "tilt"), [(0.0, 0.0), (85.0, 45.0), (-95.0, -60.0), (180.0, 30.0)])
def test_a_ball_appears_where_project_points_says(axis: float, tilt: float) -> None:
    centre = (60.0, -40.0, 100.0)
    g = TiltGeometry(tilt, axis, shift_x_angstrom=21.0, shift_y_angstrom=-13.0)
    image = _image(_one_ball(centre), g, TiltCtf(1.0, 1.0, 0.0), shape=128, pixel=4.0, apply_ctf=False,
                   ice_texture_psd_rad2_angstrom=0.0)  # fmt: skip
    weight = image.max() - image  # dense = dark
    y, x = np.indices(image.shape)
    found = np.array([(weight * x).sum(), (weight * y).sum()]) / weight.sum()
    expected = project_points(np.array([centre]), g, image_shape_yx=(128, 128), pixel_spacing_angstrom=4.0)[0][0]
    assert found == pytest.approx(expected, abs=0.3)


def _crowders_and_balls(n: int, half_extent_angstrom: tuple[float, float, float], *, seed: int) -> tuple[Phantom, ...]:
    """The same random balls in a box (a slab as deep as the box) as crowders, drawn in bulk and with their mean
    density over the box, and as ordinary balls, drawn one by one."""
    rng = np.random.default_rng(seed)
    half = np.array(half_extent_angstrom)
    centres = np.round(rng.uniform(-1.0, 1.0, (n, 3)) * half, 1)
    sizes = rng.integers(0, len(CROWDER_SIGMAS_ANGSTROM), n)
    slab = empty_phantom(thickness_angstrom=2 * half[2])
    sigmas = np.array(CROWDER_SIGMAS_ANGSTROM)[sizes]
    mean = slab.crowder_density * ball_volume_angstrom3(sigmas).sum() / np.prod(2 * half)
    crowders = dataclasses.replace(slab, crowder_centres_angstrom=centres, crowder_size_index=sizes,
                                   crowder_mean_density=mean)  # fmt: skip
    balls = dataclasses.replace(slab, ball_centres_angstrom=centres, ball_sigmas_angstrom=sigmas,
                                ball_densities=np.full(n, slab.crowder_density), labels=("ball",) * n)  # fmt: skip
    return crowders, balls


@pytest.mark.parametrize(("pixel", "tolerance"), [(1.7, 2e-3), (3.0, 2e-3), (6.0, 5e-3)])
def test_crowders_drawn_in_bulk_equal_the_same_balls_drawn_one_by_one(pixel: float, tolerance: float) -> None:
    crowders, balls = _crowders_and_balls(40, (300.0, 300.0, 300.0), seed=1)
    g = TiltGeometry(35.0, 85.0, shift_x_angstrom=13.3, shift_y_angstrom=-7.1)
    shape = (round(900 / pixel), round(1000 / pixel))
    for exposure in (0.0, 40.0):
        bulk, one_by_one = (projected_phase(p, g, image_shape_yx=shape, pixel_spacing_angstrom=pixel,
                                            exposure_e_per_angstrom2=exposure) for p in (crowders, balls))  # fmt: skip
        assert np.abs(bulk - one_by_one).max() <= tolerance * one_by_one.max()


def test_crowders_give_texture_their_mean_goes_to_the_slab() -> None:
    # A crowded slab wider than the image: its projected phase holds the crowders' mean density along the path;
    # an image shows their texture but not that mean (the slab material's, in its attenuation).
    crowders, _ = _crowders_and_balls(2500, (700.0, 700.0, 300.0), seed=2)
    g, ctf, pixel = TiltGeometry(0.0, 85.0), TiltCtf(30000.0, 29000.0, 20.0), 4.0
    phase = projected_phase(crowders, g, image_shape_yx=(256, 256), pixel_spacing_angstrom=pixel)
    assert phase.mean() == pytest.approx(crowders.crowder_mean_density * 600.0, rel=0.05)
    image = _image(crowders, g, ctf, shape=256, pixel=pixel, ice_texture_psd_rad2_angstrom=0.0)
    transmission = math.exp(-600.0 / 3500.0)
    assert image.mean() == pytest.approx(transmission, rel=0.005)
    assert image.std() > 0.02 * transmission


def test_projected_phase_integrates_to_the_balls_mass() -> None:
    phantom = _complexes(seed=3, n_complexes=5, field_of_view_angstrom=600.0)
    phase = projected_phase(phantom, TiltGeometry(20.0, 85.0), image_shape_yx=(256, 256), pixel_spacing_angstrom=4.0)
    mass = np.sum(phantom.ball_densities * (2 * np.pi) ** 1.5 * phantom.ball_sigmas_angstrom**3)
    assert phase.sum() * 4.0**2 == pytest.approx(mass, rel=0.01)


# --- CTF ------------------------------------------------------------------------------------------------------


def test_ctf_sign_convention() -> None:
    assert ctf_1d(np.array([0.0]), defocus_angstrom=20000.0, microscope=MICROSCOPE)[0] == pytest.approx(-0.07)
    # Underfocus: the first lobe is negative (dense = dark), its zero where χ + asin(A) = π.
    no_cs = Microscope(spherical_aberration_mm=0.0)
    wavelength = electron_wavelength_angstrom(300.0)
    first_zero = math.sqrt((1 - math.asin(0.07) / math.pi) / (wavelength * 20000.0))
    k = np.array([0.5, 0.999, 1.001]) * first_zero
    values = ctf_1d(k, defocus_angstrom=20000.0, microscope=no_cs)
    assert values[0] < 0 and values[1] < 0 < values[2]


def _assert_minima_at_zeros(k: np.ndarray, power: np.ndarray, zeros: np.ndarray) -> None:
    assert len(zeros) >= 3
    for previous, zero, following in zip(zeros[:-2], zeros[1:-1], zeros[2:], strict=True):
        found = _minimum_near(k, power, zero, 0.4 * min(zero - previous, following - zero))
        assert found == pytest.approx(zero, rel=0.03)


@pytest.mark.parametrize(("defocus", "voltage"), [(30000.0, 300.0), (15000.0, 300.0), (20000.0, 200.0)])
def test_thon_rings_sit_at_the_ctf_zeros(defocus: float, voltage: float) -> None:
    pixel, microscope = 2.0, Microscope(voltage_kv=voltage)
    image = _image(empty_phantom(thickness_angstrom=300.0), TiltGeometry(0.0, 85.0),
                   TiltCtf(defocus, defocus, 0.0), shape=512, pixel=pixel, microscope=microscope)  # fmt: skip
    k, power = _radial_power(image, pixel)
    _assert_minima_at_zeros(k, power, _ctf_zeros(defocus, k_max=0.12, microscope=microscope))


@pytest.mark.parametrize("hand", [-1, 1])
def test_eucentric_error_shifts_the_defocus_by_hand(hand: int) -> None:
    # A slab 2000 Å above the specimen centre (z' = z at zero tilt) is imaged at defocus + hand * 2000.
    pixel, defocus = 2.0, 20000.0
    slab = empty_phantom(thickness_angstrom=200.0, z_offset_angstrom=2000.0)
    image = _image(slab, TiltGeometry(0.0, 85.0), TiltCtf(defocus, defocus, 0.0, hand=hand), shape=512, pixel=pixel,
                   layer_thickness_angstrom=100.0)  # fmt: skip
    k, power = _radial_power(image, pixel)
    _assert_minima_at_zeros(k, power, _ctf_zeros(defocus + hand * 2000.0, k_max=0.12))


def test_astigmatism_puts_du_along_the_angle_from_x() -> None:
    pixel, shape = 2.0, 512
    d_u, d_v, angle = 20000.0, 30000.0, 30.0
    image = _image(empty_phantom(thickness_angstrom=300.0), TiltGeometry(0.0, 0.0), TiltCtf(d_u, d_v, angle),
                   shape=shape, pixel=pixel)  # fmt: skip
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    k_y = np.fft.fftfreq(shape, pixel)[:, None]  # along array rows (image Y)
    k_x = np.fft.fftfreq(shape, pixel)[None, :]
    theta = np.degrees(np.arctan2(k_y, k_x))
    step = 1.0 / (shape * pixel)
    bins = np.rint(np.hypot(k_x, k_y) / step).astype(int)
    for direction, defocus in ((angle, d_u), (angle + 90.0, d_v)):
        wedge = np.abs((theta - direction + 90.0) % 180.0 - 90.0) < 8.0  # both half-planes
        total = np.bincount(bins[wedge], power[wedge])
        count = np.maximum(np.bincount(bins[wedge]), 1)
        k, profile = np.arange(total.size) * step, total / count
        _assert_minima_at_zeros(k, profile, _ctf_zeros(defocus, k_max=0.11))


def _fit_defocus(strip: np.ndarray, pixel: float, candidates: np.ndarray) -> float:
    k, power = _radial_power(strip, pixel)
    band = (k > 0.04) & (k < 0.14)
    scores = [np.corrcoef(power[band], ctf_1d(k[band], defocus_angstrom=d, microscope=MICROSCOPE) ** 2)[0, 1]
              for d in candidates]  # fmt: skip
    return float(candidates[int(np.argmax(scores))])


@pytest.mark.parametrize("hand", [-1, 1])
def test_defocus_gradient_across_the_tilt_axis_follows_hand(hand: int) -> None:
    pixel, shape, tilt, defocus = 3.0, 512, 50.0, 15000.0
    image = _image(empty_phantom(thickness_angstrom=200.0), TiltGeometry(tilt, 0.0),
                   TiltCtf(defocus, defocus, 0.0, hand=hand), shape=shape, pixel=pixel,
                   layer_thickness_angstrom=50.0)  # fmt: skip
    candidates = np.arange(12000.0, 18000.0, 10.0)
    left = _fit_defocus(image[:, :160], pixel, candidates)
    right = _fit_defocus(image[:, -160:], pixel, candidates)
    # Axis 0, tilt about y: a slab point (a, 0, 0) lands at u = a cos t with depth -a sin t = -u tan t.
    u = (shape - 80 - shape // 2) * pixel
    depth_right = -u * math.tan(math.radians(tilt))
    assert right - left == pytest.approx(2 * hand * depth_right, rel=0.15)
    assert (left + right) / 2 == pytest.approx(defocus, rel=0.02)


# --- dose, ice ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pretilt", "tilt"), [(0.0, 0.0), (10.0, 40.0), (-15.0, 60.0)])
def test_mean_intensity_is_the_ice_transmission(pretilt: float, tilt: float) -> None:
    g = TiltGeometry(tilt, 85.0)
    empty = empty_phantom(thickness_angstrom=2000.0, pretilt_deg=pretilt)
    expected = math.exp(-2000.0 / math.cos(math.radians(tilt + pretilt)) / 3500.0)
    assert math.exp(-ice_path_length_angstrom(empty, g) / 3500.0) == pytest.approx(expected)
    ctf = TiltCtf(30000.0, 29000.0, 20.0)
    assert _image(empty, g, ctf, shape=128, pixel=4.0).mean() == pytest.approx(expected, rel=0.02)
    complexes = _complexes(seed=1, n_complexes=5, field_of_view_angstrom=512.0, pretilt_deg=pretilt)
    assert _image(complexes, g, ctf, shape=128, pixel=4.0).mean() == pytest.approx(expected, rel=0.02)
    # Dense matter also scatters out of the image: amplitude contrast lowers the mean by 2 A <φ>.
    vesicles = make_phantom(seed=1, field_of_view_angstrom=(512.0, 512.0), thickness_angstrom=2000.0,
                            pretilt_deg=pretilt, n_vesicles=1, n_complexes=5)  # fmt: skip
    phase = projected_phase(vesicles, g, image_shape_yx=(256, 256), pixel_spacing_angstrom=4.0).mean()
    absorbed = expected * (1 - 2 * MICROSCOPE.amplitude_contrast * phase)
    assert _image(vesicles, g, ctf, shape=256, pixel=4.0).mean() == pytest.approx(absorbed, rel=0.005)


def test_exposure_filters_the_signal_not_the_ice() -> None:
    phantom = _complexes(seed=2, n_complexes=30, field_of_view_angstrom=400.0)
    g, ctf, pixel = TiltGeometry(0.0, 85.0), TiltCtf(20000.0, 20000.0, 0.0), 2.0
    fresh = _image(phantom, g, ctf, shape=256, pixel=pixel, dose_e_per_angstrom2=2.0, ice_texture_psd_rad2_angstrom=0)
    late = _image(phantom, g, ctf, shape=256, pixel=pixel, dose_e_per_angstrom2=2.0, ice_texture_psd_rad2_angstrom=0,
                  pre_exposure_e_per_angstrom2=40.0)  # fmt: skip
    k, power_fresh = _radial_power(fresh, pixel)
    power_late = _radial_power(late, pixel)[1]
    # Where the complexes have power well above the renderer's ~1e-5 (amplitude) precision floor.
    band = (k > 0.03) & (k < 0.06) & (power_fresh > 1e-3 * power_fresh[k > 0.03].max())
    expected = (exposure_filter(k, exposure_e_per_angstrom2=41.0, voltage_kv=300.0)
                / exposure_filter(k, exposure_e_per_angstrom2=1.0, voltage_kv=300.0)) ** 2  # fmt: skip
    assert power_late[band] / power_fresh[band] == pytest.approx(expected[band], rel=0.05)
    assert np.sum(power_late[band]) < 0.7 * np.sum(power_fresh[band])
    ice = empty_phantom(thickness_angstrom=300.0)
    rings_fresh = _image(ice, g, ctf, shape=128, pixel=pixel)
    rings_late = _image(ice, g, ctf, shape=128, pixel=pixel, pre_exposure_e_per_angstrom2=40.0)
    assert np.array_equal(rings_fresh, rings_late)


def test_ice_texture_is_deterministic_per_seed() -> None:
    ice, g, ctf = empty_phantom(thickness_angstrom=1000.0), TiltGeometry(30.0, 85.0), TiltCtf(20000.0, 20000.0, 0.0)
    first = _image(ice, g, ctf, shape=64, pixel=4.0, seed=1)
    assert np.array_equal(first, _image(ice, g, ctf, shape=64, pixel=4.0, seed=1))
    assert not np.array_equal(first, _image(ice, g, ctf, shape=64, pixel=4.0, seed=2))
    assert first.dtype == np.float32 and first.shape == (64, 64) and first.min() >= 0


@pytest.mark.parametrize(
    ("thickness", "tilt", "pretilt"), [(1000.0, 0.0, 0.0), (500.0, 60.0, 0.0), (800.0, 30.0, 20.0)]
)
def test_ice_texture_variance_grows_with_the_path(thickness: float, tilt: float, pretilt: float) -> None:
    # Without the CTF the image is T (1 - 2 φ_ice): var(φ) per pixel ∝ path (white texture, cut on at ~1/100 Å).
    g, ctf = TiltGeometry(tilt, 85.0), TiltCtf(1.0, 1.0, 0.0)
    reference_slab = empty_phantom(thickness_angstrom=1000.0)
    slab = empty_phantom(thickness_angstrom=thickness, pretilt_deg=pretilt)
    variances = []
    for phantom, geometry in ((reference_slab, TiltGeometry(0.0, 85.0)), (slab, g)):
        image = _image(phantom, geometry, ctf, shape=256, pixel=2.0, apply_ctf=False, layer_thickness_angstrom=200.0)
        variances.append(np.var(image / image.mean()))
    path = thickness / math.cos(math.radians(tilt + pretilt))
    assert variances[1] / variances[0] == pytest.approx(path / 1000.0, rel=0.1)


def test_bad_arguments_fail_early() -> None:
    slab, g, ctf = empty_phantom(thickness_angstrom=500.0), TiltGeometry(0.0, 0.0), TiltCtf(1e4, 1e4, 0.0)
    with pytest.raises(InputError, match="pixel_spacing_angstrom"):
        _image(slab, g, ctf, shape=64, pixel=0.0)
    with pytest.raises(InputError, match="hand"):
        _image(slab, g, dataclasses.replace(ctf, hand=0), shape=64, pixel=2.0)
    with pytest.raises(InputError, match="layer_thickness_angstrom"):
        _image(slab, g, ctf, shape=64, pixel=2.0, layer_thickness_angstrom=-1.0)


def test_ice_texture_layers_are_independent() -> None:
    """Each depth layer's texture is its own draw: the layers' periodograms are uncorrelated frequency by
    frequency (shifted copies of one field would share one periodogram and leave fringes across the rings)."""
    from tomoprep.simulate.projection import ICE_TEXTURE_PSD_RAD2_ANGSTROM, layer_phases

    slab, g = empty_phantom(thickness_angstrom=1000.0), TiltGeometry(0.0, 85.0)
    layers = [phase.copy() for _, phase in layer_phases(
        slab, g, image_shape_yx=(128, 128), pixel_spacing_angstrom=4.0, layer_thickness_angstrom=200.0,
        exposure_e_per_angstrom2=0.0, voltage_kv=300.0, ice_texture_psd_rad2_angstrom=ICE_TEXTURE_PSD_RAD2_ANGSTROM,
        seed=3)]  # fmt: skip
    full = [layer for layer in layers if np.all(layer != 0)]  # layers the slab fills everywhere
    assert len(full) >= 3
    periodograms = [np.abs(np.fft.rfft2(layer))[8:-8, 8:].ravel() ** 2 for layer in full]
    for i in range(len(periodograms) - 1):
        assert abs(np.corrcoef(periodograms[i], periodograms[i + 1])[0, 1]) < 0.1
