"""Motion correction of one tilt movie: read it in groups, correct, estimate its motion, sum, and write the sums
and RELION's motion file. The numerics are in :mod:`tomoprep.algorithms.movie_correction` and
:mod:`tomoprep.algorithms.motion`; this module reads the files and the step's parameters."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tomoprep.algorithms.motion import (
    CREDIBLE_SIGNIFICANCE,
    DoseWeighting,
    GlobalMotion,
    accumulated_motion,
    align_and_sum,
    local_shifts_at,
)
from tomoprep.algorithms.movie_correction import (
    DetectorDefects,
    FrameCorrector,
    MotionEstimate,
    compact_counts,
    estimate_movie_motion,
)
from tomoprep.errors import ImageFileError
from tomoprep.io.eer_groups import eer_frames_per_group, eer_group_ranges
from tomoprep.io.movies import (
    MovieHeader,
    iter_movie_counts,
    read_movie_header,
)
from tomoprep.io.relion_motion import MovieMotion, write_motion_star
from tomoprep.model import TiltImage, TiltMotion, TiltSeries
from tomoprep.steps.import_.dose import require_dose
from tomoprep.steps.motioncorr.output import SUFFIXES, SumWriter
from tomoprep.steps.motioncorr.params import (
    DOSE_WEIGHTING,
    DOSE_WEIGHTING_ALTERNATIVE,
    EER_GROUPING,
    EER_GROUPING_ALTERNATIVE,
    MotionCorrParams,
)


@dataclass(frozen=True)
class MovieGroups:
    """How a movie is read as groups of frames: group ``i`` holds ``frame_counts[i]`` raw frames."""

    header: MovieHeader
    frame_counts: tuple[int, ...]
    eer_group_frames: int | None
    upsampling: int
    group_frames: int

    @property
    def n_groups(self) -> int:
        """Number of groups (frames given to the alignment)."""
        return len(self.frame_counts)

    def read_all(self) -> Iterator[np.ndarray]:
        """Every group, in order, as ``(y, x)`` counts (integers for EER), from one opening of the movie."""
        upsampling: Literal[1, 2] = 2 if self.upsampling == 2 else 1
        return iter_movie_counts(
            self.header.path,
            eer_group_frames=self.eer_group_frames,
            eer_upsampling=upsampling,
            group_frames=self.group_frames,
        )


class SingleFrameMovieError(ImageFileError):
    """A movie of one frame: a single image, in which no motion can be measured."""


def movie_groups(tilt: TiltImage, ts: TiltSeries, params: MotionCorrParams) -> MovieGroups:
    """Read the movie header, check it against the import record, and decide the grouping."""
    if tilt.acquisition.movie_path is None:
        raise ImageFileError(
            None,
            f"tilt {tilt.acquisition.nominal_tilt_angle_deg:.1f}° of {ts.name} has no movie.",
            "exclude it, or import the movies.",
        )
    header = read_movie_header(tilt.acquisition.movie_path)
    if tilt.acquisition.frame_count is not None and header.n_frames != tilt.acquisition.frame_count:
        raise ImageFileError(
            tilt.acquisition.movie_path,
            f"has {header.n_frames} frames, but the import recorded {tilt.acquisition.frame_count}.",
            "re-import the session if the movie was replaced.",
        )
    if header.n_frames < 2:
        raise SingleFrameMovieError(
            tilt.acquisition.movie_path,
            f"has {header.n_frames} frame: no motion can be measured in a single image, so it is no movie to correct.",
            "give the tilt's movie of several frames (the camera's frames, not their sum), or import single images "
            "as a tilt stack (tomoprep import --stack).",
        )
    if header.format == "eer":
        n = params.eer_frames_per_group or _eer_frames_by_dose(tilt, ts, params, header.n_frames)
        eer_counts = tuple(len(r) for r in eer_group_ranges(header.n_frames, n))
        return MovieGroups(header, eer_counts, n, params.eer_upsampling, 1)
    if header.n_frames < 2 * params.group_frames:
        raise ImageFileError(
            tilt.acquisition.movie_path,
            f"has only {header.n_frames} frames; motion correction needs at least two groups.",
            "lower --group-frames.",
        )
    # The same grouping as the reader's (remainder frames join the last group).
    counts = tuple(len(r) for r in eer_group_ranges(header.n_frames, params.group_frames))
    return MovieGroups(header, counts, None, 1, params.group_frames)


def _eer_frames_by_dose(tilt: TiltImage, ts: TiltSeries, params: MotionCorrParams, n_eer_frames: int) -> int:
    """EER frames per group for the target dose per group; needs the tilt's dose."""
    if tilt.acquisition.dose_e_per_angstrom2 is None:
        require_dose(ts, needed_for=EER_GROUPING, alternative=EER_GROUPING_ALTERNATIVE)
    return eer_frames_per_group(
        dose_per_group_e_per_angstrom2=params.eer_dose_per_group_e_per_angstrom2,
        dose_per_tilt_e_per_angstrom2=float(tilt.acquisition.dose_e_per_angstrom2),  # type: ignore[arg-type]
        pixel_spacing_angstrom=ts.original_pixel_spacing_angstrom,
        n_eer_frames=n_eer_frames,
    )


def load_groups(groups: MovieGroups) -> list[np.ndarray]:
    """Every group of the movie, decoded once and kept in the smallest exact dtype.

    Defects must be known before motion is estimated (a static hot pixel pulls every shift to zero), and they
    are found in the sum of all frames: keeping the groups as counts (a 4K EER group is 16 MB) avoids decoding
    the movie twice.
    """
    return [compact_counts(group) for group in groups.read_all()]


class SeriesDefects:
    """The detector's defects over a tilt series (:class:`~tomoprep.algorithms.movie_correction.DetectorDefects`),
    found at the step's threshold; no mask when defect correction is off."""

    def __init__(self, params: MotionCorrParams, device: torch.device, *, max_movies: int = 16) -> None:
        self.finder = (
            DetectorDefects(device, threshold_sigma=params.defect_threshold_sigma, max_movies=max_movies)
            if params.correct_defects
            else None
        )

    def mask_for(self, shape: tuple[int, ...], total: Callable[[], np.ndarray]) -> torch.Tensor | None:
        """The defect mask for a movie of frames of ``shape`` (:meth:`DetectorDefects.mask_for`); ``None`` when
        defect correction is off."""
        return None if self.finder is None else self.finder.mask_for(shape, total)


def estimate_motion(
    correct: FrameCorrector, counts: list[np.ndarray], pixel_spacing_angstrom: float, params: MotionCorrParams
) -> MotionEstimate:
    """The movie's motion (:func:`~tomoprep.algorithms.movie_correction.estimate_movie_motion`) with the step's
    parameters."""
    return estimate_movie_motion(
        correct,
        counts,
        pixel_spacing_angstrom=pixel_spacing_angstrom,
        bfactor_angstrom2=params.bfactor_angstrom2,
        max_shift_angstrom=params.max_shift_angstrom,
        alignment_size_px=params.alignment_size_px,
        refinement_size_px=params.refinement_size_px,
        local_patches_yx=(params.patches_y, params.patches_x) if params.local_motion else None,
    )


def motion_notes(motion: GlobalMotion) -> tuple[str, ...]:
    """What the log should say about a movie's global motion: the groups whose correlation peak was not
    credible (their shifts interpolated from the others'), with the peaks' significance, or nothing."""
    doubtful = motion.interpolated.nonzero()[:, 0].tolist()
    if not doubtful:
        return ()
    n = len(motion.interpolated)
    heights = ", ".join(
        f"{float(motion.significance[i]):.1f}" + ("" if motion.significance[i] < CREDIBLE_SIGNIFICANCE else " but flat")
        for i in doubtful
    )
    reason = f"peak height over the noise of the correlation {heights}; credible from {CREDIBLE_SIGNIFICANCE:g}"
    if len(doubtful) == n:
        return (f"no group has a credible correlation peak ({reason}): the movie is summed without motion correction",)
    groups = ", ".join(str(i + 1) for i in doubtful)
    return (f"group{'s' if len(doubtful) > 1 else ''} {groups} of {n}: no credible correlation peak ({reason}); "
            "shifts interpolated from the other groups' motion",)  # fmt: skip


def correct_movie(
    tilt: TiltImage,
    ts: TiltSeries,
    groups: MovieGroups,
    counts: list[np.ndarray],
    gain: torch.Tensor | None,
    defects: torch.Tensor | None,
    params: MotionCorrParams,
    output_dir: Path,
    device: torch.device,
    writer: SumWriter,
) -> tuple[TiltImage, np.ndarray, tuple[str, ...]]:
    """Motion of one movie (its groups of counts given), its sums (handed to ``writer``) and records; returns the
    updated tilt, the trajectory of its content (x, y Å) and notes for the log."""
    frame_spacing = ts.original_pixel_spacing_angstrom / groups.upsampling
    correct = FrameCorrector((counts[0].shape[0], counts[0].shape[1]), gain, defects, device)
    estimate = estimate_motion(correct, counts, frame_spacing, params)
    dose, pre_exposure = tilt.acquisition.dose_e_per_angstrom2, tilt.acquisition.pre_exposure_e_per_angstrom2
    if dose is None or pre_exposure is None:
        if params.dose_weighting:
            require_dose(ts, needed_for=DOSE_WEIGHTING, alternative=DOSE_WEIGHTING_ALTERNATIVE)
        # Unknown dose (the import found none): nan where RELION's files want one.
        dose, pre_exposure = math.nan, math.nan
    doses = [dose * n / sum(groups.frame_counts) for n in groups.frame_counts]
    weighting = (
        DoseWeighting(frame_spacing, doses, pre_exposure, ts.optics.voltage_kv) if params.dose_weighting else None
    )
    sums = align_and_sum(
        (correct(group) for group in counts),  # each frame is transformed before the next fills the buffer
        estimate.shifts_px,
        local_model=estimate.local_model,
        dose_weighting=weighting,
        split_odd_even=params.odd_even,
        bin_factor=params.output_binning,
        device=device,
    )
    stem = groups.header.path.name.rsplit(".", 1)[0]
    out_spacing = frame_spacing * params.output_binning
    images = {
        name: getattr(sums, name).cpu().numpy().astype(np.float32, copy=False)
        for name in SUFFIXES
        if getattr(sums, name) is not None
    }
    paths = writer.write(tilt.acquisition.acquisition_index, images, output_dir, stem, out_spacing)
    motion_xy = estimate.shifts_px.flip(-1).cpu().numpy().astype(float)
    motion = accumulated_motion(
        estimate.shifts_px,
        frame_spacing,
        frame_doses_e_per_angstrom2=0.0 if math.isnan(dose) else doses,
        pre_exposure_e_per_angstrom2=0.0 if math.isnan(pre_exposure) else pre_exposure,
    )
    if math.isnan(dose):  # early and late are cut at a dose: unknown without one
        motion = motion._replace(early_angstrom=math.nan, late_angstrom=math.nan)
    star = output_dir / f"{stem}.star"
    _write_motion_star(star, tilt, ts, groups, params, estimate, motion_xy, doses, pre_exposure, defects)
    updated = replace(
        tilt,
        motion=TiltMotion(
            micrograph_path=paths["sum"],
            micrograph_odd_path=paths.get("odd"),
            micrograph_even_path=paths.get("even"),
            micrograph_dose_weighted_path=paths.get("dose_weighted"),
            motion_metadata_path=star,
            accumulated_motion_angstrom=(motion.total_angstrom, motion.early_angstrom, motion.late_angstrom),
        ),
    )
    notes = motion_notes(estimate.global_motion)
    return updated, motion_xy * frame_spacing, tuple(f"{groups.header.path.name}: {note}" for note in notes)


def _local_shift_table(estimate: MotionEstimate) -> np.ndarray | None:
    """Rows (frame from 1, x, y, shift x, shift y) at the patch centres of the local model, in RELION's sign."""
    model = estimate.local_model
    if model is None:
        return None
    centres = model.patch_centres_yx_px
    rows = []
    for frame in range(model.n_frames):
        total = local_shifts_at(model, centres, frame).cpu() + estimate.shifts_px[frame].cpu()
        for (y, x), (dy, dx) in zip(centres.cpu().tolist(), total.tolist(), strict=True):
            rows.append((frame + 1, x, y, -dx, -dy))  # RELION's sign: the shift that aligns
    return np.array(rows, dtype=float)


def _write_motion_star(
    star: Path,
    tilt: TiltImage,
    ts: TiltSeries,
    groups: MovieGroups,
    params: MotionCorrParams,
    estimate: MotionEstimate,
    motion_xy: np.ndarray,
    doses: list[float],
    pre_exposure: float,
    defects: torch.Tensor | None,
) -> None:
    """The movie's motion STAR (RELION's per-movie file): its trajectory ``motion_xy`` (x, y px of the frames),
    doses, defects and local shifts."""
    hot = None if defects is None else torch.nonzero(defects).flip(-1).cpu().numpy()
    write_motion_star(
        star,
        MovieMotion(
            movie_name=str(groups.header.path),
            image_size_xyz=(
                groups.header.shape_yx[1] * groups.upsampling,
                groups.header.shape_yx[0] * groups.upsampling,
                groups.n_groups,
            ),
            shifts_xy_px=-motion_xy,
            original_pixel_spacing_angstrom=ts.original_pixel_spacing_angstrom,
            binning=params.output_binning / groups.upsampling,
            dose_per_frame_e_per_angstrom2=doses[0],
            pre_exposure_e_per_angstrom2=pre_exposure,
            voltage_kv=ts.optics.voltage_kv,
            hot_pixels_xy=hot,
            gain_name=None if tilt.acquisition.gain is None else str(tilt.acquisition.gain.path),
            local_shifts=_local_shift_table(estimate),
        ),
    )
