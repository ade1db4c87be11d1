"""Is the gain reference on the movies' pixel grid? Compare its pattern with the counts, in every orientation.

Un-normalised movies record ``counts ∝ 1 / gain``: the fine pattern of the detector's sensitivity is in every
movie sum. Correlating the high-pass-filtered sum with the high-pass-filtered ``1 / gain`` in each of the eight
orientations (four rotations, with and without a flip) shows which one fits; a wrongly oriented gain correlates
with nothing, and it leaves its own pattern in every corrected image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tomoprep.io.gain import GainFlip, GainRotation, orient_gain, oriented_view

ORIENTATIONS: tuple[tuple[GainRotation, GainFlip], ...] = tuple(
    (rotation, flip) for flip in ("none", "x") for rotation in (0, 90, 180, 270)
)


@dataclass(frozen=True)
class GainOrientationCheck:
    """Correlation of the movie pattern with the gain in each orientation, and the verdict."""

    scores: dict[tuple[GainRotation, GainFlip], float]
    given: tuple[GainRotation, GainFlip]

    @property
    def best(self) -> tuple[GainRotation, GainFlip]:
        """The orientation that fits the movies best."""
        return max(self.scores, key=lambda k: self.scores[k])

    @property
    def given_is_wrong(self) -> bool:
        """Another orientation fits clearly better than the given one."""
        best, given = self.scores[self.best], self.scores.get(self.given, 0.0)
        return best > 0.05 and given < 0.5 * best


CROP_PX = 1024


def _central(image: np.ndarray) -> np.ndarray:
    # The pixel pattern decides; a central crop of the oriented images keeps the check cheap on 4K/8K frames.
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


def check_gain_orientation(
    counts_sum: np.ndarray, stored_gain: np.ndarray, *, given: tuple[GainRotation, GainFlip]
) -> GainOrientationCheck:
    """Score every orientation of ``stored_gain`` (as stored in its file) against a movie's raw counts sum.

    Parameters
    ----------
    counts_sum
        ``(y, x)`` sum of a movie's frames before gain correction, on the gain's pixel grid.
    stored_gain
        ``(y, x)`` gain as read with no rotation and no flip.
    given
        The rotation/flip the user asked for.
    """
    target = _high_pass(counts_sum)
    scores: dict[tuple[GainRotation, GainFlip], float] = {}
    for rotation, flip in ORIENTATIONS:
        oriented = oriented_view(stored_gain, rotation_deg=rotation, flip=flip)
        if oriented.shape != counts_sum.shape:
            continue
        crop = np.asarray(_central(oriented), dtype=np.float64)
        sensitivity = np.where(crop > 0, 1.0 / np.where(crop > 0, crop, 1.0), 0.0)
        scores[(rotation, flip)] = _correlation(target, _high_pass(sensitivity))
    canonical = _canonical(given, stored_gain.shape)
    return GainOrientationCheck(scores, canonical)


def _canonical(given: tuple[GainRotation, GainFlip], shape_yx: tuple[int, ...]) -> tuple[GainRotation, GainFlip]:
    """The member of :data:`ORIENTATIONS` that orients a gain as ``given`` does (a y flip is a rotated x flip).

    Decided on a small array of distinct values with the gain's squareness, on which the eight orientations
    all differ."""
    probe = np.arange(9).reshape(3, 3) if shape_yx[0] == shape_yx[1] else np.arange(6).reshape(2, 3)
    target = orient_gain(probe, rotation_deg=given[0], flip=given[1])
    for candidate in ORIENTATIONS:
        oriented = orient_gain(probe, rotation_deg=candidate[0], flip=candidate[1])
        if oriented.shape == target.shape and np.array_equal(oriented, target):
            return candidate
    return given
