"""What a reconstruction of one tilt series uses: its tilts and their poses, the tomogram's depth, the CTF and hand.

Poses are RELION 5's (:class:`tomoprep.model.TiltAlignment`, shifts in Å); :func:`projections_at` turns them into
the pixels of images binned from the tilt images, whose centre pixel stays on the same specimen point
(:mod:`tomoprep.algorithms.binning`), so shifts divide by the binned pixel spacing and nothing else changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tomoprep.algorithms.reconstruction import TiltProjection
from tomoprep.model import TiltAlignment, TiltImage, TiltSeries
from tomoprep.steps.reconstruct.params import DEFAULT_THICKNESS_ANGSTROM, ReconstructParams
from tomoprep.steps.tilt_images import has_image
from tomoprep.steps.unit import WARNING_PREFIX


@dataclass(frozen=True)
class SeriesGeometry:
    """The tilts a reconstruction uses, sorted by tilt angle, with their poses (Å, degrees).

    ``aligned`` is false when the series has no alignment and the poses are the nominal geometry (nominal tilt
    angles and tilt axis, no shifts); ``notes`` say what was used and left out.
    """

    tilts: tuple[TiltImage, ...]
    poses: tuple[TiltAlignment, ...]
    aligned: bool
    notes: tuple[str, ...]


def nominal_pose(ts: TiltSeries, tilt: TiltImage) -> TiltAlignment:
    """The pose of ``tilt`` by the microscope's word: its nominal tilt, the series' nominal axis, no shift."""
    return TiltAlignment(y_tilt_deg=tilt.acquisition.nominal_tilt_angle_deg, z_rot_deg=ts.nominal_tilt_axis_angle_deg)


def series_geometry(ts: TiltSeries) -> SeriesGeometry:
    """The included tilts that have an image, with the alignment's poses, or the nominal ones when not aligned.

    In an aligned series a tilt without a pose (included again after the alignment) is left out, with a warning:
    back-projecting it at a guessed position would blur the tomogram.

    Raises
    ------
    ValueError
        When fewer than two tilts are left (a message naming the series; the step turns it into its error).
    """
    usable = [t for t in ts.included_tilts if has_image(t)]
    posed = [t for t in usable if t.alignment is not None]
    notes: list[str] = []
    pairs: list[tuple[TiltImage, TiltAlignment]]
    if posed:
        if len(posed) < len(usable):
            notes.append(f"{WARNING_PREFIX} {len(usable) - len(posed)} included tilts of {ts.name} have no pose "
                         "(included after the alignment) and are left out: align again to use them")  # fmt: skip
        pairs = [(t, t.alignment) for t in posed if t.alignment is not None]
        aligned = True
    else:
        pairs = [(t, nominal_pose(ts, t)) for t in usable]
        aligned = False
        notes.append(f"{WARNING_PREFIX} {ts.name} is not aligned: reconstructed with the nominal geometry (nominal "
                     f"tilt angles, tilt axis {ts.nominal_tilt_axis_angle_deg:.1f}°, no shifts); run tomoprep align "
                     "first for a sharp tomogram")  # fmt: skip
    if len(pairs) < 2:
        raise ValueError(f"tilt series {ts.name} has {len(pairs)} usable tilts; a tomogram needs at least 2")
    pairs.sort(key=lambda pair: pair[1].y_tilt_deg)
    return SeriesGeometry(tuple(t for t, _ in pairs), tuple(p for _, p in pairs), aligned, tuple(notes))


def projections_at(poses: tuple[TiltAlignment, ...], pixel_spacing_angstrom: float) -> list[TiltProjection]:
    """The poses in pixels of images of ``pixel_spacing_angstrom`` (Å) whose centre is the tilt images' centre."""
    spacing = pixel_spacing_angstrom
    return [TiltProjection(y_tilt_deg=p.y_tilt_deg, z_rot_deg=p.z_rot_deg, x_tilt_deg=p.x_tilt_deg,
                           shift_x_px=p.shift_x_angstrom / spacing, shift_y_px=p.shift_y_angstrom / spacing)
            for p in poses]  # fmt: skip


def tomogram_thickness(ts: TiltSeries, params: ReconstructParams) -> tuple[float, str]:
    """The tomogram's depth (Å) and where it comes from: given, the measured specimen plus the margin, or the
    default."""
    if params.thickness_angstrom is not None:
        return params.thickness_angstrom, "as given"
    measured = ts.specimen_thickness_angstrom
    if measured is not None and math.isfinite(measured) and measured > 0:
        return measured + params.thickness_margin_angstrom, (
            f"the measured specimen {measured:.0f} Å + margin {params.thickness_margin_angstrom:.0f} Å"
        )
    return DEFAULT_THICKNESS_ANGSTROM, "the default: no specimen thickness measured, --thickness-angstrom sets it"


def defocus_hand(ts: TiltSeries) -> tuple[int, str]:
    """The defocus hand for CTF correction: the CTF estimation's where it decided one, else the series'."""
    if ts.ctf_hand is not None and ts.ctf_hand.hand is not None:
        return ts.ctf_hand.hand, f"hand {ts.ctf_hand.hand:+d} (the CTF estimation's)"
    return ts.hand, f"hand {ts.hand:+d} (the series'; the CTF estimation did not decide one)"


def missing_ctf(ts: TiltSeries, tilts: tuple[TiltImage, ...]) -> str | None:
    """Why the tilts' images cannot be CTF-corrected (a message naming the series and the fix), ``None`` if they
    can."""
    lacking = [t for t in tilts if t.ctf is None]
    if not lacking:
        return None
    if len(lacking) == len(tilts):
        return f"tilt series {ts.name} has no CTF estimate: run tomoprep ctf first"
    return (f"{len(lacking)} of the {len(tilts)} tilts of {ts.name} have no CTF estimate (included after the CTF "
            "estimation): run tomoprep ctf again")  # fmt: skip


def mean_defocus_angstrom(tilts: tuple[TiltImage, ...]) -> float | None:
    """Mean centre defocus of the tilts with a CTF estimate (Å, positive underfocus); ``None`` when none has."""
    defoci = [t.ctf.defocus_angstrom for t in tilts if t.ctf is not None]
    return sum(defoci) / len(defoci) if defoci else None
