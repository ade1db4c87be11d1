"""Parameters of the deconvolution filter, shared by ``tomoprep deconvolve`` and ``reconstruct --deconvolve``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tomoprep.steps.base import Params


class DeconvolutionFields(Params):
    """The deconvolution filter's settings (Tegunov's filter of Warp and IsoNet, docs/reconstruct.md)."""

    deconv_strength: float = Field(
        1.0, ge=0, le=5, description="Strength of the deconvolution filter: log10 of the assumed low-frequency SNR, "
        "divided by 3 for Warp's filter (by 1 for IsoNet's).",
    )  # fmt: skip
    deconv_falloff: float = Field(
        1.0, gt=0, le=10, description="How fast the assumed SNR falls with frequency (usually 1-1.2)."
    )
    deconv_highpass_fraction: float = Field(
        0.02, gt=0, le=1, description="Frequency, as a fraction of Nyquist, below which the deconvolution filter's "
        "cosine high-pass removes the lowest frequencies.",
    )  # fmt: skip
    deconv_variant: Literal["warp", "isonet"] = Field(
        "warp", description="Warp's filter (strength 1 = SNR 1000) or IsoNet's (strength 1 = SNR 10)."
    )


class DeconvolveParams(DeconvolutionFields):
    """Deconvolve each tomogram of a run with the CTF at the series' mean defocus (a denoised copy of each)."""

    defocus_angstrom: float | None = Field(
        None, gt=0, le=300_000, description="Defocus of the filter's CTF (Å, positive for underfocus); default: the "
        "mean defocus the CTF estimation found for the series' included tilts.",
    )  # fmt: skip
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to compute: auto = CUDA when present.")
