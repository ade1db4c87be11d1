"""Small display copies of images for quality-control pictures: block-averaged, and stretched to 0-1."""

from __future__ import annotations

import numpy as np


def stretch(image: np.ndarray, *, low_percent: float = 1.0, high_percent: float = 99.0) -> np.ndarray:
    """``image`` scaled to 0-1 between two of its percentiles and clipped, so a few hot or dark pixels do not set
    the grey scale.

    Parameters
    ----------
    image
        Any shape, real values.
    low_percent, high_percent
        The percentiles that become 0 and 1.

    Returns
    -------
    numpy.ndarray
        Same shape, float, in [0, 1]; all zeros for an image of one value.
    """
    low, high = np.percentile(image, [low_percent, high_percent])
    return np.clip((image - low) / max(float(high - low), 1e-9), 0, 1)


def thumbnail(image: np.ndarray, *, size_px: int) -> np.ndarray:
    """A copy of about ``size_px`` pixels on its longer side, averaged over square blocks, and stretched to 0-1
    between its 1st and 99th percentiles (:func:`stretch`).

    Parameters
    ----------
    image
        ``(y, x)`` image.
    size_px
        Longer side wanted; the block side is the whole number ``max(y, x) // size_px`` (at least 1), so the
        result has ``size_px`` to ``2 * size_px - 1`` pixels on its longer side (the image's size when smaller).
        Rows and columns beyond the last whole block are left out.

    Returns
    -------
    numpy.ndarray
        ``(y // block, x // block)`` float image in [0, 1].
    """
    step = max(1, max(image.shape) // size_px)
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    small = image[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    return stretch(small)
