"""The specimen's thickness from the Thon rings' nodes and its tilt from the defocus gradients.

Images from ``thick_tilts.py`` (independent noise layers every 60 Å through a tilted slab, each with its own CTF:
the estimator's ``sinc`` is not written there). Quick tests: the node model against a numerical mean over depth;
one series with its true CTF given; a specimen too thin for its pixel. Slow tests (``-m slow``): whole series
(7 tilts from -45° to 45°, 512², 10 e⁻/Å² per tilt, 20 for 100 nm) through the series fit and the thickness fit,
100-300 nm at 1-3 µm, 1-1.5 Å/px, three seeds each; the sample tilt of 9 tilts of 1024² at 2 Å/px. Figures in
docs/ctf.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ctf_tilts import TiltTruth, wavelength_angstrom
from thick_tilts import thick_tilt

from tomoprep.algorithms.ctf_fit import TiltCtfFit
from tomoprep.algorithms.ctf_sample_tilt import SampleTiltSettings, fit_sample_tilt
from tomoprep.algorithms.ctf_series import fit_series
from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.algorithms.ctf_thickness import ThicknessSettings, fit_thickness, prepare_wide

#: The requirement (CTFFIND5 reports ±5 nm on its data): within 10 nm or 10 %, whichever is larger.
THICKNESS_TOLERANCE_ANGSTROM, THICKNESS_TOLERANCE_FRACTION = 100.0, 0.10
#: The requirement for the sample tilt of a series (CTFFIND5: ±3° for one micrograph).
AXIS_TOLERANCE_DEG, OFFSET_TOLERANCE_DEG = 2.0, 1.5
DOSE = 10.0


def _thickness_ok(found: float | None, truth: float) -> bool:
    return found is not None and abs(found - truth) <= max(THICKNESS_TOLERANCE_ANGSTROM,
                                                           THICKNESS_TOLERANCE_FRACTION * truth)  # fmt: skip


def test_the_node_model_is_the_mean_of_the_ctf_power_over_the_depths() -> None:
    """``<sin² χ>`` over defoci ``Δf ± t/2`` is ``1/2 - 1/2 cos(2 χ₀) sinc(λ k² t)`` (NumPy's sinc): the first node
    lies at ``λ k² t = 1``, the factor the fit uses (as the spread ``w = t / 2``)."""
    lam = wavelength_angstrom(300.0)
    k = np.linspace(0.02, 0.4, 200)
    thickness, defocus = 1500.0, 20000.0
    depths = np.linspace(-thickness / 2, thickness / 2, 4001)
    chi = math.pi * lam * (defocus + depths[:, None]) * k[None, :] ** 2 + math.asin(0.07)
    mean = np.trapezoid(np.sin(chi) ** 2, depths, axis=0) / thickness
    chi0 = math.pi * lam * defocus * k**2 + math.asin(0.07)
    model = 0.5 - 0.5 * np.cos(2 * chi0) * np.sinc(lam * k**2 * thickness)
    assert np.max(np.abs(mean - model)) < 1e-4
    node = 1.0 / math.sqrt(lam * thickness)  # 1/Å: where the rings vanish and turn over
    near = np.abs(k - node) < 0.002
    assert np.all(np.abs(mean[near] - 0.5) < 0.01)


def test_the_plane_objectives_gradient_matches_central_differences() -> None:
    """The sample tilt's search follows the analytic gradient of the score in ``(c, g_x, g_y)``."""
    from tomoprep.algorithms.ctf_sample_tilt import _PlaneObjective
    from tomoprep.algorithms.ctf_spectrum import Band

    rng = np.random.default_rng(3)
    band = Band.build(128, 1.5, (1 / 30.0, 1 / 5.0))
    cells, n = 6, band.k2.size
    lam = wavelength_angstrom(300.0)
    objective = _PlaneObjective(band, band.project(rng.standard_normal((cells, n))),
                                rng.uniform(0.2, 1.0, (cells, n)), rng.uniform(0.5, 1.5, cells) / cells,
                                rng.uniform(-400.0, 400.0, (cells, 2)), rng.uniform(0, 3, n),
                                math.pi * lam * band.k2)  # fmt: skip
    params = np.array([20000.0, 0.3, -0.5])
    _, gradient = objective.score_and_gradient(params)
    for j, h in enumerate((0.5, 1e-4, 1e-4)):
        step = np.zeros(3)
        step[j] = h
        numeric = (objective.score_and_gradient(params + step)[0] - objective.score_and_gradient(params - step)[0])
        assert gradient[j] == pytest.approx(numeric / (2 * h), rel=1e-4, abs=1e-9)


def _given_fits(truths: list[TiltTruth]) -> list[TiltCtfFit]:
    """The true CTF of each tilt as a fit (what the series fit would give, without its errors)."""
    return [TiltCtfFit(t.defocus_u_angstrom, t.defocus_v_angstrom, t.astigmatism_angle_deg, 0.0, 6.0, 0.5, 0.0,
                       t.hand) for t in truths]  # fmt: skip


def _thickness_of(truths, thickness, *, pixel, shape, seed, fits=None, dose=DOSE):
    optics = Optics(300.0, 2.7, 0.07, pixel)
    images = [thick_tilt(t, thickness_angstrom=thickness, shape=shape, pixel_spacing_angstrom=pixel,
                         dose_e_per_angstrom2=dose, seed=seed * 100 + i) for i, t in enumerate(truths)]  # fmt: skip
    settings = ThicknessSettings()
    tile = 256 if min(shape) >= 512 else 128
    spectra = [prepare_wide(image, tilt_deg=t.tilt_deg, axis_deg=t.axis_deg, optics=optics, tile_px=tile,
                            low_resolution_angstrom=30.0, settings=settings)
               for image, t in zip(images, truths, strict=True)]  # fmt: skip
    return fit_thickness(spectra, fits or _given_fits(truths), [t.tilt_deg for t in truths], settings)


def test_thickness_of_a_given_ctf_within_tolerance() -> None:
    truths = [TiltTruth(20300.0, 19700.0, 30.0, tilt, 85.0, 1) for tilt in (-30.0, 0.0, 30.0)]
    estimate = _thickness_of(truths, 2000.0, pixel=1.2, shape=(512, 512), seed=1)
    assert _thickness_ok(estimate.thickness_angstrom, 2000.0), estimate.describe()
    assert 0 < estimate.error_angstrom < 300.0


def test_a_thin_specimen_at_coarse_pixels_is_not_measurable() -> None:
    """100 nm has its first node at 4.4 Å (300 kV, 0°): 3 Å pixels end the band at 6.3 Å."""
    truths = [TiltTruth(20000.0, 20000.0, 0.0, tilt, 85.0, 1) for tilt in (-20.0, 0.0, 20.0)]
    estimate = _thickness_of(truths, 1000.0, pixel=3.0, shape=(384, 384), seed=2)
    assert estimate.thickness_angstrom is None
    line = estimate.describe()
    assert line.startswith("thickness not measurable from the CTF (rings end at") and "first node" in line
    assert estimate.rings_end_angstrom >= 6.3 - 0.05


@pytest.mark.slow
@pytest.mark.parametrize(
    ("thickness", "defocus", "pixel", "dose"),
    [
        # 100 nm: the first node at 4.4-5.3 Å needs the rings there; at 3 µm the 256-px tiles' window fades them
        # (docs/ctf.md: 2 of 3 series not claimed), so 100 nm is held to 1 µm, at 20 e⁻/Å².
        (1000.0, 10000.0, 1.0, 20.0),
        (2000.0, 10000.0, 1.0, DOSE),
        (2000.0, 30000.0, 1.5, DOSE),
        (3000.0, 10000.0, 1.0, DOSE),
        (3000.0, 30000.0, 1.5, DOSE),
    ],
)
def test_series_thickness_within_tolerance_over_seeds(thickness, defocus, pixel, dose) -> None:
    """7 tilts, -45° to 45°, axis 85°, hand +1, 600 Å of astigmatism; the whole series fit first."""
    optics = Optics(300.0, 2.7, 0.07, pixel)
    for seed in (1, 2, 3):
        truths = [TiltTruth(defocus + 300.0, defocus - 300.0, 30.0, tilt, 85.0, 1)
                  for tilt in (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)]  # fmt: skip
        images = [thick_tilt(t, thickness_angstrom=thickness, shape=(512, 512), pixel_spacing_angstrom=pixel,
                             dose_e_per_angstrom2=dose, seed=seed * 100 + i) for i, t in enumerate(truths)]  # fmt: skip
        series = fit_series(images, [t.tilt_deg for t in truths], axis_deg=85.0, optics=optics,
                            defocus_range_angstrom=(defocus - 5000.0, defocus + 5000.0), known_hand=1)  # fmt: skip
        settings = ThicknessSettings()
        spectra = [prepare_wide(image, tilt_deg=t.tilt_deg, axis_deg=85.0, optics=optics, tile_px=256,
                                low_resolution_angstrom=30.0, settings=settings)
                   for image, t in zip(images, truths, strict=True)]  # fmt: skip
        estimate = fit_thickness(spectra, series.fits, [t.tilt_deg for t in truths], settings)
        assert _thickness_ok(estimate.thickness_angstrom, thickness), f"seed {seed}: {estimate.describe()}"


@pytest.mark.slow
@pytest.mark.parametrize(("axis_true", "offset", "hand", "seed"), [(88.0, 3.0, 1, 1), (-97.0, -4.0, -1, 2)])
def test_sample_tilt_axis_and_offset_within_tolerance(axis_true, offset, hand, seed) -> None:
    """9 tilts from -48° to 48° given about an axis 3° off; the specimen is tilted ``offset`` more."""
    pixel, axis_given = 2.0, axis_true - 3.0
    optics = Optics(300.0, 2.7, 0.07, pixel)
    nominal = [-48.0, -36.0, -24.0, -12.0, 0.0, 12.0, 24.0, 36.0, 48.0]
    truths = [TiltTruth(25200.0, 24800.0, 30.0, t + offset, axis_true, hand) for t in nominal]
    images = [thick_tilt(t, thickness_angstrom=300.0, shape=(1024, 1024), pixel_spacing_angstrom=pixel,
                         dose_e_per_angstrom2=4.0, seed=seed * 100 + i, layer_step_angstrom=100.0)
              for i, t in enumerate(truths)]  # fmt: skip
    found = fit_sample_tilt(images, _given_fits(truths), nominal, axis_deg=axis_given, hand=hand, optics=optics,
                            settings=SampleTiltSettings())  # fmt: skip
    assert abs((found.axis_deg - axis_true + 180.0) % 360.0 - 180.0) <= AXIS_TOLERANCE_DEG, found
    assert abs(found.offset_deg - offset) <= OFFSET_TOLERANCE_DEG, found
    assert 0 < found.axis_error_deg < 3.0 and 0 < found.offset_error_deg < 3.0
