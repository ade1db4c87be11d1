"""The camera: per-pixel sensitivity, its gain reference, and hot and dead pixels.

A :class:`Detector` turns a fraction's expected intensity into mean counts (:meth:`Detector.expected_counts`)
and its counts back into gain-corrected values (:meth:`Detector.correct`); :func:`make_detector` draws one.
Rows are in MRC order, as everywhere in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

#: Fractions of the pixels that are dead (never count) and hot (count at a high rate whatever the dose).
DEAD_PIXEL_FRACTION = 1e-5
HOT_PIXEL_FRACTION = 5e-6


@dataclass(frozen=True, eq=False)
class Detector:
    """A counting camera: per-pixel sensitivity and defects; its gain reference corrects the sensitivity.

    Attributes
    ----------
    name
        Gain-reference name (``A``, ``B``).
    sensitivity
        ``(y, x)`` float32 counts per incident electron (a few % around 1; 0 at dead pixels), MRC row order.
    hot_pixels_yx
        ``(n, 2)`` int rows and columns of hot pixels.
    hot_rate_factor
        ``(n,)`` counts of each hot pixel per frame, in units of the mean electrons per pixel and frame.
    dead_pixels_yx
        ``(n, 2)`` int rows and columns of dead pixels.
    """

    name: str
    sensitivity: np.ndarray
    hot_pixels_yx: np.ndarray
    hot_rate_factor: np.ndarray
    dead_pixels_yx: np.ndarray

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Sensor shape ``(y, x)`` in pixels."""
        return (int(self.sensitivity.shape[0]), int(self.sensitivity.shape[1]))

    @cached_property
    def gain(self) -> np.ndarray:
        """The multiplicative gain reference: ``1 / sensitivity``, 0 at dead pixels (float32 ``(y, x)``)."""
        sensitivity = self.sensitivity.astype(np.float64)
        gain = np.divide(1.0, sensitivity, out=np.zeros_like(sensitivity), where=sensitivity > 0)
        return gain.astype(np.float32)

    def expected_counts(self, image: np.ndarray, *, electrons_per_pixel: float) -> np.ndarray:
        """Mean counts of one fraction: ``image × electrons_per_pixel × sensitivity``, hot pixels much higher.

        Parameters
        ----------
        image
            ``(y, x)`` relative intensity (1 = the beam without specimen).
        electrons_per_pixel
            Electrons per pixel the fraction delivers without specimen (dose × px² × fraction).
        """
        mean = np.asarray(image, dtype=np.float32) * np.float32(electrons_per_pixel) * self.sensitivity
        rows, columns = self.hot_pixels_yx.T
        mean[rows, columns] = self.hot_rate_factor * electrons_per_pixel
        return mean

    def correct(self, counts: np.ndarray, *, fill: float) -> np.ndarray:
        """Gain-corrected counts (float32 ``(y, x)``) with hot and dead pixels set to ``fill``."""
        corrected = np.multiply(counts, self.gain, dtype=np.float32)
        for pixels in (self.hot_pixels_yx, self.dead_pixels_yx):
            corrected[pixels[:, 0], pixels[:, 1]] = fill
        return corrected


def make_detector(shape_yx: tuple[int, int], *, name: str, rng: np.random.Generator) -> Detector:
    """Draw a camera: a smooth few-% sensitivity pattern, faint column structure, pixel noise and defects."""
    ny, nx = shape_yx
    smooth = np.zeros((ny, nx), dtype=np.float32)
    for _ in range(3):  # a sum of separable smooth patterns: cheap at 4K, and no FFT periodicity
        smooth += np.outer(_smooth_curve(ny, rng), _smooth_curve(nx, rng))
    smooth *= np.float32(0.025 / max(float(smooth.std()), 1e-9))
    columns = rng.normal(0.0, 0.005, size=(1, nx)).astype(np.float32)
    noise = rng.normal(0.0, 0.02, size=(ny, nx)).astype(np.float32)
    sensitivity = np.clip(1.0 + smooth + columns + noise, 0.85, 1.15).astype(np.float32)
    n_dead = max(3, round(DEAD_PIXEL_FRACTION * ny * nx))
    n_hot = max(2, round(HOT_PIXEL_FRACTION * ny * nx))
    chosen = rng.choice(ny * nx, size=n_dead + n_hot, replace=False)
    defects = np.stack(np.unravel_index(chosen, (ny, nx)), axis=1).astype(np.int64)
    dead, hot = defects[:n_dead], defects[n_dead:]
    sensitivity[dead[:, 0], dead[:, 1]] = 0.0
    return Detector(
        name=name,
        sensitivity=sensitivity,
        hot_pixels_yx=hot,
        hot_rate_factor=rng.uniform(5.0, 15.0, size=n_hot),
        dead_pixels_yx=dead,
    )


def _smooth_curve(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random curve of ``n`` samples with a few slow wiggles (cubic interpolation of 6 random values)."""
    return ndimage.zoom(rng.normal(0.0, 1.0, size=6), n / 6, order=3, mode="reflect")[:n].astype(np.float32)
