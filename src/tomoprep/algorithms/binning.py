"""Binning of tilt images and stacks by an integer factor, by Fourier cropping (no aliasing).

Reconstruction at bin ``b`` needs images whose pixels are exactly ``b`` times larger and whose centre pixel
(``N // 2``, the conventions' rotation centre) is the same point of the specimen, so that shifts divide by ``b``
and the tilt axis stays where the alignment put it. :func:`tomoprep.algorithms.fourier.fourier_bin` rounds the
size (``round(N / b)``), which for sizes not divisible by ``b`` changes the pixel spacing slightly. Here:

- the output has ``M = N // b`` pixels per axis, of spacing exactly ``b`` input pixels;
- a window of ``b M`` input pixels is cut from each axis, placed so that binned pixel ``M // 2`` lies on input
  pixel ``N // 2``; when ``M`` is odd that point cannot be a window's pixel ``b (M // 2)`` with the window
  inside the image, so the window is the nearest inside and the binned image is moved the remaining fraction
  of a binned pixel (at most 1/2) by a Fourier phase ramp (periodic: the content of the edge pixel wraps);
- the window is Fourier-cropped (:func:`tomoprep.algorithms.fourier.fourier_crop`): every frequency below the new
  Nyquist is kept exactly, everything above removed, the mean kept.
"""

from __future__ import annotations

import torch

from tomoprep.algorithms.fourier import fourier_crop, fourier_shift


def binning_window(size_px: int, factor: int) -> tuple[int, int, float]:
    """For one axis of ``size_px`` pixels binned by ``factor``: the window's first pixel, the binned size ``M``,
    and the shift (binned pixels) that puts binned pixel ``M // 2`` on input pixel ``size_px // 2``."""
    if factor < 1 or size_px < factor:
        raise ValueError(f"cannot bin {size_px} pixels by {factor}: the factor must be an integer in 1..{size_px}")
    binned = size_px // factor
    wanted = size_px // 2 - factor * (binned // 2)  # input pixel that binned pixel 0 should lie on
    start = min(max(wanted, 0), size_px - factor * binned)
    return start, binned, (start - wanted) / factor


def bin_images(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Bin ``(..., ny, nx)`` images (one image or a stack) by the integer ``factor`` by Fourier cropping.

    Parameters
    ----------
    images
        ``(..., ny, nx)`` real images, each at least ``factor`` pixels along both axes.
    factor
        Integer binning factor ≥ 1 (1 returns a float32 copy).

    Returns
    -------
    torch.Tensor
        ``(..., ny // factor, nx // factor)`` float32 images of pixel spacing ``factor`` input pixels, binned pixel
        ``(M_y // 2, M_x // 2)`` on input pixel ``(ny // 2, nx // 2)`` (module notes).
    """
    if isinstance(factor, bool) or not isinstance(factor, int):
        raise TypeError(f"the binning factor must be an integer, got {factor!r}")
    start_y, binned_y, shift_y = binning_window(images.shape[-2], factor)
    start_x, binned_x, shift_x = binning_window(images.shape[-1], factor)
    window = images[..., start_y : start_y + factor * binned_y, start_x : start_x + factor * binned_x].float()
    binned = fourier_crop(window, (binned_y, binned_x)) if factor > 1 else window.clone()
    if shift_y or shift_x:
        shifts = torch.tensor([shift_y, shift_x], device=binned.device).expand(*binned.shape[:-2], 2)
        binned = fourier_shift(binned, shifts)
    return binned
