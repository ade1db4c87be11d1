"""Parameters of ``tomoprep simulate``: one frozen model, presets for the sizes, :func:`resolve` for the values.

The size fields default to ``None``, which means "the preset decides"; :meth:`SimulateParams.resolve` returns
:class:`ResolvedParams`, every value filled in. The presets:

========  ======  =====  ===========  ========  ============  ====================================
preset    series  tilts  range, step  detector  pixel (Å)     movies
========  ======  =====  ===========  ========  ============  ====================================
tiny      1       11     ±50°, 10°    256²      4.0           TIFF, 6 frames (seconds)
demo      2       31     ±60°, 4°     512²      3.0           TIFF, 10 frames (well under a minute)
full      1       41     ±60°, 3°     4096²     1.7           EER, 300 raw frames (benchmarks)
========  ======  =====  ===========  ========  ============  ====================================

EER movies at a coarse pixel spacing need many raw frames (an EER frame holds at most one electron per pixel):
without ``frames_per_tilt`` they get enough for about 0.04 e⁻ per pixel and raw frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from tomoprep.steps.base import Params

MovieFormat = Literal["eer", "tiff", "mrc"]
Preset = Literal["tiny", "demo", "full"]

#: EER raw frames are chosen so that a pixel receives about this many electrons per raw frame.
EER_ELECTRONS_PER_PIXEL_PER_FRAME = 0.04
#: Motion fractions of an EER movie (each with its own shift); raw frames are spread over them.
EER_MAX_FRACTIONS = 40


@dataclass(frozen=True)
class _Preset:
    n_tilt_series: int
    n_tilts: int
    tilt_step_deg: float
    detector_size_px: int
    pixel_spacing_angstrom: float
    movie_format: MovieFormat
    frames_per_tilt: int
    n_vesicles: int
    n_complexes: int


PRESETS: dict[str, _Preset] = {
    "tiny": _Preset(1, 11, 10.0, 256, 4.0, "tiff", 6, 1, 20),
    "demo": _Preset(2, 31, 4.0, 512, 3.0, "tiff", 10, 1, 50),
    "full": _Preset(1, 41, 3.0, 4096, 1.7, "eer", 300, 10, 600),
}


@dataclass(frozen=True)
class ResolvedParams:
    """Every effective value of a simulation (presets applied); units as in :class:`SimulateParams`.

    ``frames_per_tilt`` is the frame count of the first gain reference's series (raw frames for EER); with two
    gain references the other half of the series has ``frames_per_tilt_b`` (about 15 % more).
    """

    preset: Preset
    movie_format: MovieFormat
    mdoc_flavour: Literal["serialem", "tomo5"]
    n_tilt_series: int
    n_tilts: int
    tilt_step_deg: float
    frames_per_tilt: int
    frames_per_tilt_b: int
    detector_shape_yx: tuple[int, int]
    pixel_spacing_angstrom: float
    n_vesicles: int
    n_complexes: int


class SimulateParams(Params):
    """Simulate a tilt-series session as a microscope writes it (movies, mdoc, gain), with its ground truth."""

    preset: Preset = Field("tiny", description="Size preset: tiny (seconds), demo (realistic, fast), full (4K EER).")
    movie_format: MovieFormat | None = Field(None, description="Movie format; default: the preset's.")
    mdoc_flavour: Literal["serialem", "tomo5"] = Field("serialem", description="Which program's mdoc to write.")
    n_tilt_series: int | None = Field(None, ge=1, le=99, description="Tilt series; default: the preset's.")
    n_tilts: int | None = Field(None, ge=1, le=181, description="Tilts per series; default: the preset's.")
    tilt_step_deg: float | None = Field(
        None, gt=0, le=30, description="Tilt increment in degrees; default: the preset's."
    )
    frames_per_tilt: int | None = Field(
        None, ge=1, le=5000, description="Frames per movie (EER: raw EER frames); default: the preset's."
    )
    detector_size_px: int | None = Field(
        None, ge=32, le=8192, description="Detector width in pixels; default: the preset's."
    )
    detector_height_px: int | None = Field(
        None, ge=32, le=8192, description="Detector height in pixels; default: square."
    )
    pixel_spacing_angstrom: float | None = Field(
        None, gt=0.2, le=50, description="Pixel spacing in Å; default: the preset's."
    )
    tilt_axis_angle_deg: float = Field(
        85.0, ge=-180, le=180, description="Nominal tilt-axis angle, degrees counter-clockwise from image Y."
    )
    tilt_offset_deg: float = Field(1.5, ge=-20, le=20, description="True tilt minus nominal (stage) tilt, in degrees.")
    tilt_scheme: Literal["dose_symmetric", "bidirectional"] = Field(
        "dose_symmetric", description="dose_symmetric (Hagen, groups of 2 from 0°) or bidirectional (0° to one end)."
    )
    dose_per_tilt_e_per_angstrom2: float = Field(3.0, gt=0, le=100, description="Electron dose per tilt in e/Å².")
    defocus_min_um: float = Field(2.5, gt=0, le=20, description="Smallest target underfocus in µm.")
    defocus_max_um: float = Field(4.5, gt=0, le=20, description="Largest target underfocus in µm.")
    astigmatism_angstrom: float = Field(250.0, ge=0, le=5000, description="Astigmatism (defocus U minus V) in Å.")
    thickness_min_angstrom: float = Field(1200.0, gt=0, le=10000, description="Thinnest ice in Å.")
    thickness_max_angstrom: float = Field(3000.0, gt=0, le=10000, description="Thickest ice in Å.")
    pretilt_deg: float = Field(0.0, ge=-30, le=30, description="Tilt of the specimen slab on the grid, degrees.")
    hand: Literal[-1, 1] = Field(-1, description="Defocus handedness of the simulated microscope (rlnTomoHand).")
    voltage_kv: float = Field(300.0, gt=0, le=1000, description="Acceleration voltage in kV.")
    cs_mm: float = Field(2.7, ge=0, le=10, description="Spherical aberration in mm.")
    amplitude_contrast: float = Field(0.07, ge=0, le=1, description="Amplitude contrast (fraction).")
    gain_rotation_deg: Literal[0, 90, 180, 270] = Field(
        0, description="Rotation that reading the gain file needs (as --gain-rotation-deg of import)."
    )
    gain_flip: Literal["none", "x", "y"] = Field(
        "none", description="Flip that reading the gain file needs after the rotation (as --gain-flip)."
    )
    two_gain_references: bool = Field(
        False, description="Half the series with gain A, half with gain B and about 15 % more frames."
    )
    write_tilt_stack: bool = Field(
        False, description="Also write motion-corrected-like tilt stacks stacks/<TS>.st with .rawtlt and .mdoc."
    )
    local_motion_angstrom: float = Field(
        0.0, ge=0, le=100, description="Amplitude of a smooth local deformation in Å; 0 = none."
    )
    jitter_step_angstrom: float = Field(
        0.15,
        ge=0,
        le=20,
        description="Jitter of the beam-induced motion: standard deviation in Å of each axis's random-walk step "
        "from one motion fraction to the next (a frame of TIFF/MRC movies).",
    )
    tilt_deformation_angstrom: float = Field(
        0.0,
        ge=0,
        le=200,
        description="Amplitude in Å of a smooth deformation of each tilt's image as a whole, different in every "
        "tilt (the specimen bending between exposures, what patch tracking measures); 0 = none.",
    )
    n_complexes: int | None = Field(
        None, ge=0, le=100000, description="Complexes per detector field of view; default: the preset's."
    )
    n_vesicles: int | None = Field(
        None, ge=0, le=1000, description="Vesicles per detector field of view; default: the preset's."
    )
    surface_particles_per_um2: float = Field(
        300.0,
        ge=0,
        le=100000,
        description="Contamination (ice crystals, debris of 35-95 Å) resting on each slab surface, per µm²; it "
        "marks the surfaces, as on a real lamella, and is not part of the slab's thickness.",
    )
    crowding_volume_fraction: float = Field(
        0.25,
        ge=0,
        lt=0.6,
        description="Fraction of the ice slab's volume filled by small proteins (45-255 kDa), as cytoplasm is "
        "(0.15-0.3): they give the slab a texture throughout its depth that a reconstruction shows; 0 = none.",
    )
    bad_tilts: int = Field(
        0,
        ge=0,
        le=60,
        description="Bad tilts planted per series (for scoring stack cleaning): kinds cycle shifted (a stage "
        "jump of 20-30 % of the field of view), dark, blurred; never an end, the tilt nearest 0° or two neighbours.",
    )
    seed: int = Field(0, ge=0, description="Random seed: the same seed and options give the same session.")

    @model_validator(mode="after")
    def _ranges(self) -> SimulateParams:
        if self.defocus_min_um > self.defocus_max_um:
            raise ValueError("defocus_min_um must not exceed defocus_max_um")
        if self.thickness_min_angstrom > self.thickness_max_angstrom:
            raise ValueError("thickness_min_angstrom must not exceed thickness_max_angstrom")
        n_tilts = self.n_tilts or PRESETS[self.preset].n_tilts
        from tomoprep.simulate.bad_tilts import max_bad_tilts  # scipy: imported when a session is planned

        if self.bad_tilts > max_bad_tilts(n_tilts):
            raise ValueError(
                f"bad_tilts={self.bad_tilts} does not fit {n_tilts} tilts: they take at most "
                f"{max_bad_tilts(n_tilts)} (never an end, the tilt nearest 0° or two neighbours); "
                "give fewer bad tilts or more tilts"
            )
        return self

    def resolve(self) -> ResolvedParams:
        """The effective values: the preset's where a field is ``None``."""
        preset = PRESETS[self.preset]
        movie_format = self.movie_format or preset.movie_format
        spacing = self.pixel_spacing_angstrom or preset.pixel_spacing_angstrom
        width = self.detector_size_px or preset.detector_size_px
        frames = self.frames_per_tilt or _default_frames(self, preset, movie_format, spacing)
        return ResolvedParams(
            preset=self.preset,
            movie_format=movie_format,
            mdoc_flavour=self.mdoc_flavour,
            n_tilt_series=self.n_tilt_series or preset.n_tilt_series,
            n_tilts=self.n_tilts or preset.n_tilts,
            tilt_step_deg=self.tilt_step_deg or preset.tilt_step_deg,
            frames_per_tilt=frames,
            frames_per_tilt_b=max(frames + 1, round(frames * 1.15)),
            detector_shape_yx=(self.detector_height_px or width, width),
            pixel_spacing_angstrom=spacing,
            n_vesicles=preset.n_vesicles if self.n_vesicles is None else self.n_vesicles,
            n_complexes=preset.n_complexes if self.n_complexes is None else self.n_complexes,
        )


def _default_frames(params: SimulateParams, preset: _Preset, movie_format: MovieFormat, spacing: float) -> int:
    """The preset's frame count, or for EER enough raw frames that a pixel rarely gets two events in one."""
    if movie_format != "eer":
        return preset.frames_per_tilt if preset.movie_format != "eer" else 10
    electrons_per_pixel = params.dose_per_tilt_e_per_angstrom2 * spacing**2
    needed = math.ceil(electrons_per_pixel / EER_ELECTRONS_PER_PIXEL_PER_FRAME / 10) * 10
    return max(preset.frames_per_tilt if preset.movie_format == "eer" else 100, needed)
