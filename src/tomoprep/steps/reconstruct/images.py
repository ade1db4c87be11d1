"""The tilt images a reconstruction back-projects: read one at a time, binned by Fourier cropping to every binning
asked for, exposure-filtered and CTF-corrected in their own frame.

Only one unbinned image is held at a time (a 4K series at bin 4 needs 1/16 of its unbinned stack); the binned
stacks of all binnings are kept, as the tomograms of a run are made from them. Exposure filtering is done on the
binned images: binning keeps every frequency below the new Nyquist unchanged, and the filter is a weight per
frequency, so filtering before or after binning gives the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tomoprep.algorithms.binning import bin_images
from tomoprep.algorithms.dose_filter import dose_filter_stack
from tomoprep.algorithms.reconstruction import TiltProjection
from tomoprep.errors import InputError
from tomoprep.io.mrc import read_mrc
from tomoprep.model import TiltImage, TiltSeries
from tomoprep.steps.tilt_images import image_file, read_tilt_image

#: Which image of a tilt: its sum (or stack section), or the sum of its odd or of its even frames.
ImageReader = Callable[[TiltImage], np.ndarray]


def odd_image(tilt: TiltImage) -> np.ndarray:
    """The sum of the odd frames of ``tilt`` (motion correction's ``rlnMicrographNameOdd``)."""
    return read_mrc(_half_path(tilt, "odd"))


def even_image(tilt: TiltImage) -> np.ndarray:
    """The sum of the even frames of ``tilt`` (``rlnMicrographNameEven``)."""
    return read_mrc(_half_path(tilt, "even"))


def _half_path(tilt: TiltImage, which: str) -> Path:
    path = None if tilt.motion is None else getattr(tilt.motion, f"micrograph_{which}_path")
    if path is None:
        raise InputError(tilt.acquisition.movie_path, f"tilt {tilt.acquisition.acquisition_index} has no {which} "
                         "frame sum.", "run motion correction with --odd-even.")  # fmt: skip
    return Path(path)


def has_halves(tilts: Sequence[TiltImage]) -> bool:
    """Whether every tilt has its odd and even frame sums."""
    return all(t.motion is not None and t.motion.micrograph_odd_path is not None
               and t.motion.micrograph_even_path is not None for t in tilts)  # fmt: skip


def read_binned_stacks(
    tilts: Sequence[TiltImage], binnings: Sequence[int], *, read: ImageReader = read_tilt_image,
    device: torch.device | str = "cpu",
) -> dict[int, torch.Tensor]:  # fmt: skip
    """The images of ``tilts`` binned by each of ``binnings``: ``{b: (n, ny // b, nx // b)}`` float32 tensors.

    Raises
    ------
    InputError
        If the images differ in size, or a binning leaves fewer than one pixel (naming the file or the option).
    """
    stacks: dict[int, torch.Tensor] = {}
    first_shape: tuple[int, ...] | None = None
    for index, tilt in enumerate(tilts):
        image = torch.from_numpy(np.ascontiguousarray(read(tilt), dtype=np.float32)).to(device)
        if first_shape is None:
            first_shape = tuple(image.shape)
            _check_binnings(first_shape, binnings, tilt)
            stacks = {b: torch.empty((len(tilts), first_shape[0] // b, first_shape[1] // b), device=device)
                      for b in binnings}  # fmt: skip
        elif tuple(image.shape) != first_shape:
            raise InputError(image_file(tilt), f"is {image.shape[1]}×{image.shape[0]} px, the series' first image "
                             f"{first_shape[1]}×{first_shape[0]}.",
                             "give every tilt of a series the same image size.")  # fmt: skip
        for b in binnings:
            stacks[b][index] = bin_images(image, b)
        del image  # one unbinned image at a time
    return stacks


def _check_binnings(shape: tuple[int, ...], binnings: Sequence[int], tilt: TiltImage) -> None:
    too_coarse = [b for b in binnings if b > min(shape) // 2]
    if too_coarse:
        raise InputError(image_file(tilt), f"is {shape[1]}×{shape[0]} px: binning {too_coarse[0]} leaves fewer than "
                         "2 pixels.", f"use --binning values up to {min(shape) // 2}.")  # fmt: skip


def dose_filtered(stack: torch.Tensor, ts: TiltSeries, tilts: Sequence[TiltImage], *,
                  pixel_spacing_angstrom: float) -> torch.Tensor:  # fmt: skip
    """``stack`` (one image per tilt of ``tilts``) filtered for each tilt's pre-exposure and dose (known)."""
    return dose_filter_stack(
        stack, pixel_spacing_angstrom,
        pre_exposures_e_per_angstrom2=[float(t.acquisition.pre_exposure_e_per_angstrom2 or 0.0) for t in tilts],
        doses_e_per_angstrom2=[float(t.acquisition.dose_e_per_angstrom2 or 0.0) for t in tilts],
        voltage_kv=ts.optics.voltage_kv,
    )  # fmt: skip


@dataclass(frozen=True)
class CtfCorrection:
    """How to correct the tilt images for the CTF: ``mode`` ``phase_flip`` or ``wiener``, the defocus ``hand``."""

    mode: Literal["phase_flip", "wiener"]
    hand: int
    wiener_snr: float


def ctf_corrected(stack: torch.Tensor, ts: TiltSeries, tilts: Sequence[TiltImage],
                  projections: Sequence[TiltProjection], correction: CtfCorrection, *,
                  pixel_spacing_angstrom: float) -> torch.Tensor:  # fmt: skip
    """``stack`` corrected for each tilt's CTF (its estimate at the tilt's centre) in the images' own frame."""
    from tomoprep.algorithms.ctf_correction import TiltDefocus, correct_ctf  # a separate module, loaded when used

    defoci = [TiltDefocus(t.ctf.defocus_u_angstrom, t.ctf.defocus_v_angstrom, t.ctf.astigmatism_angle_deg,  # type: ignore[union-attr]
                          t.ctf.phase_shift_deg) for t in tilts]  # type: ignore[union-attr]  # fmt: skip
    # The CTF step fits each tilt's defocus at the image's centre pixel, where correct_ctf takes it at the projected
    # specimen centre (the image centre plus the shift). The defocus across a tilted plane is affine in the image
    # position, so giving the poses without their shifts makes correct_ctf's reference the image centre: the same
    # field, measured from where the estimate was made.
    centred = [replace(p, shift_x_px=0.0, shift_y_px=0.0) for p in projections]
    return correct_ctf(
        stack, centred, defoci, pixel_spacing_angstrom=pixel_spacing_angstrom,
        voltage_kv=ts.optics.voltage_kv, spherical_aberration_mm=ts.optics.spherical_aberration_mm,
        amplitude_contrast=ts.optics.amplitude_contrast, hand=correction.hand, mode=correction.mode,
        wiener_snr=correction.wiener_snr,
    )  # fmt: skip
