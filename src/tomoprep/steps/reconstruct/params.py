"""Parameters of the reconstruction step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tomoprep.steps.base import Params
from tomoprep.steps.deconvolve.params import DeconvolutionFields

#: Depth of the tomogram when neither ``--thickness-angstrom`` is given nor the alignment measured the specimen (Å):
#: a thick lamella or thin cell edge fits in it.
DEFAULT_THICKNESS_ANGSTROM = 3000.0


class ReconstructionFields(Params):
    """The reconstruction's own settings (listed before the deconvolution's in ``--help``)."""

    binning: list[int] = Field(
        [4], min_length=1, description="Binning of the tomogram relative to the tilt images (a whole number from 1); "
        "repeat the option for several binnings in one run (--binning 8 --binning 4).",
    )  # fmt: skip
    thickness_angstrom: float | None = Field(
        None, gt=0, le=50_000, description="Depth of the tomograms (Å); default: the specimen thickness the alignment "
        f"measured plus --thickness-margin-angstrom, else {DEFAULT_THICKNESS_ANGSTROM:.0f} Å.",
    )  # fmt: skip
    thickness_margin_angstrom: float = Field(
        400.0, ge=0, le=20_000, description="Added to the measured specimen thickness (Å, half above and half below)."
    )
    sirt_iterations: int | None = Field(
        None, ge=0, le=500, description="SIRT-like filter equivalent to this many SIRT iterations (stronger "
        "low-resolution contrast, less noise); 0 or none: weighted back projection with the ramp filter.",
    )  # fmt: skip
    dose_filter: bool = Field(
        True, description="Filter each tilt for the exposure it and the tilts before it received (where the doses "
        "are known; skipped with a note where not).",
    )  # fmt: skip
    ctf_correction: Literal["none", "phase_flip", "wiener"] = Field(
        "none", description="Correct the tilt images for the CTF the ctf step estimated before back projection."
    )
    wiener_snr: float = Field(
        10.0, gt=0, le=1e6, description="Signal-to-noise ratio assumed by --ctf-correction wiener."
    )
    odd_even: bool = Field(
        True, description="Also reconstruct half tomograms from the odd and the even frame sums, where motion "
        "correction wrote them (motioncorr --odd-even).",
    )  # fmt: skip
    aligned_stacks: bool = Field(
        False, description="Also write each binning's aligned tilt stack (MRC, tilt axis along Y, sorted by tilt) "
        "with its IMOD .tlt file, to open in 3dmod.",
    )  # fmt: skip

    @field_validator("binning")
    @classmethod
    def _whole_binnings(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value):
            raise ValueError(f"binnings must be whole numbers from 1, got {value}")
        return sorted(set(value), reverse=True)

    @property
    def sirt_filter_iterations(self) -> int | None:
        """The SIRT-like filter's iterations, ``None`` for weighted back projection."""
        return self.sirt_iterations or None


class ReconstructParams(DeconvolutionFields, ReconstructionFields):
    """Reconstruct each tilt series into tomograms: exposure filter, CTF correction, alignment applied, weighted back
    projection (or its SIRT-like filter), at one or more binnings, with odd/even halves, aligned stacks and
    deconvolved copies."""

    deconvolve: bool = Field(
        False, description="Also write a deconvolved copy of each tomogram (the --deconv-* settings; CTF at the "
        "series' mean defocus).",
    )  # fmt: skip
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to compute: auto = CUDA when present.")
