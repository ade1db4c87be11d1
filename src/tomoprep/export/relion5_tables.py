"""The rows of a RELION 5 tomogram set: one global row per tilt series, one per-series row per kept tilt.

Values keep RELION 5's conventions (``reference/relion5-format.md`` §9.2-9.4), which are tomoprep's own for every
quantity but two: ``rlnTomoNominalDefocus`` is in µm and negative for underfocus, and ``rlnCtfScalefactor`` is
``cos(rlnTomoYTilt)``, as RELION's reconstruction initialises it. Rows are by nominal tilt angle (ties by
acquisition), as RELION's own jobs after the import order them; excluded tilts have no row.

Where a stage has not run, the row takes what RELION would need from the nominal values and the caller is told
(:class:`SeriesRows.notes`): without an alignment the nominal tilt, the nominal axis and no shift; without a
CTF the nominal defocus, without astigmatism. A tilt whose pre-exposure or defocus is unknown cannot be written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tomoprep.errors import InputError
from tomoprep.model import TiltImage, TiltSeries

MICROMETRE_IN_ANGSTROM = 1e4
#: ``place(path, folder, what) -> path relative to the export folder``.
Placer = Callable[..., str]


@dataclass(frozen=True)
class SeriesRows:
    """The per-tilt rows of one series (label -> value, in row order) and what was filled in for RELION."""

    rows: list[dict[str, object]]
    notes: tuple[str, ...]


def kept_tilts(ts: TiltSeries) -> list[TiltImage]:
    """The included tilts in the order of the exported rows and stacks: by nominal tilt angle, then acquisition."""
    return sorted(
        ts.included_tilts, key=lambda t: (t.acquisition.nominal_tilt_angle_deg, t.acquisition.acquisition_index)
    )


def _tilt_image(tilt: TiltImage, place: Placer, name: str) -> str:
    acquisition = tilt.acquisition
    if acquisition.stack_path is not None:
        # RELION reads a stack section as <n>@<file>.mrcs; the link carries that extension whatever the stack's.
        stack = place(acquisition.stack_path, f"{name}/images", what="tilt stack", rename=f"{name}.mrcs")
        return f"{acquisition.section_index + 1}@{stack}"
    if tilt.motion is None:
        raise InputError(
            None,
            f"tilt {acquisition.nominal_tilt_angle_deg:+.1f}° of {name!r} has no tilt image.",
            "export a run that holds tilt images (after motioncorr, or an import of stacks).",
        )
    return place(tilt.motion.micrograph_path, f"{name}/images", what="tilt image")


def _pose(tilt: TiltImage, axis_deg: float) -> tuple[float, float, float, float, float]:
    pose = tilt.alignment
    if pose is None:
        return 0.0, tilt.acquisition.nominal_tilt_angle_deg, axis_deg, 0.0, 0.0
    return pose.x_tilt_deg, pose.y_tilt_deg, pose.z_rot_deg, pose.shift_x_angstrom, pose.shift_y_angstrom


def _ctf(tilt: TiltImage, name: str) -> dict[str, float]:
    ctf = tilt.ctf
    if ctf is not None:
        return {
            "rlnDefocusU": ctf.defocus_u_angstrom,
            "rlnDefocusV": ctf.defocus_v_angstrom,
            "rlnCtfAstigmatism": ctf.astigmatism_angstrom,
            "rlnDefocusAngle": ctf.astigmatism_angle_deg,
            "rlnCtfFigureOfMerit": math.nan if ctf.figure_of_merit is None else ctf.figure_of_merit,
            "rlnCtfMaxResolution": math.nan if ctf.fit_resolution_angstrom is None else ctf.fit_resolution_angstrom,
            "rlnPhaseShift": ctf.phase_shift_deg,
        }
    defocus = tilt.acquisition.nominal_defocus_angstrom
    if defocus is None:
        raise InputError(
            None,
            f"tilt {tilt.acquisition.nominal_tilt_angle_deg:+.1f}° of {name!r} has neither a CTF estimate nor a "
            "nominal defocus, and RELION needs a defocus for every tilt.",
            "run `tomoprep ctf` first, or export a run that holds the CTF.",
        )
    return {"rlnDefocusU": defocus, "rlnDefocusV": defocus, "rlnCtfAstigmatism": 0.0, "rlnDefocusAngle": 0.0,
            "rlnCtfFigureOfMerit": math.nan, "rlnCtfMaxResolution": math.nan, "rlnPhaseShift": 0.0}  # fmt: skip


def _acquisition(tilt: TiltImage, ts: TiltSeries, micrograph: str, place: Placer) -> dict[str, object]:
    acquisition = tilt.acquisition
    if acquisition.pre_exposure_e_per_angstrom2 is None:
        raise InputError(
            None,
            f"tilt {acquisition.nominal_tilt_angle_deg:+.1f}° of {ts.name!r} has no known pre-exposure; RELION "
            "needs rlnMicrographPreExposure for every tilt.",
            "import again with --dose-per-tilt-e-per-angstrom2.",
        )
    # A series imported from a stack has no movies: the movie column names the tilt image itself.
    movie = micrograph if acquisition.movie_path is None else place(acquisition.movie_path, f"{ts.name}/movies",
                                                                    what="movie")  # fmt: skip
    defocus = acquisition.nominal_defocus_angstrom
    return {
        "rlnMicrographMovieName": movie,
        "rlnTomoTiltMovieFrameCount": -1 if acquisition.frame_count is None else acquisition.frame_count,
        "rlnTomoNominalStageTiltAngle": acquisition.nominal_tilt_angle_deg,
        "rlnTomoNominalTiltAxisAngle": ts.nominal_tilt_axis_angle_deg,
        "rlnMicrographPreExposure": acquisition.pre_exposure_e_per_angstrom2,
        "rlnTomoNominalDefocus": math.nan if defocus is None else -defocus / MICROMETRE_IN_ANGSTROM,
    }


def _motion(tilt: TiltImage, name: str, place: Placer) -> dict[str, object]:
    motion = tilt.motion
    if motion is None:
        return {}
    row: dict[str, object] = {}
    if motion.micrograph_even_path is not None and motion.micrograph_odd_path is not None:
        row["rlnMicrographNameEven"] = place(motion.micrograph_even_path, f"{name}/images", what="even-frame sum")
        row["rlnMicrographNameOdd"] = place(motion.micrograph_odd_path, f"{name}/images", what="odd-frame sum")
    if motion.accumulated_motion_angstrom is not None:
        total, early, late = motion.accumulated_motion_angstrom
        row.update({"rlnAccumMotionTotal": total, "rlnAccumMotionEarly": early, "rlnAccumMotionLate": late})
    return row


def tilt_rows(ts: TiltSeries, place: Placer) -> SeriesRows:
    """The rows of ``ts``'s per-series table, its files placed by ``place``.

    Raises
    ------
    InputError
        If a kept tilt has no image, no known pre-exposure, or neither a CTF nor a nominal defocus.
    """
    tilts = kept_tilts(ts)
    if not tilts:
        raise InputError(None, f"every tilt of {ts.name!r} is excluded; there is nothing to export.",
                         "include tilts again (tomoprep clean) or leave the series out.")  # fmt: skip
    rows = []
    for tilt in tilts:
        micrograph = _tilt_image(tilt, place, ts.name)
        row = _acquisition(tilt, ts, micrograph, place)
        row["rlnMicrographName"] = micrograph
        row.update(_motion(tilt, ts.name, place))
        row.update(_ctf(tilt, ts.name))
        x_tilt, y_tilt, z_rot, shift_x, shift_y = _pose(tilt, ts.nominal_tilt_axis_angle_deg)
        row.update({"rlnTomoXTilt": x_tilt, "rlnTomoYTilt": y_tilt, "rlnTomoZRot": z_rot,
                    "rlnTomoXShiftAngst": shift_x, "rlnTomoYShiftAngst": shift_y,
                    "rlnCtfScalefactor": math.cos(math.radians(y_tilt))})  # fmt: skip
        rows.append(row)
    _keep_common_columns(rows)
    return SeriesRows(rows, _filled_notes(ts.name, tilts))


def _keep_common_columns(rows: list[dict[str, object]]) -> None:
    # Odd/even sums and motion are optional per tilt; a column that some rows lack cannot be written for RELION.
    common = set.intersection(*(set(r) for r in rows))
    for row in rows:
        for label in set(row) - common:
            del row[label]


def _filled_notes(name: str, tilts: list[TiltImage]) -> tuple[str, ...]:
    notes = []
    unaligned = sum(1 for t in tilts if t.alignment is None)
    if unaligned:
        notes.append(f"{unaligned} of {len(tilts)} tilts of {name} are not aligned: their rows hold "
                     "the nominal tilt and axis and no shift (align before RELION reconstructs).")  # fmt: skip
    no_ctf = sum(1 for t in tilts if t.ctf is None)
    if no_ctf:
        notes.append(f"{no_ctf} of {len(tilts)} tilts of {name} have no CTF estimate: their rows "
                     "hold the nominal defocus (run tomoprep ctf, or RELION's CTF job, before averaging).")  # fmt: skip
    return tuple(notes)
