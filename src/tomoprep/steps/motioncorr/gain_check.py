"""Is the gain reference on the movies' pixel grid? Compare its pattern with the counts, in every orientation.

The correlation of the movie's sensitivity pattern with the gain's (:mod:`tomoprep.algorithms.gain_orientation`)
in each of the eight orientations (four rotations, with and without a flip) shows which one fits; a wrongly
oriented gain correlates with nothing, and it leaves its own pattern in every corrected image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoprep.algorithms.gain_orientation import sensitivity_correlations
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
    oriented = {(r, f): oriented_view(stored_gain, rotation_deg=r, flip=f) for r, f in ORIENTATIONS}
    scores = sensitivity_correlations(counts_sum, oriented)
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
