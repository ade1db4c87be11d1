"""EER frame groups: which raw frames each group sums, and how many frames a target dose per group takes."""

from __future__ import annotations

import math

from tomoprep.errors import InputError


def eer_group_ranges(n_eer_frames: int, eer_group_frames: int) -> tuple[range, ...]:
    """Raw EER frames of each group: ``n_eer_frames // eer_group_frames`` groups, the last one extended
    by the remainder (22 frames in groups of 5: 0-4, 5-9, 10-14, 15-21).

    Raises
    ------
    InputError
        If ``eer_group_frames`` is below 1 or above ``n_eer_frames``.
    """
    if not 1 <= eer_group_frames <= n_eer_frames:
        problem = f"eer_group_frames = {eer_group_frames} must be between 1 and the {n_eer_frames} EER frames."
        raise InputError(None, problem, "compute it with eer_frames_per_group().")
    starts = range(0, (n_eer_frames // eer_group_frames) * eer_group_frames, eer_group_frames)
    ends = [*starts[1:], n_eer_frames]
    return tuple(range(start, end) for start, end in zip(starts, ends, strict=True))


def eer_frames_per_group(
    *,
    dose_per_group_e_per_angstrom2: float,
    dose_per_tilt_e_per_angstrom2: float,
    pixel_spacing_angstrom: float,
    n_eer_frames: int,
) -> int:
    """Raw EER frames per group for a target dose per group, by the formula users apply today.

    ``N = dose_per_group / (dose_per_tilt * pixel_spacing**2 / n_eer_frames)``, rounded and clamped to
    ``[1, n_eer_frames]``. The denominator is the dose of one raw frame on one pixel (e⁻/pixel), so the group
    holds ``dose_per_group`` electrons per pixel: exactly the e⁻/Å² target for 1 Å pixels, and proportionally
    fewer frames for larger pixels, where each frame already carries more signal per pixel. Example (3.5 e⁻/Å²
    per tilt, 1.91 Å pixels, 308 frames, target 0.5): ``0.5 / (3.5 * 1.91**2 / 308) = 12.06`` -> 12 frames.

    Parameters
    ----------
    dose_per_group_e_per_angstrom2
        Target dose per group (0.5 is the usual choice).
    dose_per_tilt_e_per_angstrom2
        Dose of the whole movie (one tilt) in e⁻/Å².
    pixel_spacing_angstrom
        Pixel spacing of the movie (the EER sensor pixel, before upsampling), Å.
    n_eer_frames
        Raw frames in the movie (:attr:`MovieHeader.n_frames`).

    Raises
    ------
    InputError
        If a dose or the pixel spacing is not a positive finite number, or ``n_eer_frames`` < 1.
    """
    values = {
        "dose_per_group_e_per_angstrom2": dose_per_group_e_per_angstrom2,
        "dose_per_tilt_e_per_angstrom2": dose_per_tilt_e_per_angstrom2,
        "pixel_spacing_angstrom": pixel_spacing_angstrom,
    }
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise InputError(None, f"{name} = {value} must be a positive number.", f"give {name} > 0.")
    if n_eer_frames < 1:
        raise InputError(None, f"n_eer_frames = {n_eer_frames} must be at least 1.", "check the movie.")
    dose_per_frame_per_pixel = dose_per_tilt_e_per_angstrom2 * pixel_spacing_angstrom**2 / n_eer_frames
    n = round(dose_per_group_e_per_angstrom2 / dose_per_frame_per_pixel)
    return min(max(n, 1), n_eer_frames)
