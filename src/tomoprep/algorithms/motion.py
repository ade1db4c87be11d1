"""Beam-induced motion of movie frames: global and local estimates, aligned and dose-weighted sums.

Shifts are in pixels of the frames given, as ``(dy, dx)``: the displacement of the specimen in frame ``i``
relative to the reference position, so frame ``i`` holds ``reference(r - shift_i)`` and is aligned by moving it
by ``-shift_i`` (conventions of :mod:`tomoprep.algorithms.fourier`). Frames are ``(n, y, x)``, in acquisition
order, gain-corrected and free of defects (:mod:`tomoprep.algorithms.defects`).

Method (MotionCor2 and RELION's own implementation in spirit):

- Global motion (:func:`measure_global_motion`): every frame is cross-correlated with the sum of all *other*
  frames (leaving it out keeps its own noise out of its reference), with a B-factor weight, on a Fourier-binned
  copy when the frames are larger than ``alignment_size_px``. The correlation peak is fitted to sub-pixel
  precision; its significance and precision are measured from the frames (:mod:`tomoprep.algorithms.peak_noise`)
  and the trajectory is fitted to the credible peaks with that precision (:func:`fit_trajectory`); the frames are
  moved and the sum rebuilt, until no shift changes by more than the tolerance or a tenth of its uncertainty.
  With ``refinement_size_px``, larger frames are then measured once on finer copies from that trajectory and
  aligned there when their peaks are at most :data:`FINER_SIGMA_RATIO` times as uncertain: binning discards
  the information beyond the coarse copies' Nyquist frequency, which a contrast transfer reaching past it
  carries (simulated 4096² tilt movies: σ 0.3 times as large on 2048² copies as on 1024² ones, trajectories
  0.009-0.018 px from the truth instead of 0.046-0.069 px).
  Frames are mean-subtracted and edge-tapered first: the frame border does not move with the specimen, and
  without the taper its wrap-around edge pulls every shift towards zero (1 % shrinkage measured).
- Local motion (:func:`estimate_local_motion`): the globally aligned frames are cut into overlapping patches,
  the same iteration gives each patch's residual trajectory, and one polynomial in space and time
  (:class:`LocalMotionModel`) is fitted to all of them.
- Sums (:func:`align_and_sum`): frames arrive one at a time, are moved by their global shift exactly in Fourier
  space, warped by the local model in real space if one is given, and accumulated as spectra, so that only one
  full-size frame is held at a time.

Measured (2 CPU cores, torch 2.13): on 10 frames of 512² at 0.92 e⁻/px per frame (3 e⁻/Å² at 1.75 Å/px) a
smooth global trajectory comes out within 0.035-0.11 px RMS (8 noise seeds, mean 0.078; 0.11-0.16 without
smoothing, about what the information in such frames allows), at 0.1 e⁻/px within 0.25-0.63 px (mean 0.46); a
jittery one (a random walk of 0.3-1 px per
frame) on 2048² frames within 0.02-0.03 px at 1 e⁻/px per frame; on 20 frames of 4096² at 1 e⁻/px within
0.012 px, estimated in about 2 s, with the aligned plain, odd/even and dose-weighted sums in 3 s more.

Global motion and the accumulated-motion statistics live here; the alignment iteration in
:mod:`tomoprep.algorithms.frame_alignment`, the trajectory model in :mod:`tomoprep.algorithms.trajectory`, local
motion in :mod:`tomoprep.algorithms.local_motion`, the sums in :mod:`tomoprep.algorithms.summing`. Their public
names are re-exported here, the one import for callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import torch

from tomoprep.algorithms.fourier import Device
from tomoprep.algorithms.frame_alignment import (
    CREDIBLE_SIGNIFICANCE,
    Smoothing,
    _align_stack,
    _binned_spectra,
    _check_frames,
    _correlation_weight,
)
from tomoprep.algorithms.local_motion import (
    Interpolation,
    LocalMotionModel,
    apply_local_motion,
    estimate_local_motion,
    local_shift_field,
    local_shifts_at,
)
from tomoprep.algorithms.summing import AlignedSums, DoseWeighting, align_and_sum
from tomoprep.algorithms.trajectory import TrajectoryFit, fit_trajectory, smooth_trajectory

__all__ = [
    "CREDIBLE_SIGNIFICANCE",
    "AccumulatedMotion",
    "AlignedSums",
    "DoseWeighting",
    "GlobalMotion",
    "Interpolation",
    "LocalMotionModel",
    "Smoothing",
    "TrajectoryFit",
    "accumulated_motion",
    "align_and_sum",
    "apply_local_motion",
    "estimate_global_motion",
    "estimate_local_motion",
    "fit_trajectory",
    "local_shift_field",
    "local_shifts_at",
    "measure_global_motion",
    "smooth_trajectory",
]


class GlobalMotion(NamedTuple):
    """Whole-frame motion of a movie, in input pixels.

    Attributes
    ----------
    shifts_px
        ``(n, 2)`` float32 shifts ``(dy, dx)`` (the trajectory fitted).
    sigma_px
        ``(n, 2)`` standard deviation of each frame's measured shift (its correlation peak), ``inf`` for a frame
        whose peak was not credible: its shift is interpolated from the others'.
    significance
        ``(n,)`` height of each frame's correlation peak over the noise of its map (credible from
        :data:`CREDIBLE_SIGNIFICANCE`).
    """

    shifts_px: torch.Tensor
    sigma_px: torch.Tensor
    significance: torch.Tensor

    @property
    def interpolated(self) -> torch.Tensor:
        """``(n,)`` bool: frames without a credible peak, whose shifts come from their neighbours' motion."""
        return ~torch.isfinite(self.sigma_px).all(dim=-1)


def measure_global_motion(
    frames: torch.Tensor,
    *,
    bfactor_px2: float = 150.0,
    max_iterations: int = 10,
    tolerance_px: float = 0.01,
    max_shift_px: float = 100.0,
    alignment_size_px: int = 1024,
    refinement_size_px: int | None = None,
    smoothing: Smoothing = "auto",
    reference: Literal["mean", "first"] = "mean",
    device: Device = None,
) -> GlobalMotion:
    """Estimate the whole-frame shift of every frame by iterative leave-one-out cross-correlation (module notes).

    Parameters
    ----------
    frames
        ``(n, y, x)`` frames, any float dtype and device.
    bfactor_px2
        B-factor in px² of the frames given, applied to each frame of a correlated pair (``exp(-B k² / 4)``,
        k in 1/px); 150 is RELION's default for unbinned frames. For frames the caller binned by ``b``, pass
        ``B / b²``: on a 4k movie binned by 4 beforehand, 150 instead of 150/16 gave 0.028 instead of 0.010 px
        RMS and shrank the trajectory by 0.3 %. (A step should take it in Å² and divide by the pixel spacing².)
    max_iterations
        Most refinement rounds.
    tolerance_px
        Stop when no shift changed by more than this, or than a tenth of its standard deviation, between rounds
        (input pixels).
    max_shift_px
        Largest shift searched from a frame's current position in a round, input pixels (the first round
        searches this far from the movie's mean position).
    alignment_size_px
        Frames whose larger side exceeds this are Fourier-binned to it for the estimate (shifts come back in
        input pixels); 1024 on a 4k movie loses little, because the B-factor weight keeps mostly what is coarser
        than 1/10 px⁻¹.
    refinement_size_px
        Frames larger than ``alignment_size_px`` are then measured once on copies binned to about this size, and
        aligned there when their peaks come out at most :data:`FINER_SIGMA_RATIO` times as uncertain: where the
        correlation's information reaches the Nyquist frequency of the coarse copies, binning is what limits
        the precision (module notes). ``None``: never.
    smoothing
        ``"auto"``: each round's measurements are fitted by :func:`fit_trajectory` with their measured
        precision, which follows a jittery trajectory where the peaks are sharp and smooths where they are not.
        A number ``λ`` instead smooths with :func:`smooth_trajectory` whatever the precision; 0 for none.
    reference
        ``"mean"``: the shifts average to zero (the aligned sum sits at the mean position); ``"first"``: the first
        frame is at zero (RELION, MotionCor2 ``-FmRef 0``).
    device
        Where to compute; by default the frames' device.

    Returns
    -------
    GlobalMotion
        Shifts, their precision and the peaks' significance, on the compute device.
    """
    _check_frames(frames)
    device = torch.device(device) if device is not None else frames.device
    options = {"bfactor_px2": bfactor_px2, "tolerance_px": tolerance_px, "max_shift_px": max_shift_px}
    motion = _aligned(
        frames, alignment_size_px, device, None, max_iterations=max_iterations, smoothing=smoothing, **options
    )
    size = refinement_size_px or 0
    if size > alignment_size_px and max(frames.shape[-2:]) > alignment_size_px:
        probe = _aligned(frames, size, device, motion.shifts_px, max_iterations=1, smoothing=smoothing, **options)
        if _sharper(probe, motion):
            motion = _aligned(
                frames, size, device, probe.shifts_px, max_iterations=max_iterations, smoothing=smoothing, **options
            )
    shifts = motion.shifts_px - motion.shifts_px[0] if reference == "first" else motion.shifts_px
    return GlobalMotion(shifts, motion.sigma_px, motion.significance)


#: A movie is aligned on finer copies when its peaks there are at most this fraction as uncertain as on the
#: coarse copies (median over the groups credible on both): twice the information, for about four times the cost.
FINER_SIGMA_RATIO = 0.7


def _sharper(finer: GlobalMotion, coarse: GlobalMotion) -> bool:
    """Whether the peaks of ``finer`` are at most :data:`FINER_SIGMA_RATIO` times as uncertain as those of
    ``coarse`` (frames credible in both), or credible where none of ``coarse`` is."""
    both = ~finer.interpolated & ~coarse.interpolated
    if not bool(both.any()):
        return bool(coarse.interpolated.all()) and not bool(finer.interpolated.all())
    ratio = finer.sigma_px[both] / coarse.sigma_px[both]
    return float(ratio.median()) <= FINER_SIGMA_RATIO


def _aligned(
    frames: torch.Tensor,
    size_px: int,
    device: torch.device,
    initial_px: torch.Tensor | None,
    *,
    bfactor_px2: float,
    tolerance_px: float,
    max_shift_px: float,
    max_iterations: int,
    smoothing: Smoothing,
) -> GlobalMotion:
    """:func:`_align_stack` on copies of the frames binned to about ``size_px``, from shifts ``initial_px``
    ``(n, 2)`` or from the whole maps; shifts and their precision in input pixels."""
    spectra, shape_b, scale = _binned_spectra(frames, size_px, device)
    pixel_b = float(scale.mean())
    alignment = _align_stack(
        spectra,
        shape_yx=shape_b,
        weight=_correlation_weight(shape_b, bfactor_px2 / pixel_b**2, device),
        max_iterations=max_iterations,
        tolerance_px=tolerance_px / pixel_b,
        max_shift_px=max_shift_px / pixel_b,
        smoothing=smoothing,
        initial_px=None if initial_px is None else initial_px / scale,
    )
    return GlobalMotion(alignment.shifts_px * scale, alignment.sigma_px * scale, alignment.significance)


def estimate_global_motion(frames: torch.Tensor, **options: Any) -> torch.Tensor:
    """The ``(n, 2)`` float32 shifts ``(dy, dx)`` in input pixels of :func:`measure_global_motion` (same options)."""
    return measure_global_motion(frames, **options).shifts_px


class AccumulatedMotion(NamedTuple):
    """Path length of the global trajectory in Å: all of it, the early part and the late part (RELION)."""

    total_angstrom: float
    early_angstrom: float
    late_angstrom: float


def accumulated_motion(
    shifts_px: torch.Tensor,
    pixel_spacing_angstrom: float,
    *,
    frame_doses_e_per_angstrom2: float | Sequence[float],
    pre_exposure_e_per_angstrom2: float = 0.0,
    early_exposure_e_per_angstrom2: float = 4.0,
) -> AccumulatedMotion:
    """Accumulated motion as RELION reports it in ``rlnAccumMotionTotal``, ``...Early`` and ``...Late``.

    RELION (``motioncorr_runner.cpp``) sums the distances between the global shifts of consecutive frames; the
    step into frame ``f`` counts as early when the exposure at the end of frame ``f`` (pre-exposure included) is
    at most ``--dose_motionstats_cutoff`` (4 e⁻/Å² by default), else as late. Tilts taken after 4 e⁻/Å² of
    pre-exposure therefore have no early motion. RELION's label descriptions say Å, but it sums the shifts in
    unbinned movie pixels; here they are converted to Å with ``pixel_spacing_angstrom``.

    Parameters
    ----------
    shifts_px
        ``(n, 2)`` global shifts of the frames, pixels (any reference).
    pixel_spacing_angstrom
        Pixel spacing of those pixels, Å.
    frame_doses_e_per_angstrom2
        Exposure per frame (one number for all, or one per frame), e⁻/Å².
    pre_exposure_e_per_angstrom2
        Exposure before the first frame, e⁻/Å².
    early_exposure_e_per_angstrom2
        Exposure up to which motion counts as early (RELION ``--dose_motionstats_cutoff``), e⁻/Å².

    Returns
    -------
    AccumulatedMotion
        ``(total, early, late)`` in Å; ``early + late == total``.
    """
    n = shifts_px.shape[0]
    doses = torch.as_tensor(frame_doses_e_per_angstrom2, dtype=torch.float64).flatten()
    if doses.numel() not in (1, n):
        raise ValueError(f"{doses.numel()} frame doses given for {n} frames")
    doses = doses.expand(n)
    end_exposure = pre_exposure_e_per_angstrom2 + torch.cumsum(doses, dim=0)
    steps = torch.linalg.vector_norm(torch.diff(shifts_px.double().cpu(), dim=0), dim=-1) * pixel_spacing_angstrom
    early = end_exposure[1:] <= early_exposure_e_per_angstrom2 + 1e-9
    return AccumulatedMotion(float(steps.sum()), float(steps[early].sum()), float(steps[~early].sum()))
