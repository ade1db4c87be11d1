"""Whether a tilt shows Thon rings: its coarse score against the same search on spectra without rings.

The coarse search (:func:`.ctf_fit.coarse_search`) keeps the best of a few thousand models (defocus × spread ×
decay), so it finds a correlation on any spectrum: on white noise 0.25 ± 0.06 (512², 256-px tiles, 30–6.3 Å,
a 4 µm range), 0.13 at 1024². What a score means thus depends on how many models were tried and how many
independent samples the band holds, and no fixed number serves every image size, band and range. The score is
therefore measured against the same search on white-noise images of the tilt's shape, through the same tiles,
strips and band: Poisson counts of a blank image are white whatever the dose, and the noise of a log
periodogram does not depend on the power beneath it (the background is projected out), so these draws are what
a tilt without rings would score. The significance is the tilt's score in standard deviations of the noise
scores above their mean.

Ring correlations of the equiphase average (:func:`.ctf_tilt.ring_quality`) do not serve: 12 bins a ring are
noisy (±0.3), and after the 2-D refinement has fitted defocus, astigmatism, spread and decay to them, a blank
image's first rings correlate at 0.5–0.9 and its fit "holds" to 8–18 Å in two draws of three.
"""

from __future__ import annotations

import functools

import numpy as np

from tomoprep.algorithms.ctf_fit import FitSettings, coarse_search, prepare_tilt
from tomoprep.algorithms.ctf_spectrum import Optics

#: White-noise images whose coarse scores make the noise distribution (their standard deviation to about 10 %).
NOISE_DRAWS = 48


@functools.lru_cache(maxsize=16)
def noise_scores(
    shape_yx: tuple[int, int],
    *,
    axis_deg: float,
    optics: Optics,
    settings: FitSettings,
    defocus_range_angstrom: tuple[float, float],
    n_draws: int = NOISE_DRAWS,
) -> np.ndarray:
    """Coarse scores of ``n_draws`` white-noise images of ``shape_yx`` (pixels), fitted as an untilted tilt.

    Parameters
    ----------
    shape_yx
        ``(ny, nx)`` of the tilt images, pixels.
    axis_deg
        Tilt-axis angle, degrees (the strips lie along it).
    optics, settings
        As the tilts are fitted with.
    defocus_range_angstrom
        Centre defocus searched, Å.
    n_draws
        Noise images drawn (seeded: the same every call, whatever the thread count).

    Returns
    -------
    numpy.ndarray
        ``(n_draws,)`` correlations of the best coarse model with each noise image's spectra.
    """
    rng = np.random.default_rng(20260)
    scores = []
    for _ in range(n_draws):
        image = rng.standard_normal(shape_yx, dtype=np.float32)
        spectra = prepare_tilt(image, tilt_deg=0.0, axis_deg=axis_deg, optics=optics, settings=settings)
        scores.append(coarse_search(spectra, hand=0, defocus_range_angstrom=defocus_range_angstrom)[4])
    return np.array(scores)


def ring_significance(score: float, noise: np.ndarray) -> float:
    """``score`` in standard deviations of the ``noise`` scores above their mean (:func:`noise_scores`)."""
    return float((score - noise.mean()) / max(float(noise.std(ddof=1)), 1e-12))
