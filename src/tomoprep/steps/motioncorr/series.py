"""The motion-correction step: every tilt movie of a series becomes an aligned, gain-corrected image."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tomoprep.algorithms.movie_correction import counts_sum
from tomoprep.errors import ImageFileError, InputError
from tomoprep.io.gain import gain_for_frames, orient_gain, read_gain
from tomoprep.model import GainReference, TiltExclusion, TiltSeries
from tomoprep.steps.base import UnitOutput
from tomoprep.steps.device import device_for
from tomoprep.steps.motioncorr.finite import finite_gain, repair_frames
from tomoprep.steps.motioncorr.gain_check import check_gain_orientation
from tomoprep.steps.motioncorr.movie import (
    SeriesDefects,
    SingleFrameMovieError,
    correct_movie,
    load_groups,
    movie_groups,
)
from tomoprep.steps.motioncorr.output import SumWriter
from tomoprep.steps.motioncorr.params import MotionCorrParams
from tomoprep.steps.motioncorr.plots import write_motion_plot


class _Gains:
    """Gain references of one tilt series, read once each, checked once each against the first movie, and
    prepared once per frame shape as the tensor that multiplies the frames."""

    def __init__(self, params: MotionCorrParams, device: torch.device) -> None:
        self.params, self.device = params, device
        self.cache: dict[GainReference, np.ndarray] = {}
        self.tensors: dict[tuple[GainReference, tuple[int, ...]], torch.Tensor] = {}
        self.bad: dict[GainReference, np.ndarray] = {}
        self.notes: list[str] = []

    def get(
        self, reference: GainReference | None, shape: tuple[int, ...], counts: Callable[[], np.ndarray]
    ) -> torch.Tensor | None:
        """The oriented gain of ``reference`` on a grid of frames of ``shape``; its orientation is checked the
        first time against ``counts()``, a movie's summed counts."""
        if reference is None:
            return None
        if reference not in self.cache:
            stored, bad, note = finite_gain(read_gain(reference.path), reference.path.name)
            self.cache[reference] = orient_gain(stored, rotation_deg=reference.rotation_deg, flip=reference.flip)
            _check_fits(reference, self.cache[reference], shape)  # before the orientation check, which needs it
            if bad is not None:
                self.bad[reference] = orient_gain(bad, rotation_deg=reference.rotation_deg, flip=reference.flip)
                self.notes.append(str(note))
            if self.params.check_gain_orientation:
                self._check(reference, stored, counts())
        key = (reference, shape)
        if key not in self.tensors:
            self.tensors[key] = torch.tensor(gain_for_frames(self.cache[reference], shape), device=self.device)
        return self.tensors[key]

    def defects(self, reference: GainReference | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """The ``(y, x)`` bool mask of the gain's non-finite pixels on the frames' grid, ``None`` when none."""
        if reference not in self.bad:
            return None
        return gain_for_frames(self.bad[reference].astype(np.float32), shape) > 0

    def _check(self, reference: GainReference, stored: np.ndarray, counts: np.ndarray) -> None:
        if counts.shape != stored.shape and counts.shape[0] == 2 * stored.shape[0]:
            counts = counts.reshape(stored.shape[0], 2, stored.shape[1], 2).sum(axis=(1, 3))
        check = check_gain_orientation(np.asarray(counts), stored, given=(reference.rotation_deg, reference.flip))
        if check.given_is_wrong:
            rotation, flip = check.best
            self.notes.append(
                f"WARNING: gain reference {reference.path.name} does not match the movies as oriented "
                f"(rotation {reference.rotation_deg}°, flip {reference.flip}: correlation "
                f"{check.scores.get(check.given, 0.0):.3f}); rotation {rotation}°, flip {flip} fits "
                f"({check.scores[check.best]:.3f}). Re-import with --gain-rotation-deg {rotation} --gain-flip {flip}."
            )


def motioncorr_series(ts: TiltSeries, params: MotionCorrParams, output_dir: Path) -> UnitOutput:
    """Motion-correct every tilt of ``ts`` that has a movie and is not excluded."""
    if all(t.acquisition.movie_path is None for t in ts.tilts):
        if all(t.acquisition.stack_path is not None for t in ts.tilts):
            return UnitOutput(ts, ("imported from a tilt stack: no movies, passed through unchanged",))
        raise InputError(None, f"tilt series {ts.name} has no movies.", "import its movies (tomoprep import --mdoc).")
    device = device_for(params.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gains, defects, tilts, trajectories = _Gains(params, device), SeriesDefects(params, device), [], {}
    notes: list[str] = []
    single: list[SingleFrameMovieError] = []
    first: tuple[Path, tuple[int, ...]] | None = None  # the first movie read, and its frames' shape
    spacing = ts.original_pixel_spacing_angstrom
    with SumWriter() as writer:
        for tilt in ts.tilts:
            movie, angle = tilt.acquisition.movie_path, tilt.acquisition.nominal_tilt_angle_deg
            if tilt.excluded or movie is None:
                tilts.append(tilt)
                continue
            try:
                groups = movie_groups(tilt, ts, params)
            except SingleFrameMovieError as exc:
                reason = f"motioncorr: {movie.name} {exc.problem}"
                tilts.append(replace(tilt, exclusion=TiltExclusion(reason)))
                notes.append(f"WARNING: tilt {angle:.1f}° excluded: {reason} Fix: {exc.fix}")
                single.append(exc)
                continue
            counts = load_groups(groups)
            repair = repair_frames(counts, movie.name, groups.group_frames)
            if repair.exclusion_reason:
                tilts.append(replace(tilt, exclusion=TiltExclusion(repair.exclusion_reason)))
                notes.append(f"WARNING: tilt {angle:.1f}° excluded: {repair.exclusion_reason}")
                continue
            notes.extend(repair.notes)
            first = first or (movie, counts[0].shape)
            _check_frame_shape(movie, counts[0].shape, first)
            # The summed counts are needed only for the first movies (gain check, defects): summed on demand.
            total = functools.cache(functools.partial(counts_sum, counts))
            gain_file = tilt.acquisition.gain
            gain = gains.get(gain_file, counts[0].shape, total)
            mask = _union(
                device, defects.mask_for(counts[0].shape, total), gains.defects(gain_file, counts[0].shape), repair.mask
            )
            updated, trajectory, movie_notes = correct_movie(
                tilt, ts, groups, counts, gain, mask, params, output_dir, device, writer
            )
            notes.extend(movie_notes)
            tilts.append(updated)
            trajectories[tilt.acquisition.acquisition_index] = trajectory
            spacing = ts.original_pixel_spacing_angstrom / groups.upsampling * params.output_binning
            if groups.eer_group_frames is not None:
                notes.append(f"{movie.name}: {groups.n_groups} groups of {groups.eer_group_frames} EER frames")
    if single and len(single) == sum(not t.excluded and t.acquisition.movie_path is not None for t in ts.tilts):
        raise InputError(single[0].path, f"every movie of {ts.name} ({len(single)}) {single[0].problem}",
                         single[0].fix)  # fmt: skip
    result = replace(ts, tilts=tuple(tilts), tilt_series_pixel_spacing_angstrom=spacing)
    write_motion_plot(result, trajectories, writer.thumbnails, output_dir / f"{ts.name}_motion.png")
    return UnitOutput(result, tuple(gains.notes + _summary_notes(result) + notes))


def _check_frame_shape(movie: Path, shape: tuple[int, ...], first: tuple[Path, tuple[int, ...]]) -> None:
    """Refuse a movie whose frames differ in size from the series' first movie (import refuses them; a movie
    replaced since would otherwise be blamed on the gain reference)."""
    if shape != first[1]:
        raise ImageFileError(
            movie,
            f"frames of {shape[0]} x {shape[1]} pixels (y, x), but the series' movie {first[0].name} has "
            f"{first[1][0]} x {first[1][1]}: a movie of another camera, binning or mode.",
            "put this series' movie in its place (re-import the session if movies were replaced).",
        )


def _check_fits(reference: GainReference, oriented: np.ndarray, frame_yx: tuple[int, ...]) -> None:
    """Raise :class:`InputError` naming the gain file, its shape and the frames' when they do not fit."""
    try:
        gain_for_frames(oriented, frame_yx)
    except InputError as error:
        raise InputError(
            reference.path,
            f"this gain reference (shape {oriented.shape} y, x, as rotated {reference.rotation_deg}° and flipped "
            f"{reference.flip}) does not fit the movies' frames {tuple(frame_yx)}.",
            "give the gain of this camera and mode (tomoprep import --gain), or its orientation "
            f"(--gain-rotation-deg, --gain-flip); {error.fix}",
        ) from None


def _union(device: torch.device, series: torch.Tensor | None, *movie: np.ndarray | None) -> torch.Tensor | None:
    """The defects of one movie: the series' mask with this movie's non-finite gain or frame pixels added."""
    extra = [m for m in movie if m is not None]
    if not extra:
        return series
    mask = torch.from_numpy(np.logical_or.reduce(extra)).to(device)
    return mask if series is None else series | mask


def _summary_notes(ts: TiltSeries) -> list[str]:
    motions = [
        t.motion.accumulated_motion_angstrom[0]
        for t in ts.tilts
        if t.motion is not None and t.motion.accumulated_motion_angstrom is not None
    ]
    if not motions:
        return []
    return [f"{len(motions)} movies aligned; total motion median {np.median(motions):.1f} Å, max {max(motions):.1f} Å"]
