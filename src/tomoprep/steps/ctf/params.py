"""Parameters of the CTF estimation step."""

from __future__ import annotations

from pydantic import Field, model_validator

from tomoprep.steps.base import Params


class CtfParams(Params):
    """Estimate each tilt's defocus, astigmatism and fit with the specimen's defocus gradient, jointly over the
    series, and the defocus hand with its confidence (or read estimates made elsewhere)."""

    min_defocus_um: float | None = Field(
        None, gt=0, le=30, description="Smallest centre defocus searched (µm underfocus); default: nominal - window."
    )
    max_defocus_um: float | None = Field(
        None, gt=0, le=30, description="Largest centre defocus searched (µm underfocus); default: nominal + window."
    )
    nominal_window_um: float = Field(
        2.0, gt=0, le=10, description="Without --min/--max-defocus-um: search the mdoc's nominal defocus ± this (µm); "
        "tilts without a nominal defocus search 0.5-8 µm.",
    )  # fmt: skip
    tile_px: int = Field(256, ge=64, le=1024, description="Side of the tiles whose power spectra are averaged (px).")
    low_resolution_angstrom: float = Field(30.0, gt=0, le=200, description="Coarsest spacing fitted (Å).")
    high_resolution_angstrom: float = Field(
        5.0, gt=0, le=100, description="Finest spacing fitted (Å); clipped at 2.1 pixels of the images fitted."
    )
    max_image_size_px: int = Field(
        2048, ge=256, le=8192, description="Images are Fourier-binned by a whole factor until their longer side is at "
        "most this before their spectra are taken.",
    )  # fmt: skip
    fit_phase_shift: bool = Field(False, description="Fit a phase-plate phase shift (0-180°) as well.")
    shared_astigmatism: bool = Field(True, description="One astigmatism for the whole series (from all its rings).")
    min_hand_tilt_deg: float = Field(
        15.0, ge=0, le=80, description="Only tilts at least this steep weigh in the defocus hand (degrees)."
    )
    min_hand_confidence: float = Field(
        4.0, ge=0, description="Evidence (score difference over its noise) needed to claim a hand; below it the hand "
        "is undetermined.",
    )  # fmt: skip
    max_fit_resolution_angstrom: float = Field(
        20.0, gt=0, le=200, description="A tilt whose refit with the series' hand and astigmatism holds only coarser "
        "than this (Å) keeps its own fit.",
    )  # fmt: skip
    min_ring_significance: float = Field(
        2.5, gt=0, le=20, description="A tilt whose Thon-ring score is less than this many standard deviations above "
        "the same search's scores on white noise of its size is flagged 'no rings' and repaired from the series.",
    )  # fmt: skip
    refine_sample_tilt: bool = Field(
        False, description="Also measure the specimen's tilt axis and tilt offset from the defocus across each tilt "
        "(one axis and one offset for the series, with their errors) and compare them with the alignment's in the "
        "log; the alignment's geometry is kept. About 1.5 CPU seconds a 2048² tilt.",
    )  # fmt: skip
    fit_thickness: bool = Field(
        False, description="Also measure the specimen's thickness from the Thon rings' nodes (CTFFIND5's model; needs "
        "rings past the first node, e.g. 4.4 Å for 100 nm at 300 kV), written as tpCtfThicknessAngst and compared "
        "with the alignment's in the log. About 1.5 CPU seconds a 2048² tilt.",
    )  # fmt: skip
    max_thickness_nm: float = Field(
        600.0, gt=0, le=3000, description="Thickest specimen (nm, along its normal) searched by --fit-thickness."
    )
    from_files: str | None = Field(
        None, description="Read estimates made elsewhere instead of fitting: a file or glob of CTFFIND4/5 text, IMOD "
        "ctfplotter .defocus or AreTomo _CTF.txt files, each named after its tilt series (TS_01.defocus, "
        "TS_01_CTF.txt), rows in the stack's section order.",
    )  # fmt: skip
    device: str = Field("cpu", pattern="^(cpu|cuda|auto)$", description="Where images are read and binned.")

    @model_validator(mode="after")
    def _check_ranges(self) -> CtfParams:
        if (self.min_defocus_um is None) != (self.max_defocus_um is None):
            raise ValueError("give both --min-defocus-um and --max-defocus-um, or neither")
        if (
            self.min_defocus_um is not None
            and self.max_defocus_um is not None
            and (self.min_defocus_um >= self.max_defocus_um)
        ):
            raise ValueError("--min-defocus-um must be below --max-defocus-um")
        if self.high_resolution_angstrom >= self.low_resolution_angstrom:
            raise ValueError("--high-resolution-angstrom must be finer (smaller) than --low-resolution-angstrom")
        return self
