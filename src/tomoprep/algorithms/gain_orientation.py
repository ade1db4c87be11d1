"""Does a gain reference fit a movie's pixels? The correlation of the detector's fine sensitivity pattern in the
movie's counts with that of the gain.

Un-normalised movies record ``counts ∝ 1 / gain``: the fine pattern of the detector's sensitivity is in every
movie sum. Correlating the high-pass-filtered sum with the high-pass-filtered ``1 / gain`` shows whether a gain,
as oriented, fits; a wrongly oriented gain correlates with nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np
from scipy import ndimage

#: Side of the central crop compared (px): the pixel pattern decides, and a crop keeps the check cheap on 4K/8K.
CROP_PX = 1024

Key = TypeVar("Key", bound=Hashable)


def _central(image: np.ndarray) -> np.ndarray:
    y0, x0 = max(0, (image.shape[0] - CROP_PX) // 2), max(0, (image.shape[1] - CROP_PX) // 2)
    return image[y0 : y0 + CROP_PX, x0 : x0 + CROP_PX]


def _high_pass(image: np.ndarray, size_px: int = 7) -> np.ndarray:
    image = _central(image).astype(np.float64)
    local = ndimage.uniform_filter(image, size_px)
    residual = image / np.where(local > 0, local, 1.0) - 1.0
    residual[local <= 0] = 0.0
    return residual - residual.mean()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def sensitivity_correlations(counts_sum: np.ndarray, gains: Mapping[Key, np.ndarray]) -> dict[Key, float]:
    """The correlation of the fine pattern of ``counts_sum`` with that of ``1 / gain``, for each of ``gains``.

    Parameters
    ----------
    counts_sum
        ``(y, x)`` sum of a movie's frames before gain correction.
    gains
        Candidate ``(y, x)`` gains (say, one gain in each orientation), by key; those of another shape than
        ``counts_sum`` are left out of the result.

    Returns
    -------
    dict
        Key -> correlation in [-1, 1] of the central :data:`CROP_PX` crops, high-pass filtered; about 0 where the
        gain does not fit the movie's pixels.
    """
    target = _high_pass(counts_sum)
    scores: dict[Key, float] = {}
    for key, gain in gains.items():
        if gain.shape != counts_sum.shape:
            continue
        crop = np.asarray(_central(gain), dtype=np.float64)
        sensitivity = np.where(crop > 0, 1.0 / np.where(crop > 0, crop, 1.0), 0.0)
        scores[key] = _correlation(target, _high_pass(sensitivity))
    return scores
