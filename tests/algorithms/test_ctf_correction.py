"""CTF correction of tilt images: phase flipping and a Wiener filter, strip by strip along the defocus of the tilted
specimen. Tilt images are made here with their own defocus gradient, the CTF taken from the simulator
(``simulate/ctf.py``) or from the separate generator ``ctf_tilts.py``, and compared with the CTF-free truth in a
band beyond the first zero."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ctf_tilts
from tomoprep.algorithms.ctf_correction import TiltDefocus, correct_ctf, defocus_offset_map
from tomoprep.algorithms.defocus_gradient import predicted_difference
from tomoprep.algorithms.reconstruction import TiltProjection
from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.simulate.ctf import Microscope, TiltCtf, ctf_rfft2

PIXEL_A = 1.5
OPTICS = {"voltage_kv": 300.0, "spherical_aberration_mm": 2.7, "amplitude_contrast": 0.07}
#: Tilt images are long across the tilt axis (kept within 25° of the image Y axis), where the defocus changes.
SHAPE_YX = (192, 512)
#: The canvas the specimen is imaged on reaches this far beyond the image: the CTF's fringes come in from outside.
CANVAS_PAD_PX = 96
#: Correlations are taken this far inside the image: within the CTF's reach of the edge, what lies beyond the
#: image (unknown to the correction) is missing.
MARGIN_PX = 64
NYQUIST = 0.5 / PIXEL_A


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


def _image_by_pixel_defocus(phase, offsets, ctf_at, step_angstrom=40.0):
    """``ctf_tilts.generate_tilt``'s scheme: every image pixel interpolated between whole images made at defoci
    ``step`` apart, by the defocus of the pixel."""
    spectrum = np.fft.rfft2(phase)
    low, high = math.floor(offsets.min() / step_angstrom), math.ceil(offsets.max() / step_angstrom)
    stack = np.stack([np.fft.irfft2(spectrum * ctf_at(j * step_angstrom), s=phase.shape) for j in range(low, high + 1)])
    position = offsets / step_angstrom - low
    below = np.clip(np.floor(position).astype(int), 0, len(stack) - 2)
    fraction = position - below
    return ((1 - fraction) * np.take_along_axis(stack, below[None], 0)[0]
            + fraction * np.take_along_axis(stack, below[None] + 1, 0)[0])  # fmt: skip


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


def _tilt_case(seed, *, generator="simulator", forward=_image_by_object_defocus, tilt_deg=None, astigmatism_a=None):
    """A tilt image, the CTF-free truth (the contrast an ideal transfer ``-1`` gives), its projection, defocus and
    hand, and the defocus offset (Å) at each of its pixels."""
    rng = np.random.default_rng(seed)
    tilt = float(rng.choice([-1, 1]) * rng.uniform(50, 60)) if tilt_deg is None else tilt_deg
    axis, hand = float(rng.uniform(-25, 25) + rng.choice([0, 180])), int(rng.choice([-1, 1]))
    shift = rng.uniform(-15, 15, 2)
    defocus = float(rng.uniform(15_000, 22_000))
    half = float(rng.uniform(0, 400)) if astigmatism_a is None else astigmatism_a
    angle = float(rng.uniform(-90, 90))
    canvas = (SHAPE_YX[0] + 2 * CANVAS_PAD_PX, SHAPE_YX[1] + 2 * CANVAS_PAD_PX)
    phase = ctf_tilts._texture(rng, canvas, PIXEL_A, 0.1)
    offsets = _defocus_offsets(canvas, tilt_deg=tilt, axis_deg=axis, shift_px=shift, hand=hand,
                               pixel_angstrom=PIXEL_A, origin_px=(CANVAS_PAD_PX + SHAPE_YX[1] // 2, CANVAS_PAD_PX + SHAPE_YX[0] // 2))  # fmt: skip
    u, v = defocus + half, defocus - half
    if generator == "simulator":
        def ctf_at(offset):
            return ctf_rfft2(canvas, TiltCtf(u, v, angle), Microscope(**dict(zip(
                ("voltage_kv", "spherical_aberration_mm", "amplitude_contrast"), OPTICS.values(), strict=True))),
                pixel_spacing_angstrom=PIXEL_A, defocus_offset_angstrom=offset)  # fmt: skip
    else:
        truth = ctf_tilts.TiltTruth(u, v, angle, tilt, axis, hand)

        def ctf_at(offset):
            return ctf_tilts._ctf(canvas, PIXEL_A, truth, offset, *OPTICS.values())
    inside = (slice(CANVAS_PAD_PX, -CANVAS_PAD_PX),) * 2
    image = forward(phase, offsets, ctf_at)[inside]
    projection = TiltProjection(y_tilt_deg=tilt, z_rot_deg=axis, shift_x_px=float(shift[0]), shift_y_px=float(shift[1]))
    return image, -phase[inside], projection, TiltDefocus(u, v, angle), hand, offsets[inside]


def _correct(image, projection, defocus, hand, **options):
    stack = torch.from_numpy(np.asarray(image, dtype=np.float32)[None])
    corrected = correct_ctf(stack, [projection], [defocus], pixel_spacing_angstrom=PIXEL_A, hand=hand, **OPTICS,
                            **options)  # fmt: skip
    return corrected[0].numpy()


def _band(defocus: TiltDefocus) -> tuple[float, float]:
    """From 1.3 times the first zero along the strongest defocus (U) to 0.9 Nyquist, 1/Å."""
    return 1.3 * first_zero_per_angstrom(defocus.defocus_u_angstrom), 0.9 * NYQUIST


@pytest.mark.parametrize(
    ("generator", "forward"),
    [("simulator", _image_by_object_defocus),
     pytest.param("ctf_tilts", _image_by_pixel_defocus, marks=pytest.mark.slow)],
)  # fmt: skip
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_phase_flipping_with_the_right_hand_restores_the_transfer_beyond_the_first_zero(generator, forward, seed):
    # 50-60° tilts, 1.5-2.2 µm, up to 400 Å of astigmatism: across the 448 inner pixels the defocus changes by
    # about ±600 Å, which turns the CTF's sign near Nyquist several times.
    image, truth, projection, defocus, hand, offsets = _tilt_case(seed, generator=generator, forward=forward)
    right = _correct(image, projection, defocus, hand)
    wrong = _correct(image, projection, defocus, -hand)
    band = _band(defocus)
    assert abs(_band_correlation(image, truth, band)) < 0.15  # measured -0.04 to 0.06
    assert _band_correlation(right, truth, band) > 0.65  # 0.75-0.81
    assert _band_correlation(wrong, truth, band) < _band_correlation(right, truth, band) - 0.2  # 0.37-0.50
    # Far from the axis (defocus off the centre by more than 300 Å) and near Nyquist, the wrong hand turns the
    # sign against the truth.
    high, far = (0.6 * NYQUIST, 0.9 * NYQUIST), np.abs(offsets) >= 300.0
    assert _band_correlation(right, truth, high, where=far) > 0.6  # 0.66-0.78
    assert _band_correlation(wrong, truth, high, where=far) < -0.3  # -0.53 to -0.63


def test_the_phase_flip_keeps_the_contrast_below_the_first_zero():
    image, _, projection, defocus, hand, _ = _tilt_case(3, tilt_deg=0.0)
    corrected = _correct(image, projection, defocus, hand, padding_px=0)
    k = np.hypot(np.fft.fftfreq(image.shape[0], PIXEL_A)[:, None], np.fft.rfftfreq(image.shape[1], PIXEL_A))
    below = k < 0.95 * first_zero_per_angstrom(defocus.defocus_v_angstrom)
    np.testing.assert_allclose(np.fft.rfft2(corrected)[below], np.fft.rfft2(image)[below], rtol=1e-4, atol=1e-3)
