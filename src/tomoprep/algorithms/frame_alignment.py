"""Leave-one-out alignment of frame stacks, shared by global and local motion estimation.

Shifts follow the conventions of :mod:`tomoprep.algorithms.motion`: pixels of the frames given, ``(dy, dx)``, the
displacement of the specimen in each frame. The spectra (:func:`_binned_spectra`) and the iteration
(:func:`_align_stack`) serve :func:`tomoprep.algorithms.motion.estimate_global_motion` on whole frames and
:func:`tomoprep.algorithms.local_motion.estimate_local_motion` on patches (:func:`_align_stack_bounded`, which
keeps the residual shifts of patches within a small window). Every round measures each frame's correlation peak,
its significance and precision (:mod:`tomoprep.algorithms.peak_noise`), and fits the trajectories to the
credible peaks (:mod:`tomoprep.algorithms.trajectory`).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as nnf

from tomoprep.algorithms.correlation import correlation_near_zero, find_peak_subpixel, refine_peak
from tomoprep.algorithms.fourier import (
    crop_rfft,
    fourier_shift_rfft,
    irfft2_consuming,
    rfft_squared_frequencies,
    taper_edges,
)
from tomoprep.algorithms.peak_noise import peak_noise
from tomoprep.algorithms.trajectory import fit_trajectory, smooth_trajectory

Smoothing = float | Literal["auto"]

#: Width of the edge taper applied before correlating, as a fraction of the shorter frame side.
_TAPER_FRACTION = 0.05


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


def _correlation_weight(shape_yx: tuple[int, int], bfactor_px2: float, device: torch.device) -> torch.Tensor:
    """B-factor envelope on both images of a cross-power spectrum, ``exp(-B k² / 2)``, zero at ``k = 0``."""
    weight = torch.exp(-bfactor_px2 * rfft_squared_frequencies(shape_yx, device=device) / 2)
    weight[0, 0] = 0
    return weight


#: After the first round of :func:`_align_stack`, the correlations are computed within this many pixels of the
#: current estimate only (the round's update is searched within one pixel less).
_REFINE_RADIUS_PX = 3
#: A correlation peak is credible when its height is at least this many times the noise of the map: the
#: highest noise peak of a search over 10⁴-10⁶ positions is 4-5.5 noise standard deviations high, and on simulated
#: tilt movies peaks below 8 were off by 2-3 times their predicted σ (a side lobe taken for the peak).
CREDIBLE_SIGNIFICANCE = 8.0
#: The significance at which a peak searched near its frame's shift is credible: for a frame credible in the last
#: round, or in a stack whose peaks are resolved (:func:`_resolved`).
_STAYS_CREDIBLE = 6.0
#: A stack's peaks are resolved when the median over its frames of ``σ k_noise`` is at most this: the first-order
#: σ of a peak holds while it is small against the correlation length ``1 / k_noise`` of its map's noise (module
#: notes of :mod:`tomoprep.algorithms.peak_noise`; the scatter of the shifts about the truth is 1.1-1.2 σ up to
#: 0.23, 2.3-4.8 σ from 0.27).
_RESOLVED_ROUGHNESS = 0.25


class StackAlignment(NamedTuple):
    """What :func:`_align_stack` and :func:`_align_stack_bounded` return, all in pixels of the images correlated.

    Attributes
    ----------
    shifts_px
        ``(..., n, 2)`` fitted shifts, mean-free over the frames.
    measured_px
        ``(..., n, 2)`` the last round's measured shifts (peak positions), mean-free.
    sigma_px
        ``(..., n, 2)`` their standard deviations, ``inf`` where the peak was not credible.
    significance
        ``(..., n)`` height of each frame's last correlation peak over the noise of its map.
    """

    shifts_px: torch.Tensor
    measured_px: torch.Tensor
    sigma_px: torch.Tensor
    significance: torch.Tensor


def _peak_heights(maps: torch.Tensor, shifts_px: torch.Tensor, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Values ``(...,)`` of maps ``(..., Y, X)`` in FFT order at the integer pixel nearest each shift (plus
    ``offset`` pixels)."""
    rows = (shifts_px[..., 0].round().long() + offset[0]) % maps.shape[-2]
    cols = (shifts_px[..., 1].round().long() + offset[1]) % maps.shape[-1]
    flat = (rows * maps.shape[-1] + cols)[..., None]
    return maps.flatten(-2).gather(-1, flat)[..., 0]


def _sampled_curvature(maps: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """``(..., 2)`` curvature of maps at the pixel nearest each shift, from its neighbours along y and x: lower
    than the exact one for a peak a pixel or two wide (so the shift's σ comes out larger)."""
    centre = _peak_heights(maps, shifts_px)
    return torch.stack(
        [
            2 * centre - _peak_heights(maps, shifts_px, step) - _peak_heights(maps, shifts_px, (-step[0], -step[1]))
            for step in ((1, 0), (0, 1))
        ],
        dim=-1,
    )


def _beyond_window(maps: torch.Tensor, shape_yx: tuple[int, int]) -> torch.Tensor:
    """``(...,)`` bool: maps near zero (``(..., 2r + 1, 2r + 1)``, FFT order) whose maximum lies on the window's
    edge (a larger move, for which the whole map is searched), or all when the images are too small for it."""
    if min(shape_yx) <= 4 * _REFINE_RADIUS_PX:
        return torch.ones(maps.shape[:-2], dtype=torch.bool, device=maps.device)
    size = maps.shape[-1]
    peak = maps.flatten(-2).argmax(dim=-1)
    edge = torch.tensor((_REFINE_RADIUS_PX, _REFINE_RADIUS_PX + 1), device=maps.device)  # the shifts +r and -r
    return torch.isin(peak // size, edge) | torch.isin(peak % size, edge)


def _fit(measured_px: torch.Tensor, sigma_px: torch.Tensor, smoothing: Smoothing) -> torch.Tensor:
    """Trajectories from measured shifts: :func:`fit_trajectory` (``"auto"``), or frames without a measurement
    interpolated and then the fixed-penalty smoother."""
    if smoothing == "auto":
        return fit_trajectory(measured_px, sigma_px).shifts_px
    exact = torch.where(torch.isfinite(sigma_px), _EXACT_PX, math.inf)
    filled = fit_trajectory(measured_px, exact).shifts_px if bool(torch.isinf(sigma_px).any()) else measured_px
    return smooth_trajectory(filled, smoothing=float(smoothing))


#: Standard deviation given to measurements taken as exact (px): far below any real one.
_EXACT_PX = 1e-6
#: The iteration stops when no shift moves by more than this fraction of its standard deviation (or by more
#: than the tolerance): a move below the noise of the measurement is not information.
_SETTLED_FRACTION = 0.1


def _damped(
    shifts: torch.Tensor, updated: torch.Tensor, previous_step: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next shifts and the step taken: ``updated``, or less of the way where the steps oscillate.

    Every frame moves to its peak against the others at their current shifts. Where frames have split into two
    groups a few pixels apart (the first round's estimate of a large, sudden motion can), each frame's peak is
    the other group's and the groups swap places round after round. The ratio ``λ`` of this step to the last
    (least squares over all frames) tells: a step of ``1 / (1 - λ)`` of the way, for ``-1 ≤ λ < 0``, lands on
    the fixed point of a mode that reverses each round (halfway for a swap; 0.9 of the way for the ordinary
    ``λ = -1 / (n - 1)`` of leave-one-out alignment, Aitken's extrapolation).
    """
    step = updated - shifts
    if previous_step is not None:
        ratio = float((step * previous_step).sum() / previous_step.square().sum().clamp_min(1e-30))
        if ratio < 0:
            step = step / (1 - max(ratio, -1.0))
    return shifts + step, step


def _bounded(shifts_px: torch.Tensor, max_shift_px: float) -> torch.Tensor:
    """Shifts about their mean, each axis cut to ``±max_shift_px``: a trajectory carried over frames without a
    credible peak is not followed out of the range searched."""
    return (shifts_px - shifts_px.mean(dim=-2, keepdim=True)).clamp(-max_shift_px, max_shift_px)


def _settled(updated: torch.Tensor, shifts: torch.Tensor, sigma: torch.Tensor, tolerance_px: float) -> bool:
    """Whether no shift moved by more than the tolerance or :data:`_SETTLED_FRACTION` of its uncertainty."""
    return bool(((updated - shifts).abs() <= (_SETTLED_FRACTION * sigma).clamp_min(tolerance_px)).all())


class _Peaks(NamedTuple):
    """One round's peaks: updates ``(..., n, 2)``, heights ``(..., n)``, curvatures ``(..., n, 2)`` and whether each
    was found in the whole map ``(..., n)`` (so must stand above the highest noise of a large search)."""

    update: torch.Tensor
    heights: torch.Tensor
    curvature: torch.Tensor
    searched_whole_map: torch.Tensor


def _measure_round(cross: torch.Tensor, shape_yx: tuple[int, int], max_shift_px: float, *, first: bool) -> _Peaks:
    """One round's peaks. The first round searches whole maps, consumes ``cross`` and takes the curvature from the
    maps' samples (its peaks are a starting point); later rounds search near the current shifts, and the whole
    map only for frames whose peak lies beyond, and take each peak to the maximum of its band-limited map
    (:func:`refine_peak`), where the curvature is exact."""
    if first:
        maps = irfft2_consuming(cross, shape_yx)
        update = find_peak_subpixel(maps, max_shift_px=max_shift_px)
        whole = torch.ones(update.shape[:-1], dtype=torch.bool, device=update.device)
        return _Peaks(update, _peak_heights(maps, update), _sampled_curvature(maps, update), whole)
    near = correlation_near_zero(cross, shape_yx, _REFINE_RADIUS_PX)
    update = find_peak_subpixel(near, max_shift_px=min(_REFINE_RADIUS_PX - 1, max_shift_px))
    heights = _peak_heights(near, update)
    whole = _beyond_window(near, shape_yx)
    if bool(whole.any()):
        maps = irfft2_consuming(cross.clone(), shape_yx)
        far = find_peak_subpixel(maps, max_shift_px=max_shift_px)
        update = torch.where(whole[..., None], far, update)
        heights = torch.where(whole, _peak_heights(maps, far), heights)
    update, curvature = refine_peak(cross, shape_yx, update)
    return _Peaks(update, heights, curvature, whole)


def _credible(
    significance: torch.Tensor, whole_map: torch.Tensor, before: torch.Tensor, resolved: torch.Tensor | None = None
) -> torch.Tensor:
    """``(..., 1)`` bool: peaks that stand out of their map's noise. A peak of a whole map must reach
    :data:`CREDIBLE_SIGNIFICANCE`; one searched near its frame's shift only :data:`_STAYS_CREDIBLE` (the highest
    noise of a 7 x 7 window is rarely above 3.5 noise standard deviations) where the frame was credible in the last
    round, so that a peak near the threshold does not flip in and out round after round, or where the stack's
    peaks are ``resolved`` (``(..., n)`` bool): there a peak of 6-8 noise standard deviations places its frame as
    precisely as its σ says."""
    near = before[..., 0] if resolved is None else before[..., 0] | resolved
    threshold = torch.where(whole_map | ~near, CREDIBLE_SIGNIFICANCE, _STAYS_CREDIBLE)
    return (significance >= threshold)[..., None]


def _resolved(slope_noise: torch.Tensor, height_noise: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """``(..., n)`` bool, the same for all frames of a stack: whether the median over its frames of the roughness
    ``σ k_noise`` is at most :data:`_RESOLVED_ROUGHNESS`.

    ``σ = slope noise / curvature`` is the first-order spread of a peak and ``k_noise = slope noise / height
    noise`` (radians per pixel) the RMS angular frequency of its map's noise along each axis (the larger of the two
    axes counts). Where ``σ k_noise`` is not small, the noise has maxima of its own within the peak's reach, one of
    which the search takes (a peak weighted to frequencies the signal does not reach at that dose): the peak is
    then off by several σ, and below :data:`CREDIBLE_SIGNIFICANCE` it is not credible. The median over the frames
    is steadier than each frame's own value, whose curvature the noise at its peak sharpens."""
    roughness = slope_noise.square() / (curvature.clamp_min(1e-30) * height_noise[..., None].clamp_min(1e-30))
    roughness = torch.where(curvature > 0, roughness, math.inf).amax(dim=-1)
    typical = roughness.median(dim=-1, keepdim=True).values
    return (typical <= _RESOLVED_ROUGHNESS).expand_as(roughness)


def _align_stack(
    spectra: torch.Tensor,
    *,
    shape_yx: tuple[int, int],
    weight: torch.Tensor,
    max_iterations: int,
    tolerance_px: float,
    max_shift_px: float,
    smoothing: Smoothing,
    initial_px: torch.Tensor | None = None,
) -> StackAlignment:
    """Iterative leave-one-out alignment of stacks ``(..., n, Y, X // 2 + 1)``.

    Each round measures every frame's peak against the sum of the others at the current shifts, the peak's
    significance and (after the first round) its precision (:mod:`tomoprep.algorithms.peak_noise`); frames
    whose peak is not credible get no measurement and are interpolated by the trajectory fit. Starting from
    ``initial_px`` (``(..., n, 2)``, an alignment of coarser copies), the first round searches near those shifts
    as later rounds do, not the whole maps.
    """
    start = initial_px is not None
    shifts = (
        initial_px.clone() if initial_px is not None else torch.zeros((*spectra.shape[:-2], 2), device=spectra.device)
    )
    credible = torch.zeros_like(shifts[..., :1], dtype=torch.bool)
    result = StackAlignment(shifts, shifts, torch.full_like(shifts, math.inf), torch.zeros_like(shifts[..., 0]))
    step = None
    for iteration in range(max_iterations):
        aligned = fourier_shift_rfft(spectra, -shifts, shape_yx=shape_yx)
        others = aligned.sum(dim=-3, keepdim=True) - aligned
        noise = peak_noise(aligned, others, shape_yx=shape_yx, weight=weight)
        # In place: the cross-power spectrum takes the memory of the aligned spectra (a 20-group stack holds
        # 84 MB per copy).
        cross = aligned.mul_(others.conj_physical_()).mul_(weight)
        del aligned, others
        peaks = _measure_round(cross, shape_yx, max_shift_px, first=iteration == 0 and not start)
        significance = peaks.heights / noise.height
        curvature = peaks.curvature
        resolved = _resolved(noise.slope, noise.height, curvature)
        credible = _credible(significance, peaks.searched_whole_map, credible, resolved)
        sigma = torch.where(credible & (curvature > 0), noise.slope / curvature.clamp_min(1e-30), math.inf)
        measured = shifts + peaks.update
        updated = _fit(measured, sigma, smoothing) if bool(torch.isfinite(sigma).any()) else torch.zeros_like(shifts)
        updated, step = _damped(shifts, _bounded(updated, max_shift_px), step)
        settled = _settled(updated, shifts, sigma, tolerance_px)
        shifts = updated
        result = StackAlignment(shifts, measured - measured.mean(dim=-2, keepdim=True), sigma, significance)
        if settled and (iteration > 0 or start):
            break
    return result


def _align_stack_bounded(
    spectra: torch.Tensor,
    *,
    shape_yx: tuple[int, int],
    weight: torch.Tensor,
    max_iterations: int,
    tolerance_px: float,
    max_shift_px: float,
    smoothing: Smoothing,
) -> StackAlignment:
    """As :func:`_align_stack`, but every shift stays within ``±max_shift_px``.

    Each frame is correlated *unmoved* with the sum of the other frames moved by their current shifts, so the
    peak is the frame's whole shift and the search window bounds it, not only each round's update (a patch of
    noise would otherwise wander by a window per round). A map's noise is measured with the frame moved to its
    current shift (it does not depend on where the peak lies), its curvature where the peak lies.
    """
    shifts = torch.zeros((*spectra.shape[:-2], 2), device=spectra.device)
    credible = torch.zeros_like(shifts[..., :1], dtype=torch.bool)
    result = StackAlignment(shifts, shifts, torch.full_like(shifts, math.inf), torch.zeros_like(shifts[..., 0]))
    step = None
    for _ in range(max_iterations):
        aligned = fourier_shift_rfft(spectra, -shifts, shape_yx=shape_yx)
        others = aligned.sum(dim=-3, keepdim=True) - aligned
        noise = peak_noise(aligned, others, shape_yx=shape_yx, weight=weight)
        del aligned
        cross = others.conj_physical_().mul_(spectra).mul_(weight)
        maps = irfft2_consuming(cross.clone(), shape_yx)
        measured = find_peak_subpixel(maps, max_shift_px=max_shift_px)
        significance = _peak_heights(maps, measured) / noise.height
        measured, curvature = refine_peak(cross, shape_yx, measured)
        measured = measured.clamp(-max_shift_px, max_shift_px)
        del others, cross
        credible = _credible(significance, torch.zeros_like(significance, dtype=torch.bool), credible)
        sigma = torch.where(credible & (curvature > 0), noise.slope / curvature.clamp_min(1e-30), math.inf)
        measured = measured - measured.mean(dim=-2, keepdim=True)
        updated = _fit(measured, sigma, smoothing) if bool(torch.isfinite(sigma).any()) else torch.zeros_like(shifts)
        updated, step = _damped(shifts, _bounded(updated, max_shift_px), step)
        settled = _settled(updated, shifts, sigma, tolerance_px)
        shifts = updated
        result = StackAlignment(shifts, measured, sigma, significance)
        if settled:
            break
    return result
