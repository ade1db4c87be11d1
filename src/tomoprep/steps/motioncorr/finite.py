"""Pixels that are not numbers (``nan``, ``inf``) in a gain reference or a movie, found where they enter.

One such pixel spreads through every Fourier transform it meets, so a single one in a gain reference would
turn every sum of the series into ``nan``. Gain pixels that are not finite are defects of the reference: they
are filled from their neighbours like the camera's defects. A movie frame with a few of them is repaired the
same way; a frame with more than :data:`MAX_REPAIRED_FRACTION` of them holds no image worth repairing, and its
tilt is excluded with the reason. So is the tilt of a blank movie, every frame one value (all 0: the camera
recorded nothing), which would otherwise pass on as a flat image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The largest fraction of a frame's pixels that may be filled from their neighbours; beyond it the frame is
#: not an image with a few bad pixels but a broken frame (a whole frame of ``nan`` is what a failed write
#: leaves).
MAX_REPAIRED_FRACTION = 0.01


def finite_gain(gain: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """The gain with its non-finite pixels set to 0, their ``(y, x)`` bool mask (``None`` when there are
    none) and a note for the log.

    The pixels are set to 0, not left, because the defect filler weights its neighbours: a ``nan`` times a
    weight of 0 is still ``nan``.
    """
    bad = ~np.isfinite(gain)
    count = int(bad.sum())
    if count == 0:
        return gain, None, None
    y, x = (int(v[0]) for v in np.nonzero(bad))
    note = (
        f"WARNING: gain reference {name}: {count} pixel{'s' if count > 1 else ''} not finite (nan or inf, first at "
        f"x={x}, y={y}): treated as defects, filled from their neighbours in every frame"
    )
    return np.where(bad, np.float32(0), gain).astype(gain.dtype, copy=False), bad, note


def _constant(group: np.ndarray) -> bool:
    """Whether every pixel of ``group`` holds the same finite value."""
    low, high = np.min(group), np.max(group)
    return bool(np.isfinite(low) and low == high)


@dataclass(frozen=True)
class FrameRepair:
    """What :func:`repair_frames` found: the pixels repaired (``None`` when none), notes, or why the tilt must
    be excluded (``""`` when it need not be)."""

    mask: np.ndarray | None
    notes: tuple[str, ...] = ()
    exclusion_reason: str = ""


def repair_frames(counts: list[np.ndarray], movie_name: str, group_frames: int) -> FrameRepair:
    """Find the non-finite pixels of a movie's groups of frames and set them to 0 in place, to be filled as
    defects; or say why the tilt is excluded: a group has more than :data:`MAX_REPAIRED_FRACTION` of them, or
    the movie is blank.

    Parameters
    ----------
    counts
        The movie's groups, ``(y, x)`` each, in order; integer groups are always finite and are skipped.
    movie_name
        For the messages.
    group_frames
        Frames per group (1: each group is one frame of the file).
    """
    if counts and all(_constant(group) for group in counts):  # stops at the first group with an image
        value = float(np.asarray(counts[0]).flat[0])
        return FrameRepair(
            None,
            exclusion_reason=f"motioncorr: blank movie: every pixel of every frame of {movie_name} is {value:g} "
            "(no image was recorded)",
        )
    mask: np.ndarray | None = None
    repaired = []
    for k, group in enumerate(counts):
        if group.dtype.kind != "f" or np.isfinite(group).all():
            continue
        bad = ~np.isfinite(group)
        count = int(bad.sum())
        where = f"frame {k}" if group_frames == 1 else f"group {k} (of {group_frames} frames)"
        if count > MAX_REPAIRED_FRACTION * group.size:
            return FrameRepair(
                None,
                exclusion_reason=f"motioncorr: non-finite values in {where} of {movie_name} ({count} of "
                f"{group.size} pixels nan or inf)",
            )
        group[bad] = 0
        mask = bad if mask is None else mask | bad
        repaired.append(f"{count} in {where}")
    if mask is None:
        return FrameRepair(None)
    note = (
        f"WARNING: {movie_name}: pixels not finite (nan or inf; {', '.join(repaired)}, counted from 0) "
        "treated as defects, filled from their neighbours"
    )
    return FrameRepair(mask, (note,))
