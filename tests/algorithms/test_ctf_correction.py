"""CTF correction of tilt images: phase flipping and a Wiener filter, strip by strip along the defocus of the tilted
specimen. Tilt images are made here with their own defocus gradient and the simulator's CTF (``simulate/ctf.py``),
or by the separate generator ``ctf_tilts.py``, and compared with the CTF-free truth in a band beyond the first zero;
tomograms of a blob specimen imaged exactly are compared with it."""

from __future__ import annotations

import math

import ctf_tilts
import numpy as np
import pytest
import torch

from tomoprep.algorithms.ctf_correction import TiltDefocus, correct_ctf, defocus_offset_map
from tomoprep.algorithms.defocus_gradient import predicted_difference
from tomoprep.algorithms.reconstruction import TiltProjection, reconstruct_tomogram
from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.simulate.ctf import Microscope, TiltCtf, ctf_phase_terms, ctf_rfft2

PIXEL_A = 1.5
OPTICS = {"voltage_kv": 300.0, "spherical_aberration_mm": 2.7, "amplitude_contrast": 0.07}
_MICROSCOPE = dict(zip(("voltage_kv", "spherical_aberration_mm", "amplitude_contrast"), OPTICS.values(), strict=True))
#: Tilt images are long across the tilt axis (kept within 25° of the image Y axis), where the defocus changes.
SHAPE_YX = (192, 512)
#: The canvas the specimen is imaged on reaches this far beyond the image: the CTF's fringes come in from outside.
CANVAS_PAD_PX = 96
#: Correlations are taken this far inside the image: within the CTF's reach of the edge, what lies beyond the
#: image (unknown to the correction) is missing.
MARGIN_PX = 64
NYQUIST = 0.5 / PIXEL_A
#: One seed in the quick tests, the others with the slow ones.
SEEDS = [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]


def _defocus_offsets(shape_yx, *, tilt_deg, axis_deg, shift_px, hand, pixel_angstrom, origin_px):
    """``hand · z'`` (Å) at every pixel of a canvas: a flat specimen through its centre, which lands at
    ``origin_px + shift_px`` (``(x, y)`` pixels), tilted by ``tilt_deg`` about the axis ``axis_deg``."""
    y, x = np.mgrid[0 : shape_yx[0], 0 : shape_yx[1]].astype(float)
    a, t = math.radians(axis_deg), math.radians(tilt_deg)
    across = math.cos(a) * (x - origin_px[0] - shift_px[0]) + math.sin(a) * (y - origin_px[1] - shift_px[1])
    return hand * -math.tan(t) * across * pixel_angstrom


def _image_by_object_defocus(phase, offsets, ctf_at, step_angstrom=40.0):
    """The contrast of a projected phase whose every point is imaged at its own defocus offset: the points are
    split linearly between layers ``step`` apart in defocus, each layer filtered by its CTF (as the simulator's
    depth layers)."""
    position = offsets / step_angstrom
    out = np.zeros_like(phase)
    for j in range(math.floor(position.min()), math.ceil(position.max()) + 1):
        weight = np.clip(1.0 - np.abs(position - j), 0.0, None)
        if weight.any():
            out += np.fft.irfft2(np.fft.rfft2(phase * weight) * ctf_at(j * step_angstrom), s=phase.shape)
    return out


def _band_correlation(a, b, band_per_angstrom, *, pixel_angstrom=PIXEL_A, margin_px=MARGIN_PX, where=None):
    """Correlation of two images band-passed to ``band`` (1/Å), over the pixels ``margin_px`` inside the edges
    (and where ``where`` is true)."""
    k = np.hypot(np.fft.fftfreq(a.shape[0], pixel_angstrom)[:, None], np.fft.rfftfreq(a.shape[1], pixel_angstrom))
    mask = (k >= band_per_angstrom[0]) & (k <= band_per_angstrom[1])
    inside = np.zeros(a.shape, dtype=bool)
    inside[margin_px:-margin_px, margin_px:-margin_px] = True
    inside &= True if where is None else where
    fa = np.fft.irfft2(np.fft.rfft2(a) * mask, s=a.shape)[inside]
    fb = np.fft.irfft2(np.fft.rfft2(b) * mask, s=b.shape)[inside]
    return float((fa * fb).sum() / math.sqrt((fa * fa).sum() * (fb * fb).sum()))


def first_zero_per_angstrom(defocus_angstrom, *, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07):
    """The first zero of ``sin(χ + asin A)`` (1/Å), with ``ctf_tilts``' own wavelength."""
    lam = ctf_tilts.wavelength_angstrom(voltage_kv)
    k = np.linspace(1e-4, 0.5, 200_001)
    argument = math.pi * lam * defocus_angstrom * k * k - 0.5 * math.pi * cs_mm * 1e7 * lam**3 * k**4
    return float(k[np.argmax(argument + math.asin(amplitude_contrast) >= math.pi)])


def _tilt_case(
    seed,
    *,
    generator="simulator",
    forward=_image_by_object_defocus,
    tilt_deg=None,
    astigmatism_a=None,
    white=False,
    defocus_range_angstrom=(15_000, 22_000),
    phase_shift_deg=0.0,
):
    """A tilt image, the CTF-free truth (the contrast an ideal transfer ``-1`` gives), its projection, defocus and
    hand, and the defocus offset (Å) at each of its pixels."""
    rng = np.random.default_rng(seed)
    tilt = float(rng.choice([-1, 1]) * rng.uniform(50, 60)) if tilt_deg is None else tilt_deg
    axis, hand = float(rng.uniform(-25, 25) + rng.choice([0, 180])), int(rng.choice([-1, 1]))
    shift = rng.uniform(-15, 15, 2)
    defocus = float(rng.uniform(*defocus_range_angstrom))
    half = float(rng.uniform(0, 400)) if astigmatism_a is None else astigmatism_a
    angle = float(rng.uniform(-90, 90))
    canvas = (SHAPE_YX[0] + 2 * CANVAS_PAD_PX, SHAPE_YX[1] + 2 * CANVAS_PAD_PX)
    phase = 0.1 * rng.standard_normal(canvas) if white else ctf_tilts._texture(rng, canvas, PIXEL_A, 0.1)
    origin = (CANVAS_PAD_PX + SHAPE_YX[1] // 2, CANVAS_PAD_PX + SHAPE_YX[0] // 2)
    offsets = _defocus_offsets(canvas, tilt_deg=tilt, axis_deg=axis, shift_px=shift, hand=hand,
                               pixel_angstrom=PIXEL_A, origin_px=origin)  # fmt: skip
    u, v = defocus + half, defocus - half
    if generator == "simulator":

        def ctf_at(offset):
            return ctf_rfft2(canvas, TiltCtf(u, v, angle), Microscope(**_MICROSCOPE), pixel_spacing_angstrom=PIXEL_A,
                             defocus_offset_angstrom=offset)  # fmt: skip
    else:
        truth = ctf_tilts.TiltTruth(u, v, angle, tilt, axis, hand, phase_shift_deg)

        def ctf_at(offset):
            return ctf_tilts._ctf(canvas, PIXEL_A, truth, offset, *OPTICS.values())

    inside = (slice(CANVAS_PAD_PX, -CANVAS_PAD_PX),) * 2
    image = forward(phase, offsets, ctf_at)[inside]
    projection = TiltProjection(y_tilt_deg=tilt, z_rot_deg=axis, shift_x_px=float(shift[0]), shift_y_px=float(shift[1]))
    return image, -phase[inside], projection, TiltDefocus(u, v, angle, phase_shift_deg), hand, offsets[inside]


def _correct(image, projection, defocus, hand, **options):
    stack = torch.from_numpy(np.asarray(image, dtype=np.float32)[None])
    corrected = correct_ctf(stack, [projection], [defocus], pixel_spacing_angstrom=PIXEL_A, hand=hand, **OPTICS,
                            **options)  # fmt: skip
    return corrected[0].numpy()


def _band(defocus: TiltDefocus) -> tuple[float, float]:
    """From 1.3 times the first zero along the strongest defocus (U) to 0.9 Nyquist, 1/Å."""
    return 1.3 * first_zero_per_angstrom(defocus.defocus_u_angstrom), 0.9 * NYQUIST


def _generated_tilt(seed):
    """A tilt made by ``ctf_tilts.generate_tilt`` itself (its own defocus gradient, per pixel, from the image
    centre; Poisson counts at 1000 e⁻/Å²), one layer without B-factor so that the truth is its texture: the first
    thing the generator draws from its seed. Returns what :func:`_tilt_case` does."""
    rng = np.random.default_rng(seed + 50)
    tilt = float(rng.choice([-1, 1]) * rng.uniform(50, 60))
    axis, hand = float(rng.uniform(-25, 25) + rng.choice([0, 180])), int(rng.choice([-1, 1]))
    defocus, half, angle = float(rng.uniform(15_000, 22_000)), float(rng.uniform(0, 400)), float(rng.uniform(-90, 90))
    dose = 1000.0
    counts = ctf_tilts.generate_tilt(
        ctf_tilts.TiltTruth(defocus + half, defocus - half, angle, tilt, axis, hand), shape=SHAPE_YX,
        pixel_spacing_angstrom=PIXEL_A, dose_e_per_angstrom2=dose, thickness_angstrom=0.0, n_layers=1,
        b_factor_angstrom2=0.0, seed=seed,
    )  # fmt: skip
    contrast = (counts / (dose * PIXEL_A**2) - 1.0) / 2.0
    truth = -ctf_tilts._texture(np.random.default_rng(seed), SHAPE_YX, PIXEL_A, 0.06)
    offsets = _defocus_offsets(SHAPE_YX, tilt_deg=tilt, axis_deg=axis, shift_px=(0.0, 0.0), hand=hand,
                               pixel_angstrom=PIXEL_A, origin_px=(SHAPE_YX[1] // 2, SHAPE_YX[0] // 2))  # fmt: skip
    defoci = TiltDefocus(defocus + half, defocus - half, angle)
    return contrast, truth, TiltProjection(tilt, axis), defoci, hand, offsets


@pytest.mark.parametrize("generator", ["simulator", pytest.param("generate_tilt", marks=pytest.mark.slow)])
@pytest.mark.parametrize("seed", SEEDS)
def test_phase_flipping_with_the_right_hand_restores_the_transfer_beyond_the_first_zero(generator, seed):
    # 50-60° tilts, 1.5-2.2 µm, up to 400 Å of astigmatism: across the 448 inner pixels the defocus changes by
    # about ±600 Å, which turns the CTF's sign near Nyquist several times.
    case = _tilt_case(seed) if generator == "simulator" else _generated_tilt(seed)
    image, truth, projection, defocus, hand, offsets = case
    right = _correct(image, projection, defocus, hand)
    wrong = _correct(image, projection, defocus, -hand)
    band = _band(defocus)
    assert abs(_band_correlation(image, truth, band)) < 0.15  # measured -0.01 to 0.03
    assert _band_correlation(right, truth, band) > 0.65  # 0.75-0.81
    assert _band_correlation(wrong, truth, band) < _band_correlation(right, truth, band) - 0.2  # 0.35-0.50
    # Far from the axis (defocus off the centre by more than 300 Å) and near Nyquist, the wrong hand turns the
    # sign against the truth.
    high, far = (0.6 * NYQUIST, 0.9 * NYQUIST), np.abs(offsets) >= 300.0
    assert _band_correlation(right, truth, high, where=far) > 0.6  # 0.67-0.78
    assert _band_correlation(wrong, truth, high, where=far) < -0.3  # -0.51 to -0.62


def test_the_phase_flip_keeps_the_contrast_below_the_first_zero():
    image, _, projection, defocus, hand, _ = _tilt_case(3, tilt_deg=0.0)
    corrected = _correct(image, projection, defocus, hand, padding_px=0)
    k = np.hypot(np.fft.fftfreq(image.shape[0], PIXEL_A)[:, None], np.fft.rfftfreq(image.shape[1], PIXEL_A))
    below = k < 0.95 * first_zero_per_angstrom(defocus.defocus_v_angstrom)
    np.testing.assert_allclose(np.fft.rfft2(corrected)[below], np.fft.rfft2(image)[below], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_offset_map_is_the_depth_of_the_flat_specimen_in_relions_geometry(seed):
    rng = np.random.default_rng(seed)
    projection = TiltProjection(y_tilt_deg=float(rng.uniform(-60, 60)), z_rot_deg=float(rng.uniform(-180, 180)),
                                x_tilt_deg=float(rng.uniform(-10, 10)), shift_x_px=float(rng.uniform(-20, 20)),
                                shift_y_px=float(rng.uniform(-20, 20)))  # fmt: skip
    hand, shape = int(rng.choice([-1, 1])), (40, 50)
    offsets = defocus_offset_map(shape, projection, hand=hand, pixel_spacing_angstrom=PIXEL_A).numpy()
    # Points of the specimen's mid-plane, projected by RELION's model, land where the map gives hand × their depth.
    rotation = projection_rotation(y_tilt_deg=projection.y_tilt_deg, z_rot_deg=projection.z_rot_deg,
                                   x_tilt_deg=projection.x_tilt_deg).numpy()  # fmt: skip
    pixels = np.column_stack([rng.integers(0, shape[1], 20), rng.integers(0, shape[0], 20)])  # (x, y)
    landing = pixels - np.array([shape[1] // 2 + projection.shift_x_px, shape[0] // 2 + projection.shift_y_px])
    specimen_xy = np.linalg.solve(rotation[:2, :2], landing.T).T
    depth_angstrom = specimen_xy @ rotation[2, :2] * PIXEL_A
    np.testing.assert_allclose(offsets[pixels[:, 1], pixels[:, 0]], hand * depth_angstrom, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_offsets_across_the_axis_are_what_the_hand_measurement_predicts(seed):
    """The hand means here what it means to ``defocus_gradient``: its predicted difference between two points."""
    rng = np.random.default_rng(seed)
    tilt, axis, hand = float(rng.uniform(-60, 60)), float(rng.uniform(-180, 180)), int(rng.choice([-1, 1]))
    offsets = defocus_offset_map((101, 101), TiltProjection(tilt, axis), hand=hand, pixel_spacing_angstrom=2.0)
    dx, dy = (int(d) for d in rng.integers(-40, 41, 2))
    measured = float(offsets[50 + dy, 50 + dx] - offsets[50 - dy, 50 - dx])
    # Only the distance across the axis, h = p · r, sets a flat specimen's depth.
    h_angstrom = (math.cos(math.radians(axis)) * dx + math.sin(math.radians(axis)) * dy) * 2.0
    predicted = predicted_difference(tilt_deg=tilt, axis_deg=axis, hand=hand, half_offset_angstrom=h_angstrom)
    assert measured == pytest.approx(predicted, abs=1e-6)


@pytest.mark.parametrize("mode", ["phase_flip", "wiener"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_at_zero_tilt_the_correction_is_the_whole_image_filter(mode, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((61, 83)).astype(np.float32) + 5.0  # sizes with large prime factors
    u, v, angle = float(rng.uniform(15_000, 30_000)), float(rng.uniform(10_000, 15_000)), float(rng.uniform(-90, 90))
    phase_shift = float(rng.uniform(0, 180)) if seed else 0.0
    projection = TiltProjection(0.0, float(rng.uniform(-180, 180)), shift_x_px=float(rng.uniform(-9, 9)),
                                shift_y_px=float(rng.uniform(-9, 9)))  # fmt: skip
    snr = float(rng.uniform(1, 30))
    defocus = TiltDefocus(u, v, angle, phase_shift)
    corrected = _correct(image, projection, defocus, 1, mode=mode, wiener_snr=snr, padding_px=0)
    # The contrast-keeping CTF is the simulator's with its sign turned (ctf_tilts' where there is a phase plate).
    if phase_shift:
        truth = ctf_tilts.TiltTruth(u, v, angle, 0.0, 0.0, 1, phase_shift)
        ctf = -ctf_tilts._ctf(image.shape, PIXEL_A, truth, 0.0, *OPTICS.values())
    else:
        ctf = -ctf_rfft2(image.shape, TiltCtf(u, v, angle), Microscope(**_MICROSCOPE), pixel_spacing_angstrom=PIXEL_A)
        ctf = ctf.astype(np.float64)
    factor = np.sign(ctf) if mode == "phase_flip" else ctf / (ctf * ctf + 1.0 / snr)
    factor[0, 0] = 1.0  # the mean is the beam's intensity, not contrast
    expected = np.fft.irfft2(np.fft.rfft2(image) * factor, s=image.shape)
    np.testing.assert_allclose(corrected, expected, atol=2e-4 * np.abs(expected).max())


def _relative_error(image, truth, margin_px=MARGIN_PX):
    """``‖image − truth‖ / ‖truth‖`` over the pixels ``margin_px`` inside the edges, each less its mean there."""
    inside = (slice(margin_px, -margin_px),) * 2
    a, b = image[inside] - image[inside].mean(), truth[inside] - truth[inside].mean()
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_wiener_filter_is_closer_to_the_truth_than_phase_flipping_at_the_snr_it_assumes(seed):
    # A white specimen and white noise: the spectral SNR is the same at every frequency, as the filter assumes.
    # Near focus (0.4-0.6 µm) and at 15-30°, the CTF's fringes reach 30 pixels and the defocus changes by less than
    # 40 Å within that reach, so the strips' correction is close to exact; there the Wiener filter, which also
    # restores the amplitudes, should do better, and worse with an SNR far from the true one.
    rng = np.random.default_rng(seed)
    tilt = float(rng.choice([-1, 1]) * rng.uniform(15, 30))
    image, truth, projection, defocus, hand, _ = _tilt_case(seed, white=True, tilt_deg=tilt,
                                                           defocus_range_angstrom=(4_000, 6_000))  # fmt: skip
    snr = 10.0
    noisy = image + rng.standard_normal(image.shape) * truth.std() / math.sqrt(snr)
    flipped = _relative_error(_correct(noisy, projection, defocus, hand), truth)
    wiener = {s: _relative_error(_correct(noisy, projection, defocus, hand, mode="wiener", wiener_snr=s), truth)
              for s in (snr / 30, snr, snr * 30)}  # fmt: skip
    assert wiener[snr] < flipped - 0.01  # measured 0.56-0.57 against 0.58-0.59
    assert wiener[snr] < min(wiener[snr / 30], wiener[snr * 30]) - 0.1  # 0.87 and 1.25-1.29


@pytest.mark.parametrize("seed", SEEDS)
def test_the_astigmatism_angle_runs_from_image_x_towards_image_y(seed):
    # 3000 Å of astigmatism: the rings' direction matters beyond the first zero. The angle mirrored (-angle, a
    # convention measured the other way round), turned by 90° (U and V swapped) or off by 20° all do worse.
    image, truth, projection, defocus, hand, _ = _tilt_case(seed, astigmatism_a=1500.0, tilt_deg=0.0)
    angle = defocus.astigmatism_angle_deg
    scores = {}
    for tried in (angle, -angle, angle + 90.0, angle + 20.0):
        assumed = TiltDefocus(defocus.defocus_u_angstrom, defocus.defocus_v_angstrom, tried)
        scores[tried] = _band_correlation(_correct(image, projection, assumed, hand), truth, _band(defocus))
    assert scores[angle] > 0.7  # measured 0.79-0.82
    assert all(score < scores[angle] - 0.4 for tried, score in scores.items() if tried != angle)  # 0.03-0.20


VOLUME_PIXEL_A = 3.0
VOLUME_SHAPE_ZYX = (32, 96, 96)


def _blob_specimen(rng, n_blobs=400):
    """Gaussian blobs (sigma 1-1.6 voxels) in a disc of radius 34 voxels, 14 voxels deep: ``(n, 3)`` centres
    ``(x, y, z)`` in voxels from the volume's centre voxel, sigmas, weights."""
    radius, angle = 34 * np.sqrt(rng.uniform(0, 1, n_blobs)), rng.uniform(0, 2 * math.pi, n_blobs)
    points = np.column_stack([radius * np.cos(angle), radius * np.sin(angle), rng.uniform(-7, 7, n_blobs)])
    return points, rng.uniform(1.0, 1.6, n_blobs), rng.uniform(0.5, 1.5, n_blobs)


def _specimen_volume(points, sigmas, weights):
    """The blobs on the ``(z, y, x)`` voxel grid, centre voxel ``N // 2``."""
    axes = [np.arange(n) - n // 2 for n in VOLUME_SHAPE_ZYX]
    gz, gy, gx = (np.exp(-((axis[None, :] - points[:, i : i + 1]) ** 2) / (2 * sigmas[:, None] ** 2))
                  for axis, i in zip(axes, (2, 1, 0), strict=True))  # fmt: skip
    return np.einsum("nz,ny,nx->zyx", gz * weights[:, None], gy, gx, optimize=True)


def _blob_tilt_images(points, sigmas, weights, projection, defocus_angstrom, hand, *, pad_px=32):
    """The contrast of one tilt, exactly, with and without the CTF: every blob's projection (a 2-D Gaussian,
    written in Fourier space at its landing point ``(R X)[:2] + shift``) through the simulator's CTF at the blob's
    own defocus ``defocus + hand · (R X)[2]`` (or through ``-1``), on a canvas ``pad_px`` wider than the image."""
    ny, nx = VOLUME_SHAPE_ZYX[1:]
    canvas = (ny + 2 * pad_px, nx + 2 * pad_px)
    rotation = projection_rotation(y_tilt_deg=projection.y_tilt_deg, z_rot_deg=projection.z_rot_deg).numpy()
    landed = points @ rotation.T
    x = landed[:, 0] + projection.shift_x_px + nx // 2 + pad_px
    y = landed[:, 1] + projection.shift_y_px + ny // 2 + pad_px
    offsets = (hand * landed[:, 2] * VOLUME_PIXEL_A).astype(np.float32)
    base, slope = ctf_phase_terms(canvas, TiltCtf(defocus_angstrom, defocus_angstrom, 0.0), Microscope(),
                                  pixel_spacing_angstrom=VOLUME_PIXEL_A)  # fmt: skip
    k_y, k_x = np.fft.fftfreq(canvas[0]), np.fft.rfftfreq(canvas[1])
    with_ctf = np.zeros(base.shape, dtype=np.complex64)
    without = np.zeros(base.shape, dtype=np.complex64)
    for start in range(0, len(points), 50):
        chunk = slice(start, start + 50)
        s = sigmas[chunk, None]
        # A blob's line integral is w σ √(2π); its 2-D Gaussian's transform 2π σ² exp(-2π² σ² k²), which
        # separates in k_x and k_y as the landing point's phase ramp does.
        along_y = np.exp(-2 * math.pi**2 * s * s * k_y**2 - 2j * math.pi * k_y * y[chunk, None])
        along_x = np.exp(-2 * math.pi**2 * s * s * k_x**2 - 2j * math.pi * k_x * x[chunk, None])
        amplitude = weights[chunk] * sigmas[chunk] ** 3 * math.sqrt(2 * math.pi) * 2 * math.pi
        blobs = (amplitude[:, None, None] * along_y[:, :, None] * along_x[:, None, :]).astype(np.complex64)
        with_ctf -= (blobs * np.sin(base + offsets[chunk, None, None] * slope)).sum(axis=0)
        without -= blobs.sum(axis=0)
    inside = (slice(pad_px, -pad_px),) * 2
    return np.fft.irfft2(with_ctf, s=canvas)[inside], np.fft.irfft2(without, s=canvas)[inside]


def _band_correlation_3d(a, b, band_per_angstrom):
    """Correlation of two volumes over the frequencies of the band (1/Å): a Fourier shell correlation over one
    wide shell."""
    k = np.sqrt(sum(np.meshgrid(*(f**2 for f in (np.fft.fftfreq(VOLUME_SHAPE_ZYX[0], VOLUME_PIXEL_A),
                                                   np.fft.fftfreq(VOLUME_SHAPE_ZYX[1], VOLUME_PIXEL_A),
                                                   np.fft.rfftfreq(VOLUME_SHAPE_ZYX[2], VOLUME_PIXEL_A))),
                                indexing="ij")))  # fmt: skip
    mask = (k >= band_per_angstrom[0]) & (k <= band_per_angstrom[1])
    fa, fb = np.fft.rfftn(a)[mask], np.fft.rfftn(b)[mask]
    return float(np.real(fa * fb.conj()).sum() / math.sqrt((np.abs(fa) ** 2).sum() * (np.abs(fb) ** 2).sum()))


def _tilt_series_reconstructions(seed):
    """A blob specimen, its tilt series (±60° every 3°, 2-2.5 µm, noise half the images' spread) and tomograms
    made without correction, with phase flipping (right and wrong hand), with the Wiener filter, and from the
    CTF-free images with the same noise; and the band beyond the first zero (1/Å)."""
    rng = np.random.default_rng(seed)
    points, sigmas, weights = _blob_specimen(rng)
    axis, hand = float(rng.uniform(-180, 180)), int(rng.choice([-1, 1]))
    projections = [TiltProjection(float(t), axis, shift_x_px=float(rng.uniform(-4, 4)),
                                  shift_y_px=float(rng.uniform(-4, 4))) for t in np.arange(-60, 61, 3)]  # fmt: skip
    defoci = rng.uniform(20_000, 25_000, len(projections))
    pairs = [_blob_tilt_images(points, sigmas, weights, p, d, hand) for p, d in zip(projections, defoci, strict=True)]
    stacks = {True: np.stack([pair[0] for pair in pairs]), False: np.stack([pair[1] for pair in pairs])}
    noise = 0.5 * stacks[True].std() * rng.standard_normal(stacks[True].shape)
    images = torch.from_numpy((stacks[True] + noise).astype(np.float32))
    options = {"pixel_spacing_angstrom": VOLUME_PIXEL_A, **OPTICS}
    tilt_defoci = [TiltDefocus(float(d), float(d), 0.0) for d in defoci]
    series = {
        "uncorrected": images,
        "phase flip": correct_ctf(images, projections, tilt_defoci, hand=hand, **options),
        "phase flip, wrong hand": correct_ctf(images, projections, tilt_defoci, hand=-hand, **options),
        "wiener": correct_ctf(images, projections, tilt_defoci, hand=hand, mode="wiener", **options),
        "no CTF": torch.from_numpy((stacks[False] + noise).astype(np.float32)),
    }
    tomograms = {name: reconstruct_tomogram(stack, projections, thickness_px=VOLUME_SHAPE_ZYX[0]).numpy()
                 for name, stack in series.items()}  # fmt: skip
    first_zero = first_zero_per_angstrom(float(defoci.min()))
    return _specimen_volume(points, sigmas, weights), tomograms, (1.3 * first_zero, 0.9 * 0.5 / VOLUME_PIXEL_A)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_corrected_tomograms_match_the_specimen_beyond_the_first_zero(seed):
    specimen, tomograms, band = _tilt_series_reconstructions(seed)
    # The images' contrast is dark for dense matter, which the correction keeps: compare with the negative.
    score = {name: _band_correlation_3d(volume, -specimen, band) for name, volume in tomograms.items()}
    assert score["uncorrected"] < 0.35  # measured 0.19-0.24
    assert score["phase flip"] > score["uncorrected"] + 0.25  # 0.57-0.59
    assert score["wiener"] > score["uncorrected"] + 0.25  # 0.56-0.59
    assert score["phase flip"] < score["no CTF"]  # 0.70
    # Below the first zero the phase flip changes nothing (0.48-0.49 either way).
    low = (0.0, 0.8 * band[0] / 1.3)
    low_score = {name: _band_correlation_3d(volume, -specimen, low) for name, volume in tomograms.items()}
    assert low_score["phase flip"] == pytest.approx(low_score["uncorrected"], abs=0.02)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hand": 0}, "hand must be"),
        ({"mode": "flip"}, "unknown CTF correction"),
        ({"wiener_snr": 0.0}, "SNR must be"),
        ({"defocus_step_angstrom": -5.0}, "defocus step"),
        ({"padding_px": -1}, "padding"),
        ({"defoci": []}, "as many projections and defoci"),
        ({"projections": [TiltProjection(90.0, 0.0)]}, "edge-on"),
        ({"images": torch.zeros(8, 8)}, r"\(n, y, x\) stack"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_what_is_wrong(change, message):
    arguments = {"images": torch.zeros(1, 8, 8), "projections": [TiltProjection(0.0, 0.0)],
                 "defoci": [TiltDefocus(20_000, 20_000, 0.0)], "pixel_spacing_angstrom": 2.0, "hand": 1,
                 **OPTICS}  # fmt: skip
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        correct_ctf(**arguments)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_phase_plates_shift_is_corrected_for(seed):
    shift = float(np.random.default_rng(seed).uniform(45, 135))
    image, truth, projection, defocus, hand, _ = _tilt_case(seed, generator="ctf_tilts", tilt_deg=0.0,
                                                           phase_shift_deg=shift)  # fmt: skip
    band = _band(defocus)
    right = _band_correlation(_correct(image, projection, defocus, hand), truth, band)
    without = TiltDefocus(defocus.defocus_u_angstrom, defocus.defocus_v_angstrom, defocus.astigmatism_angle_deg)
    ignored = _band_correlation(_correct(image, projection, without, hand), truth, band)
    assert right > 0.7  # measured 0.81-0.83
    assert ignored < right - 0.2  # -0.22 to 0.35 (shifts of 68-102°)


def test_one_and_two_threads_agree():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.standard_normal((2, 96, 128)).astype(np.float32))
    projections = [TiltProjection(55.0, 80.0, shift_x_px=3.0), TiltProjection(-30.0, 80.0, shift_y_px=-2.0)]
    defoci = [TiltDefocus(21_000, 20_000, 30.0), TiltDefocus(20_500, 19_800, 30.0)]
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(correct_ctf(images, projections, defoci, pixel_spacing_angstrom=PIXEL_A, hand=-1,
                                       **OPTICS).numpy())  # fmt: skip
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(results[0], results[1], atol=1e-5 * np.abs(results[0]).max())
