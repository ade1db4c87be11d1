"""A tilt series built from model objects, with small real files for every path it names (images, odd/even sums,
movies, a tomogram and its halves), for the export tests."""

from __future__ import annotations

import math
from pathlib import Path

import mrcfile
import numpy as np

from tomoprep.model import (
    Optics,
    TiltAcquisition,
    TiltAlignment,
    TiltCtf,
    TiltExclusion,
    TiltImage,
    TiltMotion,
    TiltSeries,
    Tomogram,
)

PIXEL_SPACING = 2.5
IMAGE_SHAPE_YX = (48, 64)
#: Tilt angles in acquisition order (dose-symmetric from 0°), degrees.
ANGLES = (0.0, 3.0, -3.0, -6.0, 6.0, 9.0, -9.0)
EXCLUDED = 5  # acquisition index of the excluded tilt (9°)
DOSE = 3.0


def write_image(path: Path, shape: tuple[int, ...], *, spacing: float = PIXEL_SPACING, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = spacing
    return path


def _tilt(k: int, angle: float, folder: Path, name: str) -> TiltImage:
    stem = f"{name}_{k:03d}_{angle:.1f}"
    movie = folder / "frames" / f"{stem}.tif"
    movie.parent.mkdir(parents=True, exist_ok=True)
    movie.write_bytes(b"movie")
    motion = TiltMotion(
        micrograph_path=write_image(folder / "sums" / f"{stem}.mrc", IMAGE_SHAPE_YX, seed=k),
        micrograph_odd_path=write_image(folder / "sums" / f"{stem}_ODD.mrc", IMAGE_SHAPE_YX, seed=100 + k),
        micrograph_even_path=write_image(folder / "sums" / f"{stem}_EVN.mrc", IMAGE_SHAPE_YX, seed=200 + k),
        accumulated_motion_angstrom=(3.0 + k, 1.0, 2.0 + k),
    )
    alignment = TiltAlignment(
        y_tilt_deg=angle + 0.4,
        z_rot_deg=-94.2 + 0.01 * k,
        x_tilt_deg=0.0,
        shift_x_angstrom=12.5 - 3 * k,
        shift_y_angstrom=-7.25 + 2 * k,
    )
    ctf = TiltCtf(
        defocus_u_angstrom=31000.0 + 50 * k,
        defocus_v_angstrom=30500.0 + 50 * k,
        astigmatism_angle_deg=33.0 - k,
        phase_shift_deg=0.0,
        fit_resolution_angstrom=8.5 + k,
        figure_of_merit=0.2 - 0.01 * k,
    )
    acquisition = TiltAcquisition(
        acquisition_index=k,
        section_index=k,
        nominal_tilt_angle_deg=angle,
        pre_exposure_e_per_angstrom2=DOSE * k,
        dose_e_per_angstrom2=DOSE,
        movie_path=movie,
        frame_count=8,
        nominal_defocus_angstrom=30000.0,
    )
    excluded = TiltExclusion("auto: dark") if k == EXCLUDED else None
    return TiltImage(acquisition, motion=motion, exclusion=excluded, alignment=alignment, ctf=ctf)


def built_series(folder: Path, *, name: str = "TS_07", tomogram: bool = True) -> TiltSeries:
    """A motion-corrected, aligned, CTF-estimated series of 7 tilts (one excluded) with a tomogram binned 2×."""
    tilts = tuple(_tilt(k, angle, folder, name) for k, angle in enumerate(ANGLES))
    tomograms: tuple[Tomogram, ...] = ()
    if tomogram:
        size_xyz = (32, 24, 10)
        shape = (size_xyz[2], size_xyz[1], size_xyz[0])
        tomograms = (
            Tomogram(
                path=write_image(folder / "rec" / f"{name}.mrc", shape, spacing=2 * PIXEL_SPACING),
                binning=2.0,
                voxel_spacing_angstrom=2 * PIXEL_SPACING,
                size_xyz=size_xyz,
                half1_path=write_image(folder / "rec" / f"{name}_half1.mrc", shape, spacing=2 * PIXEL_SPACING),
                half2_path=write_image(folder / "rec" / f"{name}_half2.mrc", shape, spacing=2 * PIXEL_SPACING),
            ),
            Tomogram(
                path=folder / "rec" / f"{name}_bin4.mrc",
                binning=4.0,
                voxel_spacing_angstrom=4 * PIXEL_SPACING,
                size_xyz=(16, 12, 5),
            ),
        )
    return TiltSeries(
        name=name,
        original_pixel_spacing_angstrom=PIXEL_SPACING / 2,
        optics=Optics(voltage_kv=300.0, spherical_aberration_mm=2.7, amplitude_contrast=0.07, optics_group_name="og1"),
        tilts=tilts,
        nominal_tilt_axis_angle_deg=-94.0,
        hand=1,
        tilt_series_pixel_spacing_angstrom=PIXEL_SPACING,
        specimen_thickness_angstrom=61.0,
        tomograms=tomograms,
    )


def cos_deg(angle: float) -> float:
    return math.cos(math.radians(angle))
