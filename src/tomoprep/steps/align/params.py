"""Parameters of the tilt-series alignment step."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tomoprep.steps.base import Params


class AlignParams(Params):
    """Align every tilt series without markers: tilt axis, shifts, tilt offset, specimen thickness and height."""

    working_size_px: int = Field(
        256,
        ge=64,
        le=2048,
        description="Tilt images are Fourier-binned by a whole factor until their longer side is at most this; "
        "shifts are refined to a fraction of a pixel at this binning.",
    )
    min_working_pixel_spacing_angstrom: float = Field(
        8.0, ge=0, le=100, description="... and until their pixel spacing is at least this (Å)."
    )
    refine_axis: bool = Field(
        True,
        description="Refine the tilt-axis angle (common lines within ±90° of the imported one, then projection "
        "matching); off keeps the imported angle.",
    )
    refine_tilt_offset: bool = Field(
        True, description="Add the tilt offset that makes the specimen slab flat (lamella pretilt) to every tilt."
    )
    resolve_axis_by: Literal["nominal", "hand"] = Field(
        "nominal",
        description="Projections cannot tell the axis from the axis + 180° (a mirrored tomogram); the defocus "
        "gradient of tilted images can, given the hand. nominal: keep the axis within ±90° of the imported one and "
        "measure the hand; hand: keep the series' hand (tomoprep import --tomo-hand) and turn the axis by 180° "
        "when the gradient disagrees.",
    )
    hand_size_px: int = Field(
        1024, ge=256, le=8192, description="Images are binned to at most this size to measure the defocus gradient."
    )
    min_hand_confidence: float = Field(
        5.0, ge=0, description="Gradient evidence (slope / its standard error) needed to decide the hand or flip."
    )
    matching_iterations: int = Field(3, ge=0, le=20, description="Projection-matching passes.")
    max_thickness_angstrom: float = Field(
        6000.0, gt=0, le=50000, description="Largest specimen thickness looked for (depth of the reconstructions)."
    )
    patch_tracking: bool = Field(
        False,
        description="After global alignment, follow a grid of patches through the series and record each "
        "patch's local shift in every tilt (<name>_local.star; the RMS per tilt in the tilt-series STAR).",
    )
    patches: int = Field(4, ge=2, le=12, description="Patch tracking: patches across and along the tilt axis.")
    alignment_files: Path | None = Field(
        None,
        description="Folder of alignments made elsewhere, used instead of aligning: <name>.xf with <name>.tlt "
        "(and <name>.xtilt, IMOD) or <name>.aln (AreTomo), views in the stack's order.",
    )
    device: str = Field("cpu", pattern="^(cpu|cuda|auto)$", description="Where to compute: cpu, cuda or auto.")
