"""Parameters of the export step."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tomoprep.steps.base import Params


class ExportParams(Params):
    """Export the tilt series for another program: a RELION 5 project folder, or IMOD / AreTomo alignment files."""

    format: Literal["relion5", "imod", "aretomo"] = Field(
        "relion5", description="relion5: a folder RELION 5 uses as its project directory (tomograms.star, one STAR "
        "per series, optimisation_set.star); imod: a stack, .xf/.tlt/.xtilt, newst.com and tilt.com per series; "
        "aretomo: a stack and its .aln per series.",
        json_schema_extra={"argument": True},  # tomoprep export relion5 OUT
    )  # fmt: skip
    out: Path = Field(description="Export folder (created; files written earlier by an export are replaced).",
                      json_schema_extra={"argument": True})  # fmt: skip
    copy_files: bool = Field(
        False,
        description="Copy tilt images and tomograms into the folder instead of linking them (movies stay linked).",
        json_schema_extra={"flags": ["--copy"]},
    )
    coordinates: str | None = Field(
        None, description="relion5: glob of particle coordinate files (text x y z named after their tilt series, or "
        "STAR with rlnTomoName) for particles.star.",
    )  # fmt: skip
    coordinates_unit: Literal["voxel", "angstrom"] = Field(
        "voxel", description="Unit of uncentred coordinates: tomogram voxels, or Å from the first voxel."
    )
    coordinates_binning: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Binning of the tomogram the coordinates were picked in "
        "(its voxel size / the tilt images' pixel spacing); default: the exported tomogram's.",
    )  # fmt: skip
    tomogram_thickness_angstrom: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Depth of the volume (Å) for series without a tomogram "
        "(rlnTomoSizeZ, IMOD's THICKNESS); default: the specimen thickness the alignment measured.",
    )  # fmt: skip

    @field_validator("out")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Recorded absolute, so that resuming the run elsewhere writes to the same folder.
        return Path(value).expanduser().resolve()

    @model_validator(mode="after")
    def _coordinates_for_relion(self) -> ExportParams:
        if self.coordinates is not None and self.format != "relion5":
            raise ValueError("--coordinates go into RELION 5's particles.star: give them with --format relion5")
        return self
