"""Fourier-space helpers shared by the numerical kernels.

Conventions (every function here follows them):

- Images are real ``(..., y, x)`` tensors; their spectra are the half spectra of :func:`torch.fft.rfft2`,
  ``(..., y, x // 2 + 1)``, with the zero frequency at index ``[0, 0]`` (not centred).
- Spatial frequencies are :func:`torch.fft.fftfreq` along y and :func:`torch.fft.rfftfreq` along x, in cycles per
  pixel, or in 1/Å where a pixel spacing is given.
- A shift ``(dy, dx)`` in pixels moves the image content by ``+dy`` rows and ``+dx`` columns:
  ``out(y, x) = in(y - dy, x - dx)``, periodically.
- A cross-correlation map (:mod:`tomoprep.algorithms.correlation`) has zero shift at index ``[0, 0]``; index
  ``i`` along an axis of length ``n`` stands for the shift ``i`` if ``i < n / 2`` and ``i - n`` otherwise.
"""

from __future__ import annotations

import itertools
import math

import torch

Device = torch.device | str | None

#: (voltage kV, factor on the critical exposure) from Grant & Grigorieff (2015); linear in between.
_VOLTAGE_FACTORS = ((100.0, 0.64), (200.0, 0.8), (300.0, 1.0))


def rfft_frequencies(
    shape_yx: tuple[int, int], *, pixel_spacing_angstrom: float = 1.0, device: Device = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies of an rfft2 half spectrum, as broadcastable columns and rows.

    Parameters
    ----------
    shape_yx
        Real-space image shape ``(ny, nx)`` in pixels.
    pixel_spacing_angstrom
        Pixel spacing in Å; leave at 1 for cycles per pixel.
    device
        Where the tensors are created.

    Returns
    -------
    (ky, kx)
        ``ky`` of shape ``(ny, 1)`` and ``kx`` of shape ``(1, nx // 2 + 1)``, float32, in 1/Å (cycles/pixel at 1 Å).
    """
    ny, nx = shape_yx
    ky = torch.fft.fftfreq(ny, d=pixel_spacing_angstrom, device=device).reshape(ny, 1)
    kx = torch.fft.rfftfreq(nx, d=pixel_spacing_angstrom, device=device).reshape(1, nx // 2 + 1)
    return ky, kx


def rfft_squared_frequencies(
    shape_yx: tuple[int, int], *, pixel_spacing_angstrom: float = 1.0, device: Device = None
) -> torch.Tensor:
    """``|k|²`` on the rfft2 grid of an image of ``shape_yx``, ``(ny, nx // 2 + 1)``, in 1/Å² (1/px² at 1 Å)."""
    ky, kx = rfft_frequencies(shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom, device=device)
    return ky * ky + kx * kx


def _shape_from_spectrum(spectrum: torch.Tensor, shape_yx: tuple[int, int] | None) -> tuple[int, int]:
    if shape_yx is not None:
        if spectrum.shape[-2] != shape_yx[0] or spectrum.shape[-1] != shape_yx[1] // 2 + 1:
            raise ValueError(f"spectrum of shape {tuple(spectrum.shape)} is not the rfft2 of an image of {shape_yx}")
        return shape_yx
    return spectrum.shape[-2], 2 * (spectrum.shape[-1] - 1)


def shift_phase_ramp(shape_yx: tuple[int, int], shifts_px: torch.Tensor, *, device: Device = None) -> torch.Tensor:
    """Phase ramps ``exp(-2πi k·shift)`` on the rfft2 grid that move images of ``shape_yx`` by ``shifts_px``.

    Parameters
    ----------
    shape_yx
        Real-space shape ``(ny, nx)``.
    shifts_px
        ``(..., 2)`` shifts ``(dy, dx)`` in pixels.
    device
        Where the ramps are created; by default that of ``shifts_px``.

    Returns
    -------
    torch.Tensor
        ``(..., ny, nx // 2 + 1)`` complex64 ramps.
    """
    phase_y, phase_x = _phase_rows(shape_yx, shifts_px, device if device is not None else shifts_px.device)
    return phase_y.unsqueeze(-1) * phase_x.unsqueeze(-2)


def _phase_rows(
    shape_yx: tuple[int, int], shifts_px: torch.Tensor, device: Device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two factors of the separable phase ramp: ``(..., ny)`` along y and ``(..., nx // 2 + 1)`` along x."""
    ky, kx = rfft_frequencies(shape_yx, device=device)
    shifts = shifts_px.to(device=ky.device, dtype=torch.float32)
    angle_y = -2 * math.pi * ky[:, 0] * shifts[..., 0:1]
    angle_x = -2 * math.pi * kx[0] * shifts[..., 1:2]
    return torch.polar(torch.ones_like(angle_y), angle_y), torch.polar(torch.ones_like(angle_x), angle_x)


def shift_rfft_(spectrum: torch.Tensor, shift_px: torch.Tensor, *, shape_yx: tuple[int, int]) -> torch.Tensor:
    """Move the image of one ``(ny, nx // 2 + 1)`` half spectrum by ``shift_px`` ``(dy, dx)``, in place.

    The phase ramp is separable, so it is applied as a column and a row of phases: no full-size ramp is made
    (15 against 10 ms on a 4096² spectrum on two cores). Same result as :func:`fourier_shift_rfft`.
    """
    phase_y, phase_x = _phase_rows(shape_yx, shift_px, spectrum.device)
    return spectrum.mul_(phase_y[:, None]).mul_(phase_x[None, :])


def fourier_shift_rfft(
    spectrum: torch.Tensor, shifts_px: torch.Tensor, *, shape_yx: tuple[int, int] | None = None
) -> torch.Tensor:
    """Multiply half spectra by the phase ramp that moves their images by ``shifts_px``.

    Parameters
    ----------
    spectrum
        ``(..., ny, nx // 2 + 1)`` complex rfft2 spectra.
    shifts_px
        ``(..., 2)`` shifts ``(dy, dx)`` in pixels, broadcastable against the leading dimensions of ``spectrum``.
    shape_yx
        Real-space shape; by default ``nx`` is taken as even (``2 * (width - 1)``).

    Returns
    -------
    torch.Tensor
        Shifted spectra, same shape as ``spectrum`` (a new tensor).
    """
    ramp = shift_phase_ramp(_shape_from_spectrum(spectrum, shape_yx), shifts_px, device=spectrum.device)
    return spectrum * ramp.to(spectrum.dtype)


def fourier_shift(images: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Shift real images by sub-pixel amounts through their Fourier transform (periodic boundaries).

    Parameters
    ----------
    images
        ``(..., y, x)`` real images.
    shifts_px
        ``(..., 2)`` shifts ``(dy, dx)`` in pixels: the content moves by ``+shift``.

    Returns
    -------
    torch.Tensor
        Shifted images, ``(..., y, x)``.
    """
    shape_yx = (images.shape[-2], images.shape[-1])
    spectrum = torch.fft.rfft2(images)
    return torch.fft.irfft2(fourier_shift_rfft(spectrum, shifts_px, shape_yx=shape_yx), s=shape_yx)


def crop_rfft(spectrum: torch.Tensor, *, shape_yx: tuple[int, int], new_shape_yx: tuple[int, int]) -> torch.Tensor:
    """Keep the low frequencies of half spectra: Fourier cropping from ``shape_yx`` to ``new_shape_yx``.

    The values are scaled by ``(new_ny * new_nx) / (ny * nx)``, so the inverse transform at the new shape keeps
    the mean of the image (binning by averaging). Pixel 0 of the cropped image lies on pixel 0 of the original,
    and its pixel spacing is ``ny / new_ny`` (``nx / new_nx``) times the original.

    Parameters
    ----------
    spectrum
        ``(..., ny, nx // 2 + 1)`` complex rfft2 spectra.
    shape_yx
        Real-space shape ``(ny, nx)`` of ``spectrum``.
    new_shape_yx
        Real-space shape after cropping, each no larger than ``shape_yx``.

    Returns
    -------
    torch.Tensor
        ``(..., new_ny, new_nx // 2 + 1)`` spectra.
    """
    ny, nx = _shape_from_spectrum(spectrum, shape_yx)
    my, mx = new_shape_yx
    if not (0 < my <= ny and 0 < mx <= nx):
        raise ValueError(f"cannot Fourier-crop {shape_yx} to {new_shape_yx}: each new size must be in 1..old size")
    positive = spectrum[..., : (my + 1) // 2, : mx // 2 + 1]
    negative = spectrum[..., ny - my // 2 :, : mx // 2 + 1]
    return torch.cat([positive, negative], dim=-2) * ((my * mx) / (ny * nx))


def fourier_crop(images: torch.Tensor, new_shape_yx: tuple[int, int]) -> torch.Tensor:
    """Resample real images ``(..., y, x)`` to the smaller ``new_shape_yx`` by Fourier cropping (keeps the mean)."""
    shape_yx = (images.shape[-2], images.shape[-1])
    # The columns dropped by the crop are never transformed along y: rfft2 is an rfft along x and then an fft
    # along y, column by column, so this is rfft2 followed by crop_rfft at 60% of the cost on 4096² -> 1024².
    (ny, nx), (my, mx) = shape_yx, new_shape_yx
    if not (0 < my <= ny and 0 < mx <= nx):
        raise ValueError(f"cannot Fourier-crop {shape_yx} to {new_shape_yx}: each new size must be in 1..old size")
    spectrum = torch.fft.fft(torch.fft.rfft(images, dim=-1)[..., : mx // 2 + 1], dim=-2)
    kept = torch.cat([spectrum[..., : (my + 1) // 2, :], spectrum[..., ny - my // 2 :, :]], dim=-2)
    return torch.fft.irfft2(kept.mul_((my * mx) / (ny * nx)), s=new_shape_yx)


def binned_shape(shape_yx: tuple[int, int], factor: float) -> tuple[int, int]:
    """Shape after binning by ``factor`` (≥ 1, non-integer allowed): ``round(n / factor)`` per axis, at least 1.

    The pixel spacing of the binned image is ``n / new_n`` times the original per axis, which differs slightly
    from ``factor`` when ``n / factor`` is not a whole number.
    """
    if factor < 1:
        raise ValueError(f"binning factor {factor} is below 1; Fourier binning only shrinks images")
    return max(1, round(shape_yx[0] / factor)), max(1, round(shape_yx[1] / factor))


def irfft2_consuming(spectrum: torch.Tensor, shape_yx: tuple[int, int]) -> torch.Tensor:
    """:func:`torch.fft.irfft2` of ``(..., y, x // 2 + 1)`` half spectra that the caller no longer needs (they
    may be overwritten).

    On the CPU the transform is pocketfft's (scipy, on torch's number of threads, in place): 53 against 79 ms
    (medians) for torch's on a 4096² image on two cores. Elsewhere it is torch's own.
    """
    if spectrum.device.type != "cpu" or spectrum.dtype != torch.complex64:
        return torch.fft.irfft2(spectrum, s=shape_yx)
    import scipy.fft

    threads = torch.get_num_threads()
    image = scipy.fft.irfft2(spectrum.resolve_conj().numpy(), s=shape_yx, workers=threads, overwrite_x=True)
    return torch.from_numpy(image)


def fourier_bin(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Bin real images ``(..., y, x)`` by ``factor`` (non-integer allowed) by Fourier cropping; keeps the mean.

    The output shape is :func:`binned_shape`; the content is band-limited to the new Nyquist frequency.
    """
    return fourier_crop(images, binned_shape((images.shape[-2], images.shape[-1]), factor))


def bfactor_filter(
    spectrum: torch.Tensor,
    bfactor_angstrom2: float,
    pixel_spacing_angstrom: float,
    *,
    shape_yx: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Multiply half spectra by the amplitude B-factor envelope ``exp(-B |k|² / 4)``.

    Parameters
    ----------
    spectrum
        ``(..., ny, nx // 2 + 1)`` complex (or real) rfft2 spectra.
    bfactor_angstrom2
        B-factor in Å²; positive values damp high frequencies (a low-pass), negative values sharpen. With
        ``pixel_spacing_angstrom=1`` this is a B-factor in px².
    pixel_spacing_angstrom
        Pixel spacing in Å.
    shape_yx
        Real-space shape; by default ``nx`` is taken as even.

    Returns
    -------
    torch.Tensor
        Filtered spectra (a new tensor).
    """
    shape = _shape_from_spectrum(spectrum, shape_yx)
    k2 = rfft_squared_frequencies(shape, pixel_spacing_angstrom=pixel_spacing_angstrom, device=spectrum.device)
    return spectrum * torch.exp(-bfactor_angstrom2 * k2 / 4)


def _taper_ramp(n: int, width_px: int, device: Device) -> torch.Tensor:
    """Raised-cosine profile of length ``n`` rising over ``width_px`` samples at both ends."""
    distance = torch.minimum(torch.arange(n, device=device), torch.arange(n - 1, -1, -1, device=device))
    ramp = (distance.float() + 0.5) / max(width_px, 1)
    return torch.where(ramp < 1, 0.5 - 0.5 * torch.cos(math.pi * ramp), torch.ones_like(ramp))


def edge_taper(shape_yx: tuple[int, int], width_px: int, *, device: Device = None) -> torch.Tensor:
    """Window ``(y, x)`` that rises from 0 to 1 over ``width_px`` pixels at every edge (raised cosine).

    Multiply mean-subtracted images by it before an FFT so their periodic wrap does not add a false signal.
    """
    return _taper_ramp(shape_yx[0], width_px, device)[:, None] * _taper_ramp(shape_yx[1], width_px, device)[None, :]


def taper_edges(images: torch.Tensor, width_px: int) -> torch.Tensor:
    """``(images - mean) * edge_taper(...)`` for ``(..., y, x)`` images, touching only the border strips.

    The mean of each image is subtracted first, so the taper adds no static pattern of its own. Returns a new
    float32 tensor.
    """
    ny, nx = images.shape[-2], images.shape[-1]
    out = images.float() - images.float().mean(dim=(-2, -1), keepdim=True)
    wy, wx = min(width_px, ny // 2), min(width_px, nx // 2)
    ramp_y, ramp_x = _taper_ramp(ny, width_px, images.device), _taper_ramp(nx, width_px, images.device)
    for rows in (slice(0, wy), slice(ny - wy, ny)):
        out[..., rows, :] *= ramp_y[rows, None]
    for cols in (slice(0, wx), slice(nx - wx, nx)):
        out[..., :, cols] *= ramp_x[None, cols]
    return out


def _voltage_factor(voltage_kv: float) -> float:
    kvs, factors = zip(*_VOLTAGE_FACTORS, strict=True)
    if not kvs[0] <= voltage_kv <= kvs[-1]:
        raise ValueError(
            f"voltage {voltage_kv} kV is outside {kvs[0]:g}-{kvs[-1]:g} kV, where the critical exposure is known"
        )
    for (v0, f0), (v1, f1) in itertools.pairwise(_VOLTAGE_FACTORS):
        if voltage_kv <= v1:
            return f0 + (f1 - f0) * (voltage_kv - v0) / (v1 - v0)
    return factors[-1]


def critical_exposure(k_per_angstrom: torch.Tensor, *, voltage_kv: float = 300.0) -> torch.Tensor:
    """Grant & Grigorieff (2015) critical exposure ``Ne(k) = (0.245 k^-1.665 + 2.81) f(V)`` in e⁻/Å².

    ``k`` is the spatial frequency in 1/Å; ``f(V)`` is 1 at 300 kV, 0.8 at 200 kV and 0.64 at 100 kV, linear in
    between (the dose is ``1/f`` times as damaging at lower voltage). ``k = 0`` gives ``inf``.
    """
    k = k_per_angstrom.float()
    return (0.245 * k.pow(-1.665) + 2.81) * _voltage_factor(voltage_kv)


def dose_weights(
    shape_yx: tuple[int, int],
    pixel_spacing_angstrom: float,
    *,
    pre_exposure_e_per_angstrom2: float,
    dose_e_per_angstrom2: float,
    voltage_kv: float = 300.0,
    device: Device = None,
) -> torch.Tensor:
    """Radiation-damage weights of one frame on the rfft2 grid (Grant & Grigorieff 2015).

    The attenuation after an exposure ``N`` is ``exp(-N / (2 Ne(k)))`` (:func:`critical_exposure`). The weight of
    a frame is its mean over the exposure received during the frame, from ``pre`` to ``pre + dose``:
    ``exp(-pre / 2Ne) (1 - exp(-dose / 2Ne)) / (dose / 2Ne)``; at ``dose = 0`` it is ``exp(-pre / 2Ne)``. The
    weight is 1 at ``k = 0`` and falls with frequency and exposure. To sum frames as MotionCor2 and Unblur do,
    divide ``Σ w_i F_i`` by ``sqrt(Σ w_i²)`` per frequency (see ``tomoprep.algorithms.motion.align_and_sum``).

    Parameters
    ----------
    shape_yx
        Real-space image shape ``(ny, nx)``.
    pixel_spacing_angstrom
        Pixel spacing of the image in Å.
    pre_exposure_e_per_angstrom2
        Exposure the specimen received before this frame, e⁻/Å².
    dose_e_per_angstrom2
        Exposure during this frame, e⁻/Å² (≥ 0).
    voltage_kv
        Acceleration voltage, 100-300 kV.
    device
        Where the weights are created.

    Returns
    -------
    torch.Tensor
        ``(ny, nx // 2 + 1)`` float32 weights in (0, 1].
    """
    k = rfft_squared_frequencies(shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom, device=device).sqrt()
    return exposure_weights(
        critical_exposure(k, voltage_kv=voltage_kv),
        pre_exposure_e_per_angstrom2=pre_exposure_e_per_angstrom2,
        dose_e_per_angstrom2=dose_e_per_angstrom2,
    )


def exposure_attenuation(
    critical_exposure_e_per_angstrom2: torch.Tensor, exposure_e_per_angstrom2: float
) -> torch.Tensor:
    """Grant & Grigorieff's attenuation ``exp(-N / (2 Ne))`` after an exposure ``N`` (e⁻/Å²), on any grid of
    critical exposures ``Ne`` (:func:`critical_exposure`)."""
    return torch.exp(critical_exposure_e_per_angstrom2.reciprocal() * (-0.5 * exposure_e_per_angstrom2))


def exposure_weights(
    critical_exposure_e_per_angstrom2: torch.Tensor,
    *,
    pre_exposure_e_per_angstrom2: float,
    dose_e_per_angstrom2: float,
) -> torch.Tensor:
    """The weights of :func:`dose_weights` from a precomputed grid of critical exposures (any shape, e⁻/Å²).

    Compute the grid once with :func:`critical_exposure` and call this per frame or per tilt. With
    ``pre_exposure_e_per_angstrom2=0`` it gives the frame's averaging factor alone, which
    ``exposure_attenuation(pre) * exposure_weights(pre=0, dose)`` turns into the full weight.
    """
    if dose_e_per_angstrom2 < 0 or pre_exposure_e_per_angstrom2 < 0:
        raise ValueError(
            f"exposures must be ≥ 0, got pre-exposure {pre_exposure_e_per_angstrom2} and dose {dose_e_per_angstrom2}"
        )
    during = critical_exposure_e_per_angstrom2.reciprocal() * (0.5 * dose_e_per_angstrom2)
    mean_over_frame = torch.where(during > 1e-6, -torch.expm1(-during) / during.clamp_min(1e-6), 1 - during / 2)
    if pre_exposure_e_per_angstrom2 == 0:
        return mean_over_frame
    return exposure_attenuation(critical_exposure_e_per_angstrom2, pre_exposure_e_per_angstrom2) * mean_over_frame
