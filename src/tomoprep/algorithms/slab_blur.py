"""A thin slab's thickness through a blur measured apart from it.

Where a slab is only a few times thicker than its content's particles, a box with blurred edges fits its
content profile along z (:mod:`.specimen_slab`) equally well as a wide box with sharp faces or as a narrow box
blurred by a third of its width: the width and the blur trade against each other. The blur is learnt here
instead, without the slab: a flat sheet of particle centres, with the specimen's own power spectrum in the
plane of the slices, is projected through the same tilts and reconstructed with the same weighting; its mean
content profile along z (the "kernel") is the profile of an infinitely thin slab, the particles' own depth and
the missing wedge's elongation together. The slab's profile is then fitted by a box convolved with that kernel,
only the box's width and centre (and the floor and height) free.

Slices follow :mod:`tomoprep.algorithms.backprojection`: ``(ny, nz, nx)``, centred on ``N // 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tomoprep.algorithms.backprojection import backproject, filter_rows, project, weighting_filter

#: Rows of the synthetic sheet (its statistics do not change along y; fewer rows, less work).
SHEET_ROWS = 64
#: Fraction of the synthetic reconstruction, along x and y, whose profile is the kernel (its edges see few tilts).
KERNEL_CENTRAL_FRACTION = 0.5
#: Steps of the width and centre tried, voxels.
GRID_STEP_VOXELS = 0.25


def specimen_power(images: torch.Tensor, *, noise_from: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """The specimen's power spectrum in the plane of the slab, from untilted (or nearly) images ``(n, ny, nx)``:
    bin frequencies (cycles/pixel) and mean power, radially averaged, less the white noise's floor (the mean
    power beyond ``noise_from`` cycles/pixel, where particles of a pixel or more have none).

    The images, not the reconstruction: weighted back projection boosts every row's high frequencies by the
    ramp, and particles measured there came out small (a 12-voxel slab of blobs 14-19 % too thick)."""
    centred = images.double() - images.double().mean(dim=(-2, -1), keepdim=True)
    power = (torch.fft.fft2(centred).abs() ** 2).mean(dim=0)
    ky = torch.fft.fftfreq(images.shape[-2], dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(images.shape[-1], dtype=torch.float64)[None, :]
    radius = torch.sqrt(ky**2 + kx**2).reshape(-1).numpy()
    edges = np.linspace(0.0, 0.75, 76)
    index = np.clip(np.digitize(radius, edges) - 1, 0, edges.size - 2)
    total = np.bincount(index, weights=power.reshape(-1).numpy(), minlength=edges.size - 1)
    count = np.bincount(index, minlength=edges.size - 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = count > 0
    centres, mean = centres[filled], total[filled] / count[filled]
    noise = float(mean[(centres > noise_from) & (centres <= 0.5)].mean()) if (centres > noise_from).any() else 0.0
    return centres, np.clip(mean - noise, 0.0, None)


def content_kernel(slices: torch.Tensor, tilts_deg: Sequence[float], *, power: tuple[np.ndarray, np.ndarray],
                   content, seed: int = 0) -> np.ndarray:  # fmt: skip
    """Mean content profile ``(nz,)`` of a flat sheet of particles at ``z = 0`` reconstructed like ``slices``.

    Parameters
    ----------
    slices
        ``(ny, nz, nx)`` the reconstruction (ramp weighting) whose slab is measured.
    tilts_deg
        ``(n,)`` the tilts it was reconstructed from, degrees.
    power
        The specimen's power spectrum in the slab's plane (:func:`specimen_power`): the particles' size.
    content
        The content measure of the slices (:func:`.specimen_slab.content`).
    seed
        Seed of the sheet's random particles.

    Returns
    -------
    np.ndarray
        ``(nz,)`` the kernel, its floor removed and its sum 1; its centre at index ``nz // 2``.
    """
    _, nz, nx = slices.shape
    frequencies, spectrum = power
    generator = torch.Generator().manual_seed(seed)
    sheet = torch.zeros(SHEET_ROWS, nz, nx, dtype=torch.float32)
    sheet[:, nz // 2, :] = torch.randn(SHEET_ROWS, nx, generator=generator)
    ky = torch.fft.fftfreq(SHEET_ROWS)[:, None, None]
    kz = torch.fft.fftfreq(nz)[None, :, None]
    kx = torch.fft.rfftfreq(nx)[None, None, :]
    radius = torch.sqrt(ky**2 + kz**2 + kx**2).numpy()
    # Particles of the specimen's own (isotropic) spectrum, centred on the sheet.
    amplitude = torch.from_numpy(np.interp(radius, frequencies, np.sqrt(spectrum), right=0.0)).float()
    volume = torch.fft.irfftn(torch.fft.rfftn(sheet) * amplitude, s=sheet.shape)
    images = torch.stack([project(volume, float(t)) for t in tilts_deg])
    images = images - images.mean(dim=(-2, -1), keepdim=True)
    weight = weighting_filter((SHEET_ROWS, nx), kind="ramp", lowpass=0.45, n_tilts=len(tilts_deg))
    reconstruction = backproject(filter_rows(images, weight), tilts_deg, nz=nz)
    rows = _central(SHEET_ROWS, KERNEL_CENTRAL_FRACTION)
    columns = _central(nx, KERNEL_CENTRAL_FRACTION)
    profile = content(reconstruction)[rows, :, columns].mean(dim=(0, 2)).double().numpy()
    ends = max(1, nz // 8)
    profile = profile - float(np.median(np.concatenate([profile[:ends], profile[-ends:]])))
    return profile / max(float(profile.sum()), 1e-30)


def _central(n: int, fraction: float) -> slice:
    half = max(1, round(n * fraction / 2))
    return slice(max(0, n // 2 - half), min(n, n // 2 + half))


def fit_blurred_box(profile: np.ndarray, kernel: np.ndarray, *, width0: float, centre0: float,
                    centre_range_voxels: float = 8.0) -> tuple[float, float]:  # fmt: skip
    """Width and centre (voxels, centre relative to ``nz // 2``) of the box that, convolved with ``kernel``, fits
    ``profile`` (floor and height by linear least squares) best.

    Widths from a third of ``width0`` to two and a half times it and centres within 8 voxels of ``centre0`` are
    tried on a grid of :data:`GRID_STEP_VOXELS`; ``nan`` for a width at an end of that range (no box fits).
    """
    profile = np.asarray(profile, dtype=np.float64)
    nz = profile.size
    z = np.arange(nz) - nz // 2
    spectrum = np.fft.rfft(np.roll(kernel, -(nz // 2)))
    widths = np.arange(max(1.0, width0 / 3), 2.5 * width0 + 4, GRID_STEP_VOXELS)
    centres = centre0 + np.arange(-centre_range_voxels, centre_range_voxels + 1e-9, GRID_STEP_VOXELS)
    centred = profile - profile.mean()
    best = (np.inf, np.nan, np.nan)
    for width in widths:
        box = np.clip(0.5 * width - np.abs(z) + 0.5, 0.0, 1.0)  # edges at ±width/2, antialiased
        blurred = np.fft.irfft(np.fft.rfft(box) * spectrum, n=nz)
        models = np.stack([np.interp(z - c, z, blurred, left=0.0, right=0.0) for c in centres])
        q = models - models.mean(axis=1, keepdims=True)
        beta = np.clip((q @ centred) / np.maximum((q * q).sum(axis=1), 1e-30), 0, None)
        misfit = (centred @ centred) - 2 * beta * (q @ centred) + beta**2 * (q * q).sum(axis=1)
        k = int(np.argmin(misfit))
        if misfit[k] < best[0]:
            best = (float(misfit[k]), float(width), float(centres[k]))
    _, width, centre = best
    if not widths[0] < width < widths[-1]:
        return float("nan"), centre
    return width, centre
