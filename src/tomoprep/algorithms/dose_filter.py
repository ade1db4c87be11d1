"""Exposure (dose) filtering of the tilt images of a series before reconstruction (Grant & Grigorieff 2015).

Each tilt image is multiplied, frequency by frequency, by the mean attenuation over the exposure it received,
``exp(-pre / 2Ne(k)) · (1 - exp(-dose / 2Ne(k))) / (dose / 2Ne(k))``, where ``pre`` is the exposure of the
specimen before the tilt (the earlier tilts), ``dose`` the tilt's own exposure and ``Ne(k)`` the critical
exposure. The weights are those of :func:`tomoprep.algorithms.fourier.dose_weights`, shared with the
dose-weighted movie sums of :mod:`tomoprep.algorithms.summing`; here they carry the pre-exposure in full, since
across tilts it is the point (late tilts lose their high frequencies).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tomoprep.algorithms.fourier import critical_exposure, exposure_weights, rfft_squared_frequencies


def dose_filter_stack(
    images: torch.Tensor,
    pixel_spacing_angstrom: float,
    *,
    pre_exposures_e_per_angstrom2: Sequence[float],
    doses_e_per_angstrom2: Sequence[float] | float,
    voltage_kv: float = 300.0,
) -> torch.Tensor:
    """Exposure-filter each tilt image of a stack with its own pre-exposure and dose.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images (any order).
    pixel_spacing_angstrom
        Pixel spacing of the images, Å.
    pre_exposures_e_per_angstrom2
        ``(n,)`` exposure before each tilt (RELION's ``rlnMicrographPreExposure``), e⁻/Å², ≥ 0.
    doses_e_per_angstrom2
        ``(n,)`` exposure during each tilt, or one for all, e⁻/Å², ≥ 0 (0: attenuation at the pre-exposure).
    voltage_kv
        Acceleration voltage, 100-300 kV (sets the critical exposure's factor).

    Returns
    -------
    torch.Tensor
        ``(n, ny, nx)`` float32 filtered images; the zero frequency (the mean) is unchanged.
    """
    if images.ndim != 3:
        raise ValueError(f"dose filtering needs an (n, y, x) stack, got shape {tuple(images.shape)}")
    n = images.shape[0]
    pre = [float(p) for p in pre_exposures_e_per_angstrom2]
    doses = [float(doses_e_per_angstrom2)] * n if isinstance(doses_e_per_angstrom2, int | float) else [
        float(d) for d in doses_e_per_angstrom2]  # fmt: skip
    if len(pre) != n or len(doses) != n:
        raise ValueError(f"{n} tilt images need {n} pre-exposures and doses, got {len(pre)} and {len(doses)}")
    shape_yx = (images.shape[-2], images.shape[-1])
    k = rfft_squared_frequencies(shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom, device=images.device)
    critical = critical_exposure(k.sqrt(), voltage_kv=voltage_kv)
    out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    for index in range(n):
        weights = exposure_weights(critical, pre_exposure_e_per_angstrom2=pre[index],
                                   dose_e_per_angstrom2=doses[index])  # fmt: skip
        out[index] = torch.fft.irfft2(torch.fft.rfft2(images[index].float()) * weights, s=shape_yx)
    return out
