"""Reading the tilt images of a series for the steps that work on images (cleaning, alignment).

A tilt's image is its motion-corrected micrograph (``rlnMicrographName``) or, for a series imported from a
tilt stack, its section of that stack. Images are Fourier-binned on reading to a working pixel spacing, so a
4K series fits in memory at the sizes alignment needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tomoprep.algorithms.fourier import binned_shape, fourier_bin, fourier_crop
from tomoprep.errors import InputError
from tomoprep.io.mrc import read_mrc
from tomoprep.model import TiltImage, TiltSeries


@dataclass(frozen=True)
class TiltStack:
    """Images of some tilts of a series at a working pixel spacing.

    Attributes
    ----------
    images
        ``(n, ny, nx)`` float32 tensor, one image per entry of ``tilts``.
    tilts
        The tilts, in the order of ``images``.
    pixel_spacing_angstrom
        Pixel spacing of ``images`` (Å).
    binning
        Working binning relative to the series' images (``pixel_spacing / tilt_series_pixel_spacing``).
    source_shape_yx
        Shape of the series' images before binning.
    """

    images: torch.Tensor
    tilts: tuple[TiltImage, ...]
    pixel_spacing_angstrom: float
    binning: float
    source_shape_yx: tuple[int, int]


def rebin(stack: TiltStack, *, target_size_px: int, min_pixel_spacing_angstrom: float = 0.0) -> TiltStack:
    """``stack`` binned further, as :func:`read_tilt_stack` would have read it with these targets (no reading).

    The binning is chosen from the source images as there; a stack already at least that coarse is returned.
    """
    source_spacing = stack.pixel_spacing_angstrom / stack.binning
    binning = working_binning(
        stack.source_shape_yx,
        pixel_spacing_angstrom=source_spacing,
        target_size_px=target_size_px,
        min_pixel_spacing_angstrom=min_pixel_spacing_angstrom,
    )
    if binning <= stack.binning:
        return stack
    shape = binned_shape(stack.source_shape_yx, binning)
    images = fourier_crop(stack.images, shape)
    actual = source_spacing * stack.source_shape_yx[1] / shape[1]
    return replace(stack, images=images, pixel_spacing_angstrom=actual, binning=actual / source_spacing)


def image_file(tilt: TiltImage) -> Path | None:
    """The file holding the image of ``tilt``: its imported stack, else its motion-corrected sum, else ``None``."""
    if tilt.acquisition.stack_path is not None:
        return tilt.acquisition.stack_path
    return None if tilt.motion is None else tilt.motion.micrograph_path


def has_image(tilt: TiltImage) -> bool:
    """Whether ``tilt`` has an image to read (a micrograph or a stack section)."""
    return image_file(tilt) is not None


def read_tilt_image(tilt: TiltImage) -> np.ndarray:
    """The image of one tilt, ``(ny, nx)`` float32.

    Raises
    ------
    InputError
        If the tilt has neither a micrograph nor a stack section (motion correction not run).
    ImageFileError
        If the file is missing, truncated or not MRC.
    """
    acquisition = tilt.acquisition
    if acquisition.stack_path is not None:
        return read_mrc(acquisition.stack_path, sections=[acquisition.section_index])[0]
    if tilt.motion is not None:
        return read_mrc(tilt.motion.micrograph_path)
    raise InputError(
        acquisition.movie_path,
        f"tilt {acquisition.acquisition_index} ({acquisition.nominal_tilt_angle_deg:+.1f}°) has no image yet.",
        "run motion correction first (tomoprep motioncorr), or import a tilt stack.",
    )


def series_pixel_spacing(ts: TiltSeries) -> float:
    """Pixel spacing of the series' images (Å): the tilt-series spacing, or the original one."""
    return ts.tilt_series_pixel_spacing_angstrom or ts.original_pixel_spacing_angstrom


def working_binning(shape_yx: tuple[int, int], *, pixel_spacing_angstrom: float, target_size_px: int,
                    min_pixel_spacing_angstrom: float = 0.0) -> float:  # fmt: skip
    """Binning that brings the longer side to at most ``target_size_px`` and the spacing to at least the minimum.

    Returns
    -------
    float
        A whole binning factor ≥ 1 (whole factors keep the pixel grid of the binned images simple).
    """
    by_size = max(shape_yx) / target_size_px
    by_spacing = min_pixel_spacing_angstrom / pixel_spacing_angstrom
    return float(max(1, math.ceil(max(by_size, by_spacing) - 1e-6)))


def read_tilt_stack(
    ts: TiltSeries,
    tilts: Sequence[TiltImage],
    *,
    target_size_px: int = 512,
    min_pixel_spacing_angstrom: float = 0.0,
    device: torch.device | str = "cpu",
) -> TiltStack:
    """Read and Fourier-bin the images of ``tilts`` of ``ts`` (all the same size).

    Parameters
    ----------
    ts
        The series (for its pixel spacing).
    tilts
        Which tilts to read, in the order wanted.
    target_size_px
        Images are binned by a whole factor until their longer side is at most this.
    min_pixel_spacing_angstrom
        ... and their pixel spacing at least this (Å).
    device
        Where the stack is kept.

    Raises
    ------
    InputError
        If no tilt is given or the images differ in size (naming the first that differs).
    """
    if not tilts:
        raise InputError(None, f"tilt series {ts.name} has no tilt images to read.", "include some tilts.")
    spacing = series_pixel_spacing(ts)
    first = read_tilt_image(tilts[0])
    binning = working_binning(first.shape, pixel_spacing_angstrom=spacing, target_size_px=target_size_px,
                              min_pixel_spacing_angstrom=min_pixel_spacing_angstrom)  # fmt: skip
    shape = binned_shape(first.shape, binning)
    images = torch.empty((len(tilts), *shape), dtype=torch.float32, device=device)
    for index, tilt in enumerate(tilts):
        image = first if index == 0 else read_tilt_image(tilt)
        if image.shape != first.shape:
            raise InputError(
                image_file(tilt),
                f"is {image.shape[1]}×{image.shape[0]} px, the series' first image {first.shape[1]}×{first.shape[0]}.",
                "give every tilt of a series the same image size.",
            )
        images[index] = fourier_bin(torch.from_numpy(np.ascontiguousarray(image)).to(device), binning)
    actual = spacing * first.shape[1] / shape[1]
    return TiltStack(images=images, tilts=tuple(tilts), pixel_spacing_angstrom=actual, binning=actual / spacing,
                     source_shape_yx=(first.shape[0], first.shape[1]))  # fmt: skip
