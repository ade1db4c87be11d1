"""Plain data of a tilt series: its optics, its tilt images and their acquisition metadata.

Units follow :mod:`tomoprep.conventions`: Å, degrees, kV, mm, e⁻/Å²; defocus positive for underfocus.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

Hand = Literal[-1, 1]
GainRotation = Literal[0, 90, 180, 270]
GainFlip = Literal["none", "x", "y"]


@dataclass(frozen=True)
class Optics:
    """Microscope optics shared by all tilts of a series."""

    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.1
    optics_group_name: str = "opticsGroup1"


@dataclass(frozen=True)
class GainReference:
    """A gain reference file and the rotation/flip that puts it on the movies' pixel grid."""

    path: Path
    rotation_deg: GainRotation = 0
    flip: GainFlip = "none"


@dataclass(frozen=True)
class TiltAlignment:
    """Where a tilt image sits in the specimen frame: RELION 5's per-tilt alignment fields.

    The projection is ``P = S(image centre) S(shift) Rz(z_rot) Ry(y_tilt) Rx(x_tilt) S(-specimen centre)``
    (``conventions.py``): ``y_tilt_deg`` is the tilt about the tilt axis (``rlnTomoYTilt``), ``z_rot_deg`` the
    tilt-axis angle in the image, counter-clockwise from Y (``rlnTomoZRot``), ``x_tilt_deg`` a tilt about the
    specimen x axis (``rlnTomoXTilt``), and the shifts move the projected specimen centre from the image centre
    (``rlnTomoXShiftAngst``, ``rlnTomoYShiftAngst``), in Å.
    """

    y_tilt_deg: float
    z_rot_deg: float
    x_tilt_deg: float = 0.0
    shift_x_angstrom: float = 0.0
    shift_y_angstrom: float = 0.0


@dataclass(frozen=True)
class TiltImage:
    """One tilt of a series: its raw movie (or stack section) and what the microscope recorded.

    ``acquisition_index`` is the 0-based position in acquisition (dose) order; ``section_index`` the position
    in the source (mdoc ZValue or tilt-stack section). ``pre_exposure_e_per_angstrom2`` is the dose the
    specimen received before this tilt, ``dose_e_per_angstrom2`` the dose of the tilt itself; both ``None`` when
    the source gives no dose (unknown, never a made-up 0). ``micrograph_*`` are the motion-corrected sums (odd
    and even frames for Noise2Noise, dose-weighted); ``accumulated_motion_angstrom`` is RELION's (total, early,
    late) motion, early and late nan when the dose is unknown.
    ``alignment`` is the tilt's pose once the series is aligned (``None`` before, and for excluded tilts);
    ``local_shift_rms_angstrom`` the RMS over the patches of their local shifts in this tilt, once the series
    is patch-tracked.
    """

    acquisition_index: int
    section_index: int
    nominal_tilt_angle_deg: float
    nominal_tilt_axis_angle_deg: float
    pre_exposure_e_per_angstrom2: float | None
    dose_e_per_angstrom2: float | None
    movie_path: Path | None = None
    frame_count: int | None = None
    nominal_defocus_angstrom: float | None = None
    gain: GainReference | None = None
    micrograph_path: Path | None = None
    micrograph_odd_path: Path | None = None
    micrograph_even_path: Path | None = None
    micrograph_dose_weighted_path: Path | None = None
    motion_metadata_path: Path | None = None
    accumulated_motion_angstrom: tuple[float, float, float] | None = None
    stack_path: Path | None = None
    date_time: datetime | None = None
    excluded: bool = False
    exclusion_reason: str = ""
    alignment: TiltAlignment | None = None
    local_shift_rms_angstrom: float | None = None


@dataclass(frozen=True)
class TiltSeries:
    """A tilt series: a name, the original pixel spacing, optics and its tilts in acquisition order.

    ``tilt_series_pixel_spacing_angstrom`` is the spacing of the (motion-corrected or imported) tilt images
    once they exist, ``None`` while there are only movies. ``specimen_thickness_angstrom`` is the thickness
    of the specimen slab (lamella or ice) measured by alignment, along its normal; ``None`` until measured.
    ``local_alignment_path`` is the STAR file of patch tracking's local shifts (patch by patch, tilt by tilt;
    :mod:`tomoprep.io.local_alignment`), ``None`` when the series was not patch-tracked.
    """

    name: str
    original_pixel_spacing_angstrom: float
    optics: Optics
    tilts: tuple[TiltImage, ...]
    hand: Hand = -1
    tilt_series_pixel_spacing_angstrom: float | None = None
    sources: tuple[Path, ...] = field(default=())
    specimen_thickness_angstrom: float | None = None
    local_alignment_path: Path | None = None

    def __post_init__(self) -> None:
        if not self.tilts:
            raise ValueError(f"tilt series {self.name!r} has no tilts")
        orders = sorted(t.acquisition_index for t in self.tilts)
        if orders != list(range(len(self.tilts))):
            raise ValueError(f"tilt series {self.name!r}: acquisition indices are not 0..{len(self.tilts) - 1}")

    @property
    def n_tilts(self) -> int:
        """Number of tilts, excluded ones included."""
        return len(self.tilts)

    @property
    def dose_known(self) -> bool:
        """Whether every tilt not excluded has its dose and pre-exposure."""
        return all(
            t.dose_e_per_angstrom2 is not None and t.pre_exposure_e_per_angstrom2 is not None
            for t in self.included_tilts
        )

    @property
    def included_tilts(self) -> tuple[TiltImage, ...]:
        """Tilts not excluded, in acquisition order."""
        return tuple(t for t in self.tilts if not t.excluded)

    def with_tilts(self, tilts: tuple[TiltImage, ...]) -> TiltSeries:
        """A copy with other tilts (same name, optics, spacing and hand)."""
        return replace(self, tilts=tilts)
