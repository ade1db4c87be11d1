"""Whether a tilt shows Thon rings: its coarse score against the same search on white noise.

Quick tests on small images (256², 2 Å/px, 128-px tiles): noise scores are reproducible; blank images (Poisson
counts, no specimen) are flagged ``no rings`` and tilts of the independent generator (3 e⁻/Å², 600 Å of ice) are
not, over several seeds. The simulator's tilts (512², 3 Å/px, 1.5-6 µm, up to 3000 Å
of ice, up to 60°) and ring-free ones (blank, dark, near focus) are in the slow test; measured figures in
docs/ctf.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from ctf_tilts import TiltTruth, generate_tilt

from tomoprep.algorithms.ctf_fit import FitSettings
from tomoprep.algorithms.ctf_series import MIN_RING_SIGNIFICANCE, NO_RINGS, SeriesSettings, fit_series
from tomoprep.algorithms.ctf_significance import noise_scores, ring_significance
from tomoprep.algorithms.ctf_spectrum import Optics

OPTICS = Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, pixel_spacing_angstrom=2.0)
SETTINGS = FitSettings(tile_px=128)
RANGE_ANGSTROM = (10000.0, 50000.0)


def _noise(shape: tuple[int, int]) -> np.ndarray:
    return noise_scores(shape, axis_deg=85.0, optics=OPTICS, settings=SETTINGS, defocus_range_angstrom=RANGE_ANGSTROM)


def test_noise_scores_are_reproducible() -> None:
    """The draws are seeded: a shorter run of them is the start of the longer one (computed anew, not cached)."""
    scores = _noise((256, 256))
    first = noise_scores((256, 256), axis_deg=85.0, optics=OPTICS, settings=SETTINGS,
                         defocus_range_angstrom=RANGE_ANGSTROM, n_draws=4)  # fmt: skip
    np.testing.assert_array_equal(first, scores[:4])
    assert ring_significance(float(scores.mean()), scores) == pytest.approx(0.0, abs=1e-12)
    assert ring_significance(float(scores.mean() + scores.std(ddof=1)), scores) == pytest.approx(1.0)


#: The further seeds (1.5-3 s each on two cores) run in the full suite; the quick tier keeps the first.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_a_blank_tilt_is_flagged_and_tilts_with_rings_are_not(seed: int) -> None:
    tilts = [-30.0, -10.0, 10.0, 30.0]
    rng = np.random.default_rng(seed)
    truths = [TiltTruth(d + 300.0, d - 300.0, 40.0, t, 85.0, -1)
              for d, t in zip(rng.uniform(15000.0, 45000.0, len(tilts)), tilts, strict=True)]  # fmt: skip
    images = [generate_tilt(t, shape=(256, 256), seed=10 * seed + i) for i, t in enumerate(truths)]
    blank = 1 + seed % 2  # not the same one each seed
    images[blank] = rng.poisson(float(images[blank].mean()), images[blank].shape).astype(np.float32)
    result = fit_series(images, tilts, axis_deg=85.0, optics=OPTICS, defocus_range_angstrom=RANGE_ANGSTROM,
                        settings=SeriesSettings(tilt=SETTINGS))  # fmt: skip
    assert result.flags == [NO_RINGS if i == blank else "" for i in range(len(tilts))]


def test_blank_images_score_as_the_noise_draws_and_rarely_pass() -> None:
    """Twenty more blank images (Poisson counts, not among the draws), each against the noise draws: their
    significances are distributed as the draws' own (mean 0, standard deviation 1, within what 20 allow), and at
    most one passes the threshold (measured at 512²: 2.7 % of blank images do)."""
    from tomoprep.algorithms.ctf_fit import coarse_search, prepare_tilt

    noise = _noise((256, 256))
    significances = []
    for seed in range(20):
        image = np.random.default_rng(1000 + seed).poisson(27.0, (256, 256)).astype(np.float32)
        spectra = prepare_tilt(image, tilt_deg=0.0, axis_deg=85.0, optics=OPTICS, settings=SETTINGS)
        score = coarse_search(spectra, hand=0, defocus_range_angstrom=RANGE_ANGSTROM)[4]
        significances.append(ring_significance(score, noise))
    said = np.round(significances, 2)
    assert abs(np.mean(significances)) < 0.7 and 0.6 < np.std(significances, ddof=1) < 1.5, said
    assert sum(z >= MIN_RING_SIGNIFICANCE for z in significances) <= 1, said


def _simulated_series(tmp_path, seed: int, defocus_um: tuple[float, float], ice_angstrom: tuple[float, float],
                      dose: float = 3.0):  # fmt: skip
    """Five tilts (-60° to 60°) of the simulator's demo specimen, 512² at 3 Å/px: images, truth."""
    from tomoprep.io.mrc import read_mrc
    from tomoprep.simulate.params import SimulateParams
    from tomoprep.simulate.session import simulate_session

    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, n_tilts=5, tilt_step_deg=30.0,
        dose_per_tilt_e_per_angstrom2=dose, defocus_min_um=defocus_um[0], defocus_max_um=defocus_um[1],
        thickness_min_angstrom=ice_angstrom[0], thickness_max_angstrom=ice_angstrom[1], seed=seed,
    )  # fmt: skip
    folder = tmp_path / f"session_{seed}_{dose:g}"
    series = simulate_session(folder, params).tilt_series[0]
    tilts = sorted(series.tilts, key=lambda t: t.stack_index)
    return list(read_mrc(folder / series.stack)), tilts, series


@pytest.mark.slow
def test_the_simulators_tilts_show_rings_and_ring_free_tilts_do_not(tmp_path) -> None:
    """Each series of the simulator's tilts (three seeds, 1.5-6 µm, 600-3000 Å of ice, 3 e⁻/Å²) gets ring-free
    tilts put among its own: a blank one (Poisson counts), a dark one (0.03 e⁻/Å², scaled to the others' mean so
    that only its rings can tell) and one near focus (0.05-0.1 µm: no ring inside 30-6 Å). The ring-free ones are
    flagged ``no rings``, the others not."""
    near_focus, _, _ = _simulated_series(tmp_path, 7, (0.05, 0.1), (500.0, 800.0))
    for seed, defocus_um, ice in [(1, (1.5, 2.0), (1200.0, 3000.0)), (2, (3.0, 3.5), (500.0, 800.0)),
                                  (3, (5.5, 6.0), (500.0, 800.0))]:  # fmt: skip
        images, tilts, series = _simulated_series(tmp_path, seed, defocus_um, ice)
        dark, _, _ = _simulated_series(tmp_path, seed, defocus_um, ice, dose=0.03)
        mean = float(np.mean(images[2]))
        rng = np.random.default_rng(seed)
        ring_free = [rng.poisson(mean, images[2].shape).astype(np.float32),
                     dark[2] * np.float32(mean / float(np.mean(dark[2]))),
                     near_focus[2] * np.float32(mean / float(np.mean(near_focus[2])))]  # fmt: skip
        optics = Optics(series.voltage_kv, series.cs_mm, series.amplitude_contrast, series.pixel_spacing_angstrom)
        nominal = series.target_defocus_angstrom
        result = fit_series([*images, *ring_free], [t.nominal_tilt_deg for t in tilts] + [0.0, 0.0, 0.0],
                            axis_deg=series.nominal_tilt_axis_deg, optics=optics,
                            defocus_range_angstrom=(max(5000.0, nominal - 20000.0), nominal + 20000.0))  # fmt: skip
        assert result.flags == [""] * len(images) + [NO_RINGS] * 3, (seed, result.flags)
