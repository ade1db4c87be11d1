"""The numerics of correcting one tilt movie: compact counts, gain and defect correction of its frames, the
detector's defects found over a series, and the movie's global and local motion.

Pure array work (numpy, torch): reading movies and the step's parameters stay in
:mod:`tomoprep.steps.motioncorr.movie`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from tomoprep.algorithms.defects import DefectFiller, detect_defects
from tomoprep.algorithms.fourier import fourier_bin
from tomoprep.algorithms.motion import (
    GlobalMotion,
    LocalMotionModel,
    estimate_local_motion,
    measure_global_motion,
)


def binned_to(image: torch.Tensor, size_px: int) -> tuple[torch.Tensor, float]:
    """Fourier-bin to about ``size_px``; returns the image and the factor.

    Fourier cropping of the whole frame, not pixel blocks first: a 2x2 block sum folds noise from above its
    Nyquist frequency into the band the alignment uses, and left trajectories 0.007-0.009 px RMS worse on 4K
    movies (0.073 against 0.066 px on one EER movie), for 0.2 s less per movie.
    """
    factor = max(1.0, max(image.shape[-2:]) / size_px)
    return (fourier_bin(image, factor) if factor > 1 else image), factor


def compact_counts(counts: np.ndarray) -> np.ndarray:
    """The smallest exact dtype for a group of counts (uint8 for EER groups), float32 for non-count data."""
    if counts.dtype == np.uint8:
        return counts
    if counts.dtype.kind == "u":
        top = counts.max()
        return counts.astype(np.uint8) if top < 256 else counts.astype(np.uint16) if top < 65536 else counts
    if np.array_equal(counts, np.round(counts)) and counts.min() >= 0:
        top = counts.max()
        if top < 256:
            return counts.astype(np.uint8)
        if top < 65536:
            return counts.astype(np.uint16)
    return counts.astype(np.float32)


def counts_sum(counts: list[np.ndarray]) -> np.ndarray:
    """The ``(y, x)`` float32 sum of a movie's groups of raw counts.

    uint8 groups (EER) are summed as integers on all cores (ten 4K groups: 25 ms, against 70 ms adding them
    into float32 with numpy); other types (torch does not add uint16) into float32.
    """
    if all(group.dtype == np.uint8 for group in counts) and 255 * len(counts) < 2**31:
        total = torch.zeros(counts[0].shape, dtype=torch.int16 if 255 * len(counts) < 2**15 else torch.int32)
        for group in counts:
            total.add_(torch.from_numpy(np.ascontiguousarray(group)))
        return total.to(torch.float32).numpy()
    summed = np.zeros(counts[0].shape, dtype=np.float32)
    for group in counts:
        summed += group
    return summed


#: Expected counts per pixel at which a sum of movies finds dead pixels well enough: a pixel counting under
#: about 40% of its neighbours is significant at 6 sigma.
ENOUGH_COUNTS_FOR_DEFECTS = 64.0
#: The detection runs again once the summed counts have grown by this factor since it last ran (0.3 s per 4K
#: detection). Not a whole number, so that a series of equal doses does not sit on the boundary.
DEFECT_RETEST_GROWTH = 3.5


class DetectorDefects:
    """Hot and dead pixels of a detector, found in the summed raw counts of the first movies of a tilt series.

    Defects belong to the camera, not the movie. Hot pixels show in one movie, but dead pixels need tens of
    expected counts, more than one tilt collects: the counts of successive movies are summed, and the
    detection (:func:`tomoprep.algorithms.defects.detect_defects` at ``threshold_sigma``) runs again each time
    the summed counts have grown :data:`DEFECT_RETEST_GROWTH`-fold since the last one, until they reach
    :data:`ENOUGH_COUNTS_FOR_DEFECTS` per pixel or ``max_movies`` movies, where it runs a last time. A series at
    5 counts per pixel per tilt is tested after movies 1, 4 and 13; every other movie reuses the latest mask.
    """

    def __init__(self, device: torch.device, *, threshold_sigma: float, max_movies: int = 16) -> None:
        self.device, self.threshold_sigma, self.max_movies = device, threshold_sigma, max_movies
        self.totals: dict[tuple[int, ...], np.ndarray] = {}
        self.seen: dict[tuple[int, ...], int] = {}
        self.tested_at: dict[tuple[int, ...], float] = {}
        self.masks: dict[tuple[int, ...], torch.Tensor] = {}

    def mask_for(self, shape: tuple[int, ...], total: Callable[[], np.ndarray]) -> torch.Tensor:
        """The ``(y, x)`` bool defect mask to use for a movie of frames of ``shape`` whose raw counts sum to
        ``total()`` (called only while the counts are still summed)."""
        if shape in self.totals:
            self.totals[shape] += total()
            self.seen[shape] += 1
        elif shape not in self.masks:
            self.totals[shape] = np.array(total(), dtype=np.float32)
            self.seen[shape] = 1
        else:
            return self.masks[shape]
        summed = self.totals[shape]
        level = float(summed.mean())
        final = level >= ENOUGH_COUNTS_FOR_DEFECTS or self.seen[shape] >= self.max_movies
        if final or shape not in self.masks or level >= DEFECT_RETEST_GROWTH * self.tested_at[shape] > 0:
            counts = torch.from_numpy(summed).to(self.device)
            self.masks[shape] = detect_defects(counts, threshold_sigma=self.threshold_sigma).combined
            self.tested_at[shape] = level
        if final:
            del self.totals[shape]  # the mask is final for this frame shape
        return self.masks[shape]


class FrameCorrector:
    """Gain and defect correction of a movie's groups: one float32 tensor on ``device`` per group of counts.

    ``gain`` is already on the frames' grid and device (a half-size gain repeated on 2x2 blocks:
    :func:`tomoprep.io.gain.gain_for_frames`); the defects' neighbours are found once per movie. Each group then
    costs one conversion, one multiplication and a gather over the defects, in place.
    """

    def __init__(
        self, shape_yx: tuple[int, int], gain: torch.Tensor | None, defects: torch.Tensor | None, device: torch.device
    ) -> None:
        if gain is not None and tuple(gain.shape) != shape_yx:
            raise ValueError(f"a gain of shape {tuple(gain.shape)} does not fit {shape_yx} frames")
        self.device = device
        self.gain = gain
        self.filler = DefectFiller(defects) if defects is not None and bool(defects.any()) else None
        self.buffer: torch.Tensor | None = None

    def __call__(self, counts: np.ndarray) -> torch.Tensor:
        """The corrected ``(y, x)`` float32 group, in a buffer that the next call overwrites."""
        # One buffer for every group: filling it is 5x faster on CPU than a fresh allocation, and the stored
        # counts stay untouched for a second pass.
        if self.buffer is None or tuple(self.buffer.shape) != counts.shape:
            self.buffer = torch.empty(counts.shape, dtype=torch.float32, device=self.device)
        frame = self.buffer
        frame.copy_(torch.from_numpy(np.ascontiguousarray(counts)))
        if self.gain is not None:
            frame.mul_(self.gain)
        return self.filler.fill_(frame) if self.filler is not None else frame


@dataclass(frozen=True)
class MotionEstimate:
    """Shifts of each group in rendered-frame pixels (dy, dx), an optional local model, and the global motion
    measured on the binned groups (its shifts in binned pixels)."""

    shifts_px: torch.Tensor
    local_model: LocalMotionModel | None
    global_motion: GlobalMotion


def _scaled_model(model: LocalMotionModel, factor: float, shape_yx: tuple[int, int]) -> LocalMotionModel:
    # The model is a polynomial of normalised position, so scaling its coefficients and centres moves it to
    # the unbinned grid.
    return replace(
        model,
        coefficients_px=model.coefficients_px * factor,
        shape_yx=shape_yx,
        patch_centres_yx_px=model.patch_centres_yx_px * factor,
        patch_shifts_px=model.patch_shifts_px * factor,
    )


def estimate_movie_motion(
    correct: FrameCorrector,
    counts: list[np.ndarray],
    *,
    pixel_spacing_angstrom: float,
    bfactor_angstrom2: float,
    max_shift_angstrom: float,
    alignment_size_px: int,
    refinement_size_px: int,
    local_patches_yx: tuple[int, int] | None,
) -> MotionEstimate:
    """Global (and local) motion of a movie from binned copies of its corrected groups.

    Parameters
    ----------
    correct
        Turns each group of ``counts`` into a corrected ``(y, x)`` float32 frame on its device.
    counts
        The movie's groups of raw counts, ``(y, x)`` each.
    pixel_spacing_angstrom
        Of the frames, in Å.
    bfactor_angstrom2, max_shift_angstrom
        B-factor of the correlation weighting (Å²) and the largest shift searched (Å).
    alignment_size_px, refinement_size_px
        Sizes the groups are binned to for the coarse rounds and the last one (0: no refinement round). The
        groups are binned once, to the larger of the two; the estimate bins them further for its coarse rounds.
    local_patches_yx
        Patches along y and x of the local model, or ``None`` for global motion alone (a movie of fewer than
        4 groups gets none).
    """
    device = correct.device
    binned, factor = [], 1.0
    for group in counts:
        frame = correct(group)
        small, factor = binned_to(frame, max(alignment_size_px, refinement_size_px))
        binned.append(small.clone() if small is frame else small)  # the corrector reuses its buffer
    stack = torch.stack(binned)
    bfactor_px2 = bfactor_angstrom2 / (pixel_spacing_angstrom * factor) ** 2
    motion = measure_global_motion(
        stack,
        bfactor_px2=bfactor_px2,
        max_shift_px=max_shift_angstrom / (pixel_spacing_angstrom * factor),
        alignment_size_px=alignment_size_px,
        refinement_size_px=refinement_size_px or None,
        device=device,
    )
    shifts = motion.shifts_px
    model = None
    if local_patches_yx is not None and len(counts) >= 4:
        local = estimate_local_motion(
            stack,
            shifts,
            patches=local_patches_yx,
            bfactor_px2=bfactor_px2,
            alignment_size_px=alignment_size_px,
            device=device,
        )
        model = _scaled_model(local, factor, (counts[0].shape[0], counts[0].shape[1]))
    return MotionEstimate(shifts * factor, model, motion)
