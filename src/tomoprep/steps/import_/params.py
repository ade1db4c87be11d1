"""Parameters of the import step."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tomoprep.steps.base import Params


class ImportParams(Params):
    """Import tilt-series movies with their mdoc files, or tilt stacks with their tilt angles.

    Every value given here beats the value in the mdoc or file header, and is recorded with the run.
    """

    mdoc: str | None = Field(
        None,
        description="Glob of mdoc files, one per tilt series or one per movie (quote it: 'mdoc/*.mdoc').",
    )
    movies: Path | None = Field(
        None,
        description="Folder holding the movies named by the mdoc SubFramePath; default: the mdoc's folder.",
    )
    stack: str | None = Field(
        None,
        description="Glob of tilt stacks (MRC) to import instead of movies; tilt angles come from --tilt-angles, "
        "or a .rawtlt/.tlt/.mdoc beside each stack, or the stack's extended header.",
    )
    relion5: Path | None = Field(
        None,
        description="A RELION 5 tomogram or tilt-series set to import instead (a job folder, a tomoprep export "
        "folder, or its global STAR file), with RELION's alignment and CTF.",
    )
    series: list[str] | None = Field(
        None,
        description="Import only the tilt series of these names (repeat the option); default: every series the "
        "files describe. A name none of them describes fails as a unit of its own.",
    )
    tilt_angles: Path | None = Field(
        None, description="Tilt-angle file (.rawtlt or .tlt, one angle per line) for a single --stack."
    )
    stack_acquisition_order: Literal["listed", "dose_symmetric"] = Field(
        "listed",
        description="Acquisition order of a stack without mdoc: as listed in the stack, or dose-symmetric "
        "(increasing |tilt| from 0°, positive first).",
    )
    gain: Path | None = Field(
        None, description="Gain reference (MRC, TIFF or EER .gain) for every movie; default: the mdoc's own."
    )
    gain_rotation_deg: Literal[0, 90, 180, 270] = Field(
        0,
        description="Rotation of the gain reference, counter-clockwise in degrees, applied before the flip.",
    )
    gain_flip: Literal["none", "x", "y"] = Field("none", description="Flip of the gain reference after rotation.")
    pixel_spacing_angstrom: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Pixel spacing of the movies (or stack) in Å; overrides the mdoc and headers.",
    )
    tilt_axis_angle_deg: float | None = Field(
        None,
        allow_inf_nan=False,
        ge=-360,
        le=360,
        description="Tilt-axis angle in degrees, counter-clockwise from the image Y axis; overrides the mdoc. "
        "A wrong sign gives a mirrored tomogram.",
    )
    dose_per_tilt_e_per_angstrom2: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Electron dose per tilt in e/Å²; overrides the mdoc's ExposureDose/PriorRecordDose.",
    )
    voltage_kv: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Acceleration voltage in kV; default: mdoc, else 300."
    )
    cs_mm: float = Field(2.7, ge=0, allow_inf_nan=False, description="Spherical aberration in mm.")
    amplitude_contrast: float = Field(0.1, ge=0, le=1, description="Amplitude contrast (fraction).")
    mdoc_flavour: Literal["auto", "serialem", "tomo5"] = Field(
        "auto", description="Who wrote the mdoc files; decides how the tilt-axis angle is read."
    )
    tomo_hand: Literal[-1, 1] = Field(
        -1, description="Defocus handedness (rlnTomoHand); -1 as RELION's import default."
    )
    optics_group_name: str = Field("opticsGroup1", min_length=1, description="Optics group of these series.")
    on_bad_movie: Literal["fail", "exclude"] = Field(
        "fail",
        description="What to do with a tilt whose movie is missing or unreadable: fail its tilt series, or keep "
        "the tilt excluded with the reason.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImportParams:
        if self.relion5 is not None:
            if self.mdoc is not None or self.stack is not None:
                raise ValueError("--relion5 imports a RELION 5 set on its own: leave out --mdoc and --stack")
            return self
        if self.mdoc is None and self.stack is None:
            raise ValueError("give --mdoc (movies and their mdoc files), --stack (tilt stacks) or --relion5")
        single_stack = self.stack is not None and not any(c in self.stack for c in "*?[")
        if self.stack is not None and self.mdoc is not None and not single_stack:
            raise ValueError("--mdoc with --stack describes one stack: give a single stack file, not a glob")
        if self.tilt_angles is not None and not single_stack:
            raise ValueError("--tilt-angles goes with a single --stack file")
        return self

    @property
    def is_stack_import(self) -> bool:
        """Whether this imports tilt stacks rather than movies."""
        return self.stack is not None
