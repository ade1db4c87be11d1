"""Parameters of the motion-correction step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tomoprep.steps.base import Params

#: What needs a dose in motion correction, and the motioncorr option that does without.
DOSE_WEIGHTING = "the dose-weighted sum (--dose-weighting)"
DOSE_WEIGHTING_ALTERNATIVE = "or run motioncorr with --no-dose-weighting"
EER_GROUPING = "grouping EER frames by dose (--eer-dose-per-group-e-per-angstrom2)"
EER_GROUPING_ALTERNATIVE = "or give motioncorr --eer-frames-per-group N"


class MotionCorrParams(Params):
    """Align the frames of every tilt movie and sum them: gain, defects, global and local motion, odd/even halves."""

    eer_dose_per_group_e_per_angstrom2: float = Field(
        0.5,
        gt=0,
        le=20,
        description="Target dose per EER frame group: N = this / (dose per tilt × pixel spacing² / EER frames), "
        "computed per tilt, so movies with other frame counts get their own grouping.",
    )
    eer_frames_per_group: int | None = Field(
        None, ge=1, description="Raw EER frames per group, instead of the dose target."
    )
    eer_upsampling: Literal[1, 2] = Field(
        1, description="EER rendering: 1 = sensor pixels (4K), 2 = 8K super-resolution."
    )
    group_frames: int = Field(1, ge=1, le=100, description="TIFF/MRC frames summed per group before alignment.")
    output_binning: float = Field(
        1.0, ge=1, le=16, description="Fourier binning of the output images, relative to the rendered frames."
    )
    local_motion: bool = Field(
        False,
        description="Also correct local (patch) motion with a smooth deformation model. Off by default, as in "
        "RELION's tomography motion correction: at a few e/Å² per tilt, patches hold little signal.",
    )
    patches_x: int = Field(5, ge=2, le=20, description="Patches along x for local motion.")
    patches_y: int = Field(5, ge=2, le=20, description="Patches along y for local motion.")
    bfactor_angstrom2: float = Field(
        100.0, ge=0, le=20000, description="B-factor applied to the frames' spectra for alignment, in Å²."
    )
    max_shift_angstrom: float = Field(
        200.0,
        gt=0,
        le=10000,
        description="Largest shift of a frame group searched, in Å: motion within one exposure is tens of Å, and a "
        "correlation peak farther away is noise.",
    )
    alignment_size_px: int = Field(
        1024, ge=128, le=8192, description="Frames are binned to about this size for motion estimation."
    )
    refinement_size_px: int = Field(
        2048,
        ge=0,
        le=8192,
        description="Larger frames are then measured at about this size, and aligned there when their correlation "
        "peaks come out clearly more precise (0: never).",
    )
    odd_even: bool = Field(True, description="Write sums of the odd and of the even frames (for Noise2Noise).")
    dose_weighting: bool = Field(True, description="Also write a dose-weighted sum (Grant & Grigorieff).")
    correct_defects: bool = Field(True, description="Find hot and dead pixels in each movie and replace them.")
    defect_threshold_sigma: float = Field(6.0, ge=3, le=20, description="Significance of a hot/dead pixel (sigma).")
    check_gain_orientation: bool = Field(
        True, description="Check that the gain reference's rotation/flip matches the movies, and warn if not."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to compute: auto = CUDA when present.")
