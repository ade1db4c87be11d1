"""Leave-one-out alignment of frame stacks, shared by global and local motion estimation.

Shifts follow the conventions of :mod:`tomoprep.algorithms.motion`: pixels of the frames given, ``(dy, dx)``, the
displacement of the specimen in each frame. The spectra (:func:`_binned_spectra`) and the iteration
(:func:`_align_stack`) serve :func:`tomoprep.algorithms.motion.estimate_global_motion` on whole frames and
:func:`tomoprep.algorithms.local_motion.estimate_local_motion` on patches (:func:`_align_stack_bounded`, which
keeps the residual shifts of patches within a small window). :func:`smooth_trajectory` is public and
re-exported by :mod:`tomoprep.algorithms.motion`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as nnf

from tomoprep.algorithms.correlation import correlation_near_zero, find_peak_subpixel
from tomoprep.algorithms.fourier import (
    crop_rfft,
    fourier_shift_rfft,
    irfft2_consuming,
    rfft_squared_frequencies,
    taper_edges,
)

Smoothing = float | Literal["auto"]

#: Width of the edge taper applied before correlating, as a fraction of the shorter frame side.
_TAPER_FRACTION = 0.05
#: Order of the differences penalised by :func:`smooth_trajectory`.
_DIFFERENCE_ORDER = 3


def _fft_size(value: float) -> int:
    """Largest even size ≤ ``value`` (at least 2) with no prime factor above 5, which FFTs handle fastest."""
    size = max(2, int(value) - int(value) % 2)
    while size > 2:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size -= 2
    return size


def _check_frames(frames: torch.Tensor) -> None:
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (n_frames >= 2, y, x), got shape {tuple(frames.shape)}")


def _binned_spectra(
    frames: torch.Tensor, alignment_size_px: int, device: torch.device
) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor]:
    """Half spectra of the mean-free, edge-tapered frames, binned to at most ``alignment_size_px``.

    Binning by 4 or more first sums ``b x b`` pixel blocks (``b = factor // 2``; cheap, and for counting frames
    it keeps Poisson statistics), then crops the Fourier transform the rest of the way, which leaves what the
    B-factor weight keeps (below a quarter of the block Nyquist) almost untouched. Block binning offsets every
    frame by the same ``(b - 1) / 2`` input pixels, which the shifts do not see.

    Returns the spectra ``(n, Y, X // 2 + 1)``, the binned shape ``(Y, X)`` and the scale ``(2,)`` in input
    pixels per binned pixel.
    """
    n, ny, nx = frames.shape
    factor = max(ny, nx) / alignment_size_px
    block = max(1, int(factor // 2))
    by, bx = ny // block, nx // block
    shape_b = (_fft_size(by * block / factor), _fft_size(bx * block / factor)) if factor > 1 else (ny, nx)
    spectra = torch.empty((n, shape_b[0], shape_b[1] // 2 + 1), dtype=torch.complex64, device=device)
    width = max(4, round(_TAPER_FRACTION * min(by, bx)))
    for i in range(n):
        frame = frames[i].to(device=device, dtype=torch.float32)
        if block > 1:
            frame = nnf.avg_pool2d(frame[None, None], block)[0, 0]
        spectrum = torch.fft.rfft2(taper_edges(frame, width))
        spectra[i] = crop_rfft(spectrum, shape_yx=(by, bx), new_shape_yx=shape_b) if factor > 1 else spectrum
    return spectra, shape_b, torch.tensor([by * block / shape_b[0], bx * block / shape_b[1]], device=device)


def _smoother(n: int, smoothing: float, device: torch.device) -> torch.Tensor:
    eye = torch.eye(n, dtype=torch.float64, device=device)
    difference = torch.diff(eye, n=_DIFFERENCE_ORDER, dim=0)
    return torch.linalg.inv(eye + smoothing * difference.T @ difference)


def _gcv_smoothing(shifts: torch.Tensor) -> float:
    """The λ of a grid from 0.3 to 1000 that minimises generalised cross-validation over all series jointly.

    The floor keeps the choice from chasing noise on few low-dose frames; it bends a sharp start (3 px, time
    constant 2.5 frames, 10 frames) by 0.01 px RMS."""
    n = shifts.shape[-2]
    series = shifts.double().transpose(-1, -2).reshape(-1, n)
    best, best_score = 0.0, math.inf
    for smoothing in (10 ** (k / 4) for k in range(-2, 13)):
        hat = _smoother(n, smoothing, shifts.device)
        score = float(n * (series - series @ hat.T).pow(2).sum() / (n - torch.trace(hat)) ** 2)
        if score < best_score:
            best, best_score = smoothing, score
    return best


def smooth_trajectory(shifts_px: torch.Tensor, *, smoothing: Smoothing) -> torch.Tensor:
    """Smooth trajectories across frames by penalised least squares (a Whittaker smoother).

    Solves ``(I + λ DᵀD) s = shifts`` per axis, ``D`` being the third-difference operator over frames: a drift
    with constant acceleration passes unchanged, frame-to-frame jitter is damped, the mean is kept. On 10 frames,
    λ = 3 passes about half of white noise (RMS) and bends an exponential start (3 px, time constant 2.5
    frames) by 0.03 px RMS.

    Parameters
    ----------
    shifts_px
        ``(..., n_frames, 2)`` shifts in pixels.
    smoothing
        ``λ`` ≥ 0 (0 returns the input), or ``"auto"``: chosen by generalised cross-validation between 0.3 and
        1000, which smooths noisy trajectories hard and leaves precise ones nearly untouched.

    Returns
    -------
    torch.Tensor
        Smoothed shifts, same shape and dtype.
    """
    n = shifts_px.shape[-2]
    if n <= _DIFFERENCE_ORDER:
        return shifts_px
    value = _gcv_smoothing(shifts_px) if smoothing == "auto" else float(smoothing)
    if value <= 0:
        return shifts_px
    return (_smoother(n, value, shifts_px.device) @ shifts_px.double()).to(shifts_px.dtype)


def _correlation_weight(shape_yx: tuple[int, int], bfactor_px2: float, device: torch.device) -> torch.Tensor:
    """B-factor envelope on both images of a cross-power spectrum, ``exp(-B k² / 2)``, zero at ``k = 0``."""
    weight = torch.exp(-bfactor_px2 * rfft_squared_frequencies(shape_yx, device=device) / 2)
    weight[0, 0] = 0
    return weight


#: After the first round of :func:`_align_stack`, the correlations are computed within this many pixels of the
#: current estimate only (the round's update is searched within one pixel less).
_REFINE_RADIUS_PX = 3


def _update_near_zero(cross: torch.Tensor, shape_yx: tuple[int, int], max_shift_px: float) -> torch.Tensor | None:
    """The peak of each cross-power spectrum's correlation within ``_REFINE_RADIUS_PX - 1`` of zero, or ``None``
    when a map's maximum lies on the window's edge (a larger move: the whole map is then searched)."""
    if min(shape_yx) <= 4 * _REFINE_RADIUS_PX:
        return None
    maps = correlation_near_zero(cross, shape_yx, _REFINE_RADIUS_PX)
    size = maps.shape[-1]
    peak = maps.flatten(-2).argmax(dim=-1)
    rows, cols = peak // size, peak % size
    edge = (_REFINE_RADIUS_PX, _REFINE_RADIUS_PX + 1)  # the shifts +r and -r in FFT order
    if bool(torch.isin(rows, torch.tensor(edge, device=rows.device)).any()) or bool(
        torch.isin(cols, torch.tensor(edge, device=cols.device)).any()
    ):
        return None
    return find_peak_subpixel(maps, max_shift_px=min(_REFINE_RADIUS_PX - 1, max_shift_px))


def _align_stack(
    spectra: torch.Tensor,
    *,
    shape_yx: tuple[int, int],
    weight: torch.Tensor,
    max_iterations: int,
    tolerance_px: float,
    max_shift_px: float,
    smoothing: Smoothing,
) -> torch.Tensor:
    """Iterative leave-one-out alignment of stacks ``(..., n, Y, X // 2 + 1)``; returns mean-free ``(..., n, 2)``."""
    shifts = torch.zeros((*spectra.shape[:-2], 2), device=spectra.device)
    for iteration in range(max_iterations):
        aligned = fourier_shift_rfft(spectra, -shifts, shape_yx=shape_yx)
        others = aligned.sum(dim=-3, keepdim=True) - aligned
        # In place: the cross-power spectrum takes the memory of the aligned spectra (a 20-group stack holds
        # 84 MB per copy).
        cross = aligned.mul_(others.conj_physical_()).mul_(weight)
        del aligned, others
        update = _update_near_zero(cross, shape_yx, max_shift_px) if iteration > 0 else None
        if update is None:
            update = find_peak_subpixel(irfft2_consuming(cross, shape_yx), max_shift_px=max_shift_px)
        updated = smooth_trajectory(shifts + update, smoothing=smoothing)
        updated = updated - updated.mean(dim=-2, keepdim=True)
        change = float((updated - shifts).abs().max())
        shifts = updated
        if change < tolerance_px:
            break
    return shifts


def _align_stack_bounded(
    spectra: torch.Tensor,
    *,
    shape_yx: tuple[int, int],
    weight: torch.Tensor,
    max_iterations: int,
    tolerance_px: float,
    max_shift_px: float,
    smoothing: Smoothing,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`_align_stack`, but every shift stays within ``±max_shift_px``; also returns the raw measurements.

    Each frame is correlated *unmoved* with the sum of the other frames moved by their current shifts, so the
    peak is the frame's whole shift and the search window bounds it, not only each round's update (a patch of
    noise would otherwise wander by a window per round). Returns the smoothed shifts and the last round's
    measured, unsmoothed ones, both ``(..., n, 2)`` and mean-free over the frames.
    """
    shifts = torch.zeros((*spectra.shape[:-2], 2), device=spectra.device)
    measured = shifts
    for _ in range(max_iterations):
        aligned = fourier_shift_rfft(spectra, -shifts, shape_yx=shape_yx)
        others = (aligned.sum(dim=-3, keepdim=True) - aligned).conj_physical_()
        del aligned
        cc = irfft2_consuming(others.mul_(spectra).mul_(weight), shape_yx)
        del others
        measured = find_peak_subpixel(cc, max_shift_px=max_shift_px)
        measured = measured - measured.mean(dim=-2, keepdim=True)
        updated = smooth_trajectory(measured, smoothing=smoothing)
        updated = updated - updated.mean(dim=-2, keepdim=True)
        change = float((updated - shifts).abs().max())
        shifts = updated
        if change < tolerance_px:
            break
    return shifts, measured
