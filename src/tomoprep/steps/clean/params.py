"""Parameters of the stack-cleaning step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tomoprep.steps.base import Params

if TYPE_CHECKING:
    from tomoprep.algorithms.tilt_quality import QualityThresholds


class CleanParams(Params):
    """Exclude bad tilts: found automatically (shifted, dark, blurred) or named by hand; nothing is deleted.

    Tilts are numbered by acquisition index (0-based, ``tpAcquisitionIndex``, as in the movie names
    ``TS_01_003_...``); lists read ``TS_01:3,5;TS_02:0-2``.
    """

    auto: bool = Field(True, description="Find bad tilts automatically: stage jumps, dark images, blur.")
    shift_fraction: float = Field(
        0.15,
        gt=0,
        le=1,
        description="A tilt is shifted when displaced by more than this fraction of the field of view from its "
        "neighbours in angle on both sides.",
    )
    specimen_thickness_angstrom: float | None = Field(
        None,
        ge=0,
        le=100000,
        description="The thickest the specimen (ice, lamella) may be, in Å: content at different depths moves "
        "apart across the tilt axis from tilt to tilt, which is no stage jump; only a displacement beyond that "
        "parallax counts as shifted. Default: from the series' fall of brightness with tilt (3000 for "
        "normalised images); 0: none allowed.",
    )
    dark_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A tilt is dark when its mean is below this fraction of what the series' Beer-Lambert trend "
        "predicts for its angle (images in counts only).",
    )
    dark_area_fraction: float = Field(
        0.4,
        gt=0,
        le=1,
        description="... or when more than this fraction of what the series' median tilt shows bright is dark in "
        "it (see --dark-level).",
    )
    dark_level: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="A pixel of the low-passed image is dark below this fraction of the image's bright level "
        "(its 90th percentile).",
    )
    blur_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A tilt is blurred when its high-frequency signal is below this fraction of its neighbours' "
        "trend ...",
    )
    blur_z_score: float = Field(
        4.0, gt=0, le=1000, description="... and more than this many robust standard deviations below it."
    )
    max_excluded_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A series fails when the automatic tests would exclude more than this fraction of its measured "
        "tilts: look at its _clean.png, then pass 1 to accept the exclusions, or raise the threshold that made "
        "them.",
    )
    exclude: str | None = Field(
        None, description="Tilts to exclude by hand, by acquisition index: 'TS_01:3,5;TS_02:0-2'."
    )
    include: str | None = Field(
        None,
        description="Tilts to keep whatever the automatic tests say, re-including them if a previous cleaning "
        "excluded them (same syntax as --exclude).",
    )
    exclusion_file: Path | None = Field(
        None,
        description="Text file of tilts to exclude: one line per tilt series, its name then acquisition indices "
        "('TS_01 3 5'); '#' starts a comment.",
    )
    working_size_px: int = Field(
        512, ge=128, le=4096, description="Images are Fourier-binned by a whole factor to at most this size."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to compute: auto = CUDA when present.")

    @property
    def thresholds(self) -> QualityThresholds:
        """The automatic tests' thresholds."""
        from tomoprep.algorithms.tilt_quality import QualityThresholds  # torch: imported when cleaning runs

        return QualityThresholds(
            shift_fraction=self.shift_fraction,
            specimen_thickness_angstrom=self.specimen_thickness_angstrom,
            dark_ratio=self.dark_ratio,
            dark_area_fraction=self.dark_area_fraction,
            dark_level=self.dark_level,
            blur_ratio=self.blur_ratio,
            blur_z_score=self.blur_z_score,
        )
