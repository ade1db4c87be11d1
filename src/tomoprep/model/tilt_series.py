"""Plain data of a tilt series: its optics, its tilt images and, per tilt, one record per processing stage.

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
class TiltAcquisition:
    """What the microscope recorded for one tilt: the import's record, present for every tilt.

    ``acquisition_index`` is the 0-based position in acquisition (dose) order; ``section_index`` the position
    in the source (mdoc ZValue or tilt-stack section). ``pre_exposure_e_per_angstrom2`` is the dose the
    specimen received before this tilt, ``dose_e_per_angstrom2`` the dose of the tilt itself; both ``None`` when
    the source gives no dose (unknown, never a made-up 0). ``movie_path`` is the raw movie (``None`` for a series
    imported from a tilt stack), ``stack_path`` the tilt stack whose section ``section_index`` is this tilt
    (``None`` for movies). ``nominal_defocus_angstrom`` is the target defocus, positive for underfocus.
    """

    acquisition_index: int
    section_index: int
    nominal_tilt_angle_deg: float
    pre_exposure_e_per_angstrom2: float | None
    dose_e_per_angstrom2: float | None
    movie_path: Path | None = None
    frame_count: int | None = None
    nominal_defocus_angstrom: float | None = None
    gain: GainReference | None = None
    date_time: datetime | None = None
    stack_path: Path | None = None


@dataclass(frozen=True)
class TiltMotion:
    """What motion correction made of a tilt's movie.

    ``micrograph_path`` is the motion-corrected sum; the odd and even frame sums (for Noise2Noise) and the
    dose-weighted sum are ``None`` when not written; ``motion_metadata_path`` is the RELION motion STAR of the
    movie; ``accumulated_motion_angstrom`` is RELION's (total, early, late) motion in Å, early and late nan when
    the dose is unknown, ``None`` when not measured.
    """

    micrograph_path: Path
    micrograph_odd_path: Path | None = None
    micrograph_even_path: Path | None = None
    micrograph_dose_weighted_path: Path | None = None
    motion_metadata_path: Path | None = None
    accumulated_motion_angstrom: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class TiltExclusion:
    """Why a tilt is left out of the series (it stays in the records, flagged).

    ``reason`` starts with the step that excluded it (``import:``, ``motioncorr:``, ``auto:`` for cleaning's
    measurements); ``""`` when the record gives none.
    """

    reason: str = ""


@dataclass(frozen=True)
class TiltAlignment:
    """Where a tilt image sits in the specimen frame: RELION 5's per-tilt alignment fields.

    The projection is ``P = S(image centre) S(shift) Rz(z_rot) Ry(y_tilt) Rx(x_tilt) S(-specimen centre)``
    (``conventions.py``): ``y_tilt_deg`` is the tilt about the tilt axis (``rlnTomoYTilt``), ``z_rot_deg`` the
    tilt-axis angle in the image, counter-clockwise from Y (``rlnTomoZRot``), ``x_tilt_deg`` a tilt about the
    specimen x axis (``rlnTomoXTilt``), and the shifts move the projected specimen centre from the image centre
    (``rlnTomoXShiftAngst``, ``rlnTomoYShiftAngst``), in Å. ``local_shift_rms_angstrom`` is the RMS over the
    patches of their local shifts in this tilt once the series is patch-tracked, ``None`` before.
    ``match_score`` is the normalised correlation (-1 to 1) of the tilt with the reprojection of the others in the
    alignment's last projection-matching pass, and ``match_correction_angstrom`` the length of the shift that pass
    made (Å of the specimen); both ``None`` where no matching ran (an alignment read from files).
    """

    y_tilt_deg: float
    z_rot_deg: float
    x_tilt_deg: float = 0.0
    shift_x_angstrom: float = 0.0
    shift_y_angstrom: float = 0.0
    local_shift_rms_angstrom: float | None = None
    match_score: float | None = None
    match_correction_angstrom: float | None = None


@dataclass(frozen=True)
class TiltCtf:
    """The CTF of a tilt at its centre (RELION's conventions), as the CTF estimation found or repaired it.

    ``defocus_u_angstrom`` ≥ ``defocus_v_angstrom`` (Å, positive for underfocus); ``astigmatism_angle_deg`` from
    image X towards Y to U; ``phase_shift_deg`` the phase-plate shift; ``fit_resolution_angstrom`` the finest
    spacing up to which the rings fit (``inf`` for a tilt repaired from the series, ``None`` when the source
    gives none); ``figure_of_merit`` the fit's score (``None`` when none). ``flag`` is ``""`` for a tilt fitted
    on its own, else why its own fit failed (``dark``, ``no rings``, ``outlier``, ``not in file``); such a tilt's
    values come from the series. ``power_spectrum_path`` is the stack of power spectra and
    ``power_spectrum_section`` this tilt's section in it (from 0); ``None`` when no spectrum was written.
    """

    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    phase_shift_deg: float = 0.0
    fit_resolution_angstrom: float | None = None
    figure_of_merit: float | None = None
    flag: str = ""
    power_spectrum_path: Path | None = None
    power_spectrum_section: int | None = None

    @property
    def defocus_angstrom(self) -> float:
        """Mean of U and V, Å."""
        return 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)

    @property
    def astigmatism_angstrom(self) -> float:
        """``U - V``, Å (``rlnCtfAstigmatism``)."""
        return self.defocus_u_angstrom - self.defocus_v_angstrom


@dataclass(frozen=True)
class CtfHand:
    """The defocus hand the CTF estimation found for the series' tilt axis: ``hand`` ``+1``/``-1``
    (``rlnTomoHand``'s meaning), ``None`` when undetermined; ``confidence`` the evidence in units of its noise
    (``nan`` when not measured, as for estimates read from files)."""

    hand: Hand | None
    confidence: float


@dataclass(frozen=True)
class CtfSample:
    """The specimen as the CTF estimation's Thon rings show it, a cross-check of the alignment's geometry.

    ``thickness_angstrom`` is the slab's thickness along its normal from the rings' nodes, with its standard
    error, ``None`` where not measured or not measurable. ``tilt_axis_deg`` and ``tilt_offset_deg`` are the
    axis (``rlnTomoZRot``'s convention) and the offset added to the tilts used, from the defocus gradients, with
    their standard errors, ``None`` where not refined. The alignment's geometry is never replaced by them.
    """

    thickness_angstrom: float | None = None
    thickness_error_angstrom: float | None = None
    tilt_axis_deg: float | None = None
    tilt_axis_error_deg: float | None = None
    tilt_offset_deg: float | None = None
    tilt_offset_error_deg: float | None = None


@dataclass(frozen=True)
class Tomogram:
    """A volume reconstructed from a tilt series, as RELION 5's tomogram set describes it.

    ``binning`` is the voxel size over the tilt-series pixel size (``rlnTomoTomogramBinning``), ``size_xyz`` the
    volume's size in voxels (``rlnTomoSizeX/Y/Z``). ``half1_path``/``half2_path`` are the tomograms of the odd and
    even frame sums (``rlnTomoReconstructedTomogramHalf1/2``), ``denoised_path`` a denoised copy
    (``rlnTomoReconstructedTomogramDenoised``), each ``None`` when not made. ``ctf_correction`` says how the
    tilt images were corrected for the CTF before back projection (``"none"``, ``"phase_flip"``, ``"wiener"``).
    """

    path: Path
    binning: float
    voxel_spacing_angstrom: float
    size_xyz: tuple[int, int, int]
    half1_path: Path | None = None
    half2_path: Path | None = None
    denoised_path: Path | None = None
    ctf_correction: str = "none"


@dataclass(frozen=True)
class TiltImage:
    """One tilt of a series: one record per processing stage, each ``None`` until the step that fills it ran.

    ``acquisition`` (import) is always there; ``motion`` once motion correction made its micrograph;
    ``exclusion`` while the tilt is left out (import, motion correction or cleaning), ``None`` for an included
    tilt; ``alignment`` once the series is aligned (``None`` for tilts left out of the alignment); ``ctf`` once its
    CTF is estimated (``None`` for tilts left out of the estimation).
    Values shared by every tilt of a series (optics, nominal tilt-axis angle, pixel spacing) are on
    :class:`TiltSeries`, once.
    """

    acquisition: TiltAcquisition
    motion: TiltMotion | None = None
    exclusion: TiltExclusion | None = None
    alignment: TiltAlignment | None = None
    ctf: TiltCtf | None = None
    # Stages still to come keep to the same pattern, each an optional record of its own: ``reconstruction``
    # (what a reconstruction used of this tilt) is added beside these when that step exists.

    @property
    def excluded(self) -> bool:
        """Whether the tilt is left out (it has an exclusion record)."""
        return self.exclusion is not None


@dataclass(frozen=True)
class TiltSeries:
    """A tilt series: a name, the original pixel spacing, optics and its tilts in acquisition order.

    Values that hold for the whole series are stored here once, never copied into the tilts.
    ``nominal_tilt_axis_angle_deg`` is the tilt-axis angle the import decided on (counter-clockwise from the
    image Y axis, degrees): given by the user, or the mdoc's (its title line, else its first ``RotationAngle``;
    the import warns when the mdoc's tilts disagree). Alignment refines it per tilt (``TiltAlignment.z_rot_deg``).
    ``tilt_series_pixel_spacing_angstrom`` is the spacing of the (motion-corrected or imported) tilt images
    once they exist, ``None`` while there are only movies. ``specimen_thickness_angstrom`` is the thickness
    of the specimen slab (lamella or ice) measured by alignment, along its normal; ``None`` until measured.
    ``local_alignment_path`` is the STAR file of patch tracking's local shifts (patch by patch, tilt by tilt;
    :mod:`tomoprep.io.local_alignment`), ``None`` when the series was not patch-tracked. ``axis_scores_path`` is
    the STAR file of the alignment's tilt-axis searches (every angle tried and its score;
    :mod:`tomoprep.io.axis_scores`), ``None`` when the axis was not searched. ``ctf_hand`` is the
    defocus hand the CTF estimation found (with its confidence), ``None`` before it ran; ``ctf_sample`` the
    thickness and sample tilt it measured when asked (:class:`CtfSample`). ``tomograms`` are the
    volumes reconstructed from it (one per binning), empty before reconstruction.
    """

    name: str
    original_pixel_spacing_angstrom: float
    optics: Optics
    tilts: tuple[TiltImage, ...]
    nominal_tilt_axis_angle_deg: float
    hand: Hand = -1
    tilt_series_pixel_spacing_angstrom: float | None = None
    sources: tuple[Path, ...] = field(default=())
    specimen_thickness_angstrom: float | None = None
    local_alignment_path: Path | None = None
    axis_scores_path: Path | None = None
    ctf_hand: CtfHand | None = None
    ctf_sample: CtfSample | None = None
    tomograms: tuple[Tomogram, ...] = ()

    def __post_init__(self) -> None:
        if not self.tilts:
            raise ValueError(f"tilt series {self.name!r} has no tilts")
        orders = sorted(t.acquisition.acquisition_index for t in self.tilts)
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
            t.acquisition.dose_e_per_angstrom2 is not None and t.acquisition.pre_exposure_e_per_angstrom2 is not None
            for t in self.included_tilts
        )

    @property
    def primary_tomogram(self) -> Tomogram | None:
        """The finest tomogram (smallest binning): the one RELION 5's tomogram set names; ``None`` when none."""
        return min(self.tomograms, key=lambda t: t.binning, default=None)

    @property
    def included_tilts(self) -> tuple[TiltImage, ...]:
        """Tilts not excluded, in acquisition order."""
        return tuple(t for t in self.tilts if not t.excluded)

    def with_tilts(self, tilts: tuple[TiltImage, ...]) -> TiltSeries:
        """A copy with other tilts (same name, optics, spacing, axis and hand)."""
        return replace(self, tilts=tilts)
