"""A contact sheet per tilt series: every tilt image (frame sum, binned) beside its power spectrum.

Tiles are sorted by tilt angle and labelled with it. Images share one grey scale, so high tilts look darker as
they do at the microscope; each spectrum (log power, centred, averaged over patches) has its own scale so that
its Thon rings show. Drawn with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import ndimage

from tomoprep.figures import one_at_a_time

#: Tiles are binned to at most this many pixels across.
TILE_PX = 192
_GAP_PX = 6
_LABEL_PX = 18


@dataclass(frozen=True)
class SheetTile:
    """One tilt on the sheet: its nominal angle, binned image and spectrum (float32 ``(y, x)`` arrays)."""

    tilt_deg: float
    image: np.ndarray
    spectrum: np.ndarray


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor × factor`` blocks (edges that do not fill a block are dropped)."""
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def power_spectrum(image: np.ndarray) -> np.ndarray:
    """Log power spectrum averaged over half-overlapping Hann-windowed patches, zero frequency at the centre.

    Averaging many patches (Welch's method) is what makes the weak Thon rings of one tilt visible; the patch
    (128, 256 or 512 pixels, by image size) still resolves the rings of a few µm of defocus.

    Parameters
    ----------
    image
        ``(y, x)`` image, at least 32 pixels each way.

    Returns
    -------
    numpy.ndarray
        ``(p, p)`` float32 ``log(power)``, zero frequency at pixel ``p // 2``.
    """
    shortest = min(image.shape)
    size = 128 if shortest <= 384 else 256 if shortest <= 1024 else 512
    size = min(size, 2 ** int(math.log2(shortest)))
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.zeros((size, size))
    n_patches = 0
    for y in range(0, image.shape[0] - size + 1, size // 2):
        for x in range(0, image.shape[1] - size + 1, size // 2):
            patch = image[y : y + size, x : x + size].astype(np.float64)
            power += np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
            n_patches += 1
    return np.fft.fftshift(np.log(power / n_patches + 1e-12)).astype(np.float32)


def make_tile(frame_sum: np.ndarray, *, tilt_deg: float) -> SheetTile:
    """Bin a tilt's frame sum to at most :data:`TILE_PX` pixels; its spectrum's central :data:`TILE_PX` pixels.

    The spectrum is cropped, not binned: binning would alias the dense Thon rings near Nyquist into moiré.
    """
    factor = max(1, math.ceil(max(frame_sum.shape) / TILE_PX))
    spectrum = power_spectrum(frame_sum)
    start = max(0, spectrum.shape[0] // 2 - TILE_PX // 2)
    crop = spectrum[start : start + TILE_PX, start : start + TILE_PX]
    return SheetTile(float(tilt_deg), bin_image(frame_sum, factor), np.ascontiguousarray(crop))


def write_contact_sheet(path: Path, tiles: Sequence[SheetTile], *, title: str) -> None:
    """Write a PNG of ``tiles`` sorted by tilt angle, each image with its spectrum to the right.

    Parameters
    ----------
    path
        Destination ``.png``.
    tiles
        One per tilt, any order.
    title
        Line written above the grid.
    """
    ordered = sorted(tiles, key=lambda t: t.tilt_deg)
    images = [t.image for t in ordered]
    low, high = np.percentile(np.concatenate([i.ravel() for i in images]), [0.5, 99.5])
    cell_y = max(max(t.image.shape[0], t.spectrum.shape[0]) for t in ordered) + _LABEL_PX
    cell_x = max(t.image.shape[1] for t in ordered) + max(t.spectrum.shape[1] for t in ordered) + _GAP_PX
    n_columns = max(1, math.ceil(math.sqrt(len(ordered) * cell_y / cell_x)))
    n_rows = math.ceil(len(ordered) / n_columns)
    mosaic = np.full((n_rows * (cell_y + _GAP_PX), n_columns * (cell_x + _GAP_PX)), 0.12, dtype=np.float32)
    labels = []
    for index, tile in enumerate(ordered):
        top = (index // n_columns) * (cell_y + _GAP_PX) + _LABEL_PX
        left = (index % n_columns) * (cell_x + _GAP_PX)
        image = np.clip((tile.image - low) / max(high - low, 1e-9), 0, 1)
        _paste(mosaic, image, top, left)
        _paste(mosaic, _stretch(tile.spectrum), top, left + tile.image.shape[1] + _GAP_PX)
        labels.append((left + 2, top - 3, f"{round(tile.tilt_deg, 1) + 0.0:+.1f}°"))
    _render(path, mosaic, labels, title)


def _paste(mosaic: np.ndarray, tile: np.ndarray, top: int, left: int) -> None:
    mosaic[top : top + tile.shape[0], left : left + tile.shape[1]] = tile


def _stretch(spectrum: np.ndarray) -> np.ndarray:
    """Thon rings on a flat background, scaled to 0-1: the 2-D spectrum left, its rotational average right.

    The smooth radial falloff of the log spectrum is subtracted; the rotational average (as CTFFIND's
    diagnostic images show beside the data) makes weak rings visible, the 2-D half shows astigmatism. Each
    half is scaled on its own (±2.5 robust standard deviations beyond the first ring's neighbourhood).
    """
    n = spectrum.shape[0]
    yy, xx = np.indices(spectrum.shape)
    radius = np.hypot(yy - n // 2, xx - n // 2)
    ring = np.minimum(radius.astype(int), n // 2)
    profile = np.bincount(ring.ravel(), spectrum.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    background = ndimage.gaussian_filter1d(profile, n / 24, mode="nearest")
    outer = (radius > 0.12 * n) & (radius < 0.5 * n)
    halves = []
    for flat in (ndimage.gaussian_filter(spectrum, 1.0) - background[ring], (profile - background)[ring]):
        centre = float(np.median(flat[outer]))
        spread = 1.4826 * float(np.median(np.abs(flat[outer] - centre)))  # robust standard deviation
        halves.append(np.clip(0.5 + (flat - centre) / max(5.0 * spread, 1e-9), 0, 1))
    shown = np.where(xx < n // 2, halves[0], halves[1])
    return np.where(radius > 0.06 * n, shown, 0.5)


@one_at_a_time
def _render(path: Path, mosaic: np.ndarray, labels: list[tuple[int, int, str]], title: str) -> None:
    dpi = 100
    title_px = 30
    figure = Figure(figsize=(mosaic.shape[1] / dpi, (mosaic.shape[0] + title_px) / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, mosaic.shape[0] / (mosaic.shape[0] + title_px)))
    axes.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_axis_off()
    for x, y, text in labels:
        axes.text(x, y, text, color="#ffd54f", fontsize=9, va="bottom", ha="left")
    figure.text(0.01, 1.0 - 0.5 * title_px / (mosaic.shape[0] + title_px), title, fontsize=11, va="center")
    figure.savefig(path, dpi=dpi)
