"""Detector defects: find hot and dead pixels in the sum of a movie, and replace them in frames or sums.

Detection compares each pixel of a sum of many frames with the (separable) median of its neighbourhood, the
count it should have had. Counting detectors give Poisson counts, so the comparison is a Poisson tail
probability: a pixel is hot (dead) when a count at least as high (as low) has a probability below the one-sided
normal probability of ``threshold_sigma`` (1e-9 at 6 sigma: no false defect expected on a 4k sensor, measured
on Poisson sums of 20, 50 and 1000 counts per pixel). To absorb gain scaling and specimen contrast the counts
are first divided by the robust variance (1.4826 x median absolute deviation, squared) of the residuals on
Anscombe's variance-stabilised scale ``2 sqrt(c + 3/8)``, which is 1 for pure Poisson counts. A pixel that never
counts stands out only where ≥ 21 counts are expected (``P(0 | 21) = 8e-10``); fewer counts cannot
distinguish a dead pixel from chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as nnf

#: Consistency factor of the median absolute deviation for a normal distribution.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class DefectMasks:
    """Defective pixels found by :func:`detect_defects`.

    Attributes
    ----------
    hot
        ``(y, x)`` bool: pixels counting far more than their neighbourhood.
    dead
        ``(y, x)`` bool: pixels counting far less (including those that never count).
    """

    hot: torch.Tensor
    dead: torch.Tensor

    @property
    def combined(self) -> torch.Tensor:
        """``(y, x)`` bool: hot or dead."""
        return self.hot | self.dead


def _median_along(values: torch.Tensor, window_px: int, dim: int) -> torch.Tensor:
    half = window_px // 2
    padding = (half, half, 0, 0) if dim == 1 else (0, 0, half, half)
    padded = nnf.pad(values[None, None], padding, mode="reflect")[0, 0]
    return padded.unfold(dim, window_px, 1).median(dim=-1).values


def local_median(image: torch.Tensor, window_px: int = 5) -> torch.Tensor:
    """Separable median of the ``window_px x window_px`` neighbourhood of every pixel of an ``(y, x)`` image.

    The median along x, then the median of those along y: it ignores isolated outliers, bad rows and bad columns
    as the full 2-D median does, at a quarter of the cost (2.4 s for 4096² on two CPU cores). Edges are mirrored;
    ``window_px`` must be odd.
    """
    if window_px < 3 or window_px % 2 == 0:
        raise ValueError(f"window_px must be an odd number ≥ 3, got {window_px}")
    return _median_along(_median_along(image.float(), window_px, dim=1), window_px, dim=0)


def _median_of_5(values: torch.Tensor) -> torch.Tensor:
    """Median along the last dimension (of size 5) by a compare-exchange network: 7 elementwise minima and
    maxima instead of a sort per row (5x faster than :meth:`torch.Tensor.median` on 10^5 rows)."""
    return _median_of(*values.unbind(-1))


def _median_of(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Elementwise median of five tensors of one shape."""
    a, b = torch.minimum(a, b), torch.maximum(a, b)
    d, e = torch.minimum(d, e), torch.maximum(d, e)
    # min(a, d) is the smallest of four and max(b, e) the largest: neither can be the median of five.
    low, high = torch.maximum(a, d), torch.minimum(b, e)
    low, high = torch.minimum(low, high), torch.maximum(low, high)
    return torch.maximum(low, torch.minimum(c, high))


def _median_last(values: torch.Tensor) -> torch.Tensor:
    return _median_of_5(values) if values.shape[-1] == 5 else values.median(dim=-1).values


def _padded(image: torch.Tensor, half: int) -> torch.Tensor:
    """The image mirrored by ``half`` pixels on every side (as the 1-D passes of :func:`local_median` pad)."""
    return nnf.pad(image.float()[None, None], (half, half, half, half), mode="reflect")[0, 0]


def _medians_in(padded: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, window_px: int) -> torch.Tensor:
    """Separable median of the windows at ``(ys, xs)`` of the image that ``padded`` mirrors by window/2."""
    # A strided view of every window (no copy); indexing it gathers the (N, window, window) blocks asked for.
    windows = padded.unfold(0, window_px, 1).unfold(1, window_px, 1)
    return _median_last(_median_last(windows[ys, xs]))


def local_median_at(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, window_px: int = 5) -> torch.Tensor:
    """:func:`local_median` at the pixels ``(ys, xs)`` only (the same values, at a cost per pixel asked)."""
    # Reflecting in y and then in x pads the image as the two 1-D passes do, so the values are identical.
    return _medians_in(_padded(image, window_px // 2), ys, xs, window_px)


def _box_sum(padded: torch.Tensor, window_px: int) -> torch.Tensor:
    """Sum over each ``window_px`` square of the image that ``padded`` mirrors by window/2: two passes of
    shifted additions (2.3x faster than ``avg_pool2d`` on 4096² on CPU)."""
    ny, nx = padded.shape[0] - window_px + 1, padded.shape[1] - window_px + 1
    rows = padded[:, 0:nx].clone()
    for k in range(1, window_px):
        rows += padded[:, k : k + nx]
    total = rows[0:ny].clone()
    for k in range(1, window_px):
        total += rows[k : k + ny]
    return total


def _robust_sigma(values: torch.Tensor) -> torch.Tensor:
    centre = values.median()
    return _MAD_TO_SIGMA * (values - centre).abs().median()


def _stabilised(counts: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Residuals on Anscombe's variance-stabilised scale (1 for Poisson counts)."""
    return 2 * (torch.sqrt(counts + 0.375) - torch.sqrt(expected + 0.375))


#: Pixels on which the robust spread of the residuals is estimated (a strided subset of the image).
_SPREAD_SAMPLE = 100_000
#: The screen keeps every pixel this many robust sigmas nearer to its neighbourhood than the test's
#: candidates need: the neighbourhood mean it uses is pulled towards a defect by defective neighbours (by at
#: most 9/24 of the excess in a 5x5 window around a 2-wide bad column), the median is not.
_SCREEN_MARGIN_SIGMA = 1.0


def detect_defects(counts_sum: torch.Tensor, *, threshold_sigma: float = 6.0, window_px: int = 5) -> DefectMasks:
    """Find hot and dead pixels in the sum of many frames of a movie (or of several movies).

    Candidates are pixels whose variance-stabilised residual exceeds ``threshold_sigma - 2`` robust standard
    deviations; each is then tested with the exact Poisson tail probability of its count given the local
    median, in effective counts (both divided by the robust variance, which undoes a gain scaling), against the
    one-sided Gaussian probability of ``threshold_sigma`` (1e-9 at 6). Pixels whose neighbourhood median is 0
    are not tested.

    The median is computed only where it can matter: a screen against the mean of each pixel's neighbours (a
    box filter) keeps the pixels within ``threshold_sigma - 3`` robust sigmas of candidacy, and the spread is
    estimated on a strided subset; the result is that of the median at every pixel, at a tenth of the cost.

    Parameters
    ----------
    counts_sum
        ``(y, x)`` sum of frames, in counts (before gain correction, or gain-corrected: the robust spread
        absorbs a scaling). A pixel that never counts is only significant at 6 sigma where ≥ 21 counts are
        expected (``P(0 | 21) = 8e-10``): sum enough frames.
    threshold_sigma
        Significance of a defect, in standard deviations of a normal distribution.
    window_px
        Side of the neighbourhood whose median is the expected count (odd, ≥ 3); larger than a cluster of
        defects (5 tolerates a bad column or a 2 x 2 cluster).

    Returns
    -------
    DefectMasks
        Hot and dead masks, ``(y, x)`` bool each, on the input's device.
    """
    if counts_sum.ndim != 2:
        raise ValueError(f"counts_sum must be one (y, x) image, got shape {tuple(counts_sum.shape)}")
    if window_px < 3 or window_px % 2 == 0:
        raise ValueError(f"window_px must be an odd number ≥ 3, got {window_px}")
    counts = counts_sum.float().clamp_min(0)
    nx = counts.shape[1]
    half = window_px // 2
    padded = _padded(counts, half)
    flat = counts.flatten()
    step = max(1, flat.numel() // _SPREAD_SAMPLE)
    sample = torch.arange(0, flat.numel(), step, device=counts.device)
    sample_y, sample_x = sample // nx, sample % nx
    sample_residual = _stabilised(flat[sample], _medians_in(padded, sample_y, sample_x, window_px))
    sigma = _robust_sigma(sample_residual).clamp_min(1e-3).double()
    variance = sigma**2

    # Screen: |2 (sqrt(c + 3/8) - sqrt(n + 3/8))| with n the mean of the other pixels of the window, in place.
    neighbours = _box_sum(padded, window_px).sub_(counts).div_(window_px**2 - 1)
    screen = neighbours.add_(0.375).sqrt_().sub_((counts + 0.375).sqrt_()).abs_()
    ys, xs = (screen > (threshold_sigma - 2 - _SCREEN_MARGIN_SIGMA) * float(sigma) / 2).nonzero(as_tuple=True)
    del neighbours, screen
    expected = _medians_in(padded, ys, xs, window_px)
    residual = _stabilised(counts[ys, xs], expected)
    keep = (residual.abs() > (threshold_sigma - 2) * sigma) & (expected > 0)
    candidates = (ys[keep], xs[keep])
    count, mean = counts[candidates].double() / variance, expected[keep].double() / variance
    false_alarm = 0.5 * math.erfc(threshold_sigma / math.sqrt(2))
    hot, dead = torch.zeros_like(counts, dtype=torch.bool), torch.zeros_like(counts, dtype=torch.bool)
    # P(X >= count) and P(X <= count) for X ~ Poisson(mean), continued to non-integer counts
    hot[candidates] = (count > mean) & (torch.special.gammainc(count.clamp_min(1e-9), mean) < false_alarm)
    dead[candidates] = (count < mean) & (torch.special.gammaincc(count + 1, mean) < false_alarm)
    return DefectMasks(hot=hot, dead=dead)


def _neighbours(mask: torch.Tensor, window_px: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``(D, K)``, columns ``(D, K)`` and validity ``(D, K)`` of the good neighbours of each masked pixel."""
    ny, nx = mask.shape
    ys, xs = mask.nonzero(as_tuple=True)
    half = window_px // 2
    steps = torch.arange(-half, half + 1, device=mask.device)
    oy, ox = torch.meshgrid(steps, steps, indexing="ij")
    keep = (oy != 0) | (ox != 0)
    rows = ys[:, None] + oy[keep][None, :]
    cols = xs[:, None] + ox[keep][None, :]
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    rows, cols = rows.clamp(0, ny - 1), cols.clamp(0, nx - 1)
    return rows, cols, inside & ~mask[rows, cols]


def correct_defects(
    images: torch.Tensor,
    mask: torch.Tensor,
    *,
    method: Literal["neighbour", "median"] = "neighbour",
    window_px: int = 5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace masked pixels of images (frames or sums) by values from their good neighbours.

    Parameters
    ----------
    images
        ``(..., y, x)`` images sharing one defect mask.
    mask
        ``(y, x)`` bool, ``True`` at defects (e.g. :attr:`DefectMasks.combined`).
    method
        ``"neighbour"``: the value of a good neighbour drawn at random per pixel and image (keeps the counting
        statistics of sparse frames, as RELION does with random values); ``"median"``: the median of the good
        neighbours (better for sums).
    window_px
        Side of the neighbourhood searched (odd). A defect with no good neighbour gets the image's median.
    generator
        Random generator for ``"neighbour"`` (reproducible results); must be on the images' device.

    Returns
    -------
    torch.Tensor
        Corrected copy of ``images``.
    """
    if mask.shape != images.shape[-2:]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit images of shape {tuple(images.shape)}")
    out = images.clone()
    if not bool(mask.any()):
        return out
    rows, cols, valid = _neighbours(mask.to(images.device), window_px)
    values = images[..., rows, cols].float()  # (..., D, K)
    if method == "median":
        chosen = values.masked_fill(~valid, float("nan")).nanmedian(dim=-1).values
    else:
        weights = valid.float().expand(values.shape).reshape(-1, values.shape[-1]) + 1e-12
        picks = torch.multinomial(weights, 1, generator=generator).reshape(values.shape[:-1])
        chosen = values.gather(-1, picks[..., None])[..., 0]
    fallback = images.flatten(-2).float().median(dim=-1).values[..., None]
    chosen = torch.where(valid.any(dim=-1), chosen, fallback.expand_as(chosen))
    ys, xs = mask.to(images.device).nonzero(as_tuple=True)
    out[..., ys, xs] = chosen.to(out.dtype)
    return out


class DefectFiller:
    """Replace the masked pixels of many frames by the mean of their good neighbours, quickly.

    The neighbour indices are found once per mask, so each frame costs a gather over the defects only
    (:func:`correct_defects` would search the neighbourhood of every defect again for every frame).

    Parameters
    ----------
    mask
        ``(y, x)`` bool, ``True`` at defects.
    window_px
        Side of the neighbourhood searched for good pixels (odd).
    """

    def __init__(self, mask: torch.Tensor, *, window_px: int = 5) -> None:
        ny, nx = mask.shape
        ys, xs = torch.nonzero(mask, as_tuple=True)
        half = window_px // 2
        offsets = torch.arange(-half, half + 1, device=mask.device)
        dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
        ny_idx = (ys[:, None] + dy.reshape(1, -1)).clamp(0, ny - 1)
        nx_idx = (xs[:, None] + dx.reshape(1, -1)).clamp(0, nx - 1)
        self.targets = ys * nx + xs
        self.sources = ny_idx * nx + nx_idx
        self.weights = (~mask[ny_idx, nx_idx]).to(torch.float32)
        self.norm = self.weights.sum(dim=1).clamp(min=1.0)

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        """A copy of ``(y, x)`` ``frame`` with its defects replaced."""
        return self.fill_(frame.clone())

    def fill_(self, frame: torch.Tensor) -> torch.Tensor:
        """Replace the defects of a contiguous ``(y, x)`` ``frame`` in place; returns it."""
        flat = frame.view(-1)
        values = flat[self.sources.reshape(-1)].reshape(self.sources.shape).to(torch.float32)
        flat[self.targets] = ((values * self.weights).sum(dim=1) / self.norm).to(flat.dtype)
        return frame
