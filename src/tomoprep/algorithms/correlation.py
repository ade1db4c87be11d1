"""Cross-correlation of images given by their half spectra, and the sub-pixel position of its peak.

Conventions are those of :mod:`tomoprep.algorithms.fourier`: a correlation map has zero shift at index ``[0, 0]``;
index ``i`` along an axis of length ``n`` stands for the shift ``i`` if ``i < n / 2`` and ``i - n`` otherwise.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch


def cross_correlation(
    spectrum_a: torch.Tensor,
    spectrum_b: torch.Tensor,
    *,
    shape_yx: tuple[int, int],
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Circular cross-correlation maps of image pairs given by their half spectra.

    The map peaks at the shift of ``a`` relative to ``b``: if ``a(r) = b(r - s)`` the peak is at ``s`` (zero shift
    at index ``[0, 0]``; see the module conventions and :func:`find_peak_subpixel`).

    Parameters
    ----------
    spectrum_a, spectrum_b
        ``(..., ny, nx // 2 + 1)`` complex rfft2 spectra (broadcastable).
    shape_yx
        Real-space shape ``(ny, nx)``.
    weight
        Optional real ``(ny, nx // 2 + 1)`` weight on the cross-power spectrum (e.g. a B-factor envelope).

    Returns
    -------
    torch.Tensor
        ``(..., ny, nx)`` real maps.
    """
    cross = spectrum_a * spectrum_b.conj()
    if weight is not None:
        cross = cross * weight
    return torch.fft.irfft2(cross, s=shape_yx)


def _window_indices(n: int, half_width: int, device: torch.device) -> torch.Tensor:
    half_width = min(half_width, n // 2)
    return torch.arange(-half_width - 1, half_width + 2, device=device) % n


def _vertex_offset(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor, gaussian: bool) -> torch.Tensor:
    if gaussian:
        positive = (left > 0) & (centre > 0) & (right > 0)
        tiny = torch.finfo(centre.dtype).tiny
        log_l, log_c, log_r = (torch.log(v.clamp_min(tiny)) for v in (left, centre, right))
        left = torch.where(positive, log_l, left)
        centre = torch.where(positive, log_c, centre)
        right = torch.where(positive, log_r, right)
    curvature = left - 2 * centre + right
    safe = torch.where(curvature < 0, curvature, torch.full_like(curvature, -1.0))
    offset = torch.where(curvature < 0, 0.5 * (left - right) / safe, torch.zeros_like(curvature))
    return offset.clamp(-0.5, 0.5)


def correlation_near_zero(cross_power: torch.Tensor, shape_yx: tuple[int, int], radius_px: int) -> torch.Tensor:
    """``irfft2(cross_power, s=shape_yx)`` at the shifts ``-radius_px..radius_px`` only, along y and x.

    A direct, separable transform of the ``(..., ny, nx // 2 + 1)`` half spectra: two small complex matrix
    products instead of a full inverse transform (10 spectra of 1024²: about 10 against 40 ms for a radius of
    3 px). Returns ``(..., 2r + 1, 2r + 1)`` maps in the FFT order that :func:`find_peak_subpixel` reads: shift
    0 at index 0, negative shifts at the end.
    """
    ny, nx = shape_yx
    device, dtype = cross_power.device, torch.float64
    shifts = torch.fft.fftfreq(2 * radius_px + 1, d=1 / (2 * radius_px + 1), device=device, dtype=dtype)
    kx = torch.arange(cross_power.shape[-1], device=device, dtype=dtype)
    ky = torch.fft.fftfreq(ny, d=1 / ny, device=device, dtype=dtype)
    along_x = torch.polar(
        _hermitian(len(kx), nx, device)[:, None].expand(-1, len(shifts)), 2 * math.pi * kx[:, None] * shifts / nx
    )
    along_y = torch.polar(
        torch.ones(len(shifts), ny, device=device, dtype=dtype), 2 * math.pi * shifts[:, None] * ky / ny
    )
    maps = along_y.to(cross_power.dtype) @ (cross_power @ along_x.to(cross_power.dtype))
    return maps.real / (ny * nx)


def _hermitian(n_columns: int, nx: int, device: torch.device) -> torch.Tensor:
    """How often each column of a half spectrum stands in the full one: 1 for column 0 (and nx / 2), else 2."""
    hermitian = torch.full((n_columns,), 2.0, dtype=torch.float64, device=device)
    hermitian[0] = 1.0
    if nx % 2 == 0:
        hermitian[-1] = 1.0
    return hermitian


class MapDerivatives(NamedTuple):
    """Value, gradient and Hessian of correlation maps at given shifts (per px and px²)."""

    value: torch.Tensor
    gradient: torch.Tensor
    hessian: torch.Tensor


def map_derivatives(cross_power: torch.Tensor, shape_yx: tuple[int, int], shifts_px: torch.Tensor) -> MapDerivatives:
    """Value ``(...)``, gradient ``(..., 2)`` and Hessian ``(..., 2, 2)`` (y, x) of the band-limited maps
    ``c = irfft2(cross_power, s=shape_yx)`` at sub-pixel shifts, exactly.

    ``c(s) = Σ_k m_k Re(X_k e^{2πi k·s}) / (ny nx)`` over the half spectrum (``m_k`` the multiplicity of a column),
    so each derivative is the same sum with a factor ``2πi k_a`` per derivative: one product of the half spectra
    with three columns along x and a sum along y, a fraction of one inverse transform.

    Parameters
    ----------
    cross_power
        ``(..., ny, nx // 2 + 1)`` half spectra.
    shape_yx
        Real-space shape ``(ny, nx)``.
    shifts_px
        ``(..., 2)`` where to evaluate, ``(dy, dx)`` in pixels (as :func:`find_peak_subpixel` reports peaks).

    Returns
    -------
    MapDerivatives
        In float64.
    """
    ny, nx = shape_yx
    device = cross_power.device
    kx = 2 * math.pi * torch.arange(cross_power.shape[-1], device=device, dtype=torch.float64) / nx
    ky = 2 * math.pi * torch.fft.fftfreq(ny, device=device, dtype=torch.float64)
    shifts = shifts_px.double()
    phase_x = torch.polar(_hermitian(len(kx), nx, device).expand(*shifts.shape[:-1], -1), kx * shifts[..., 1:])
    along_x = torch.stack([phase_x, phase_x * kx, phase_x * kx**2], dim=-1).to(cross_power.dtype)
    per_row = cross_power @ along_x  # (..., ny, 3): sums along x weighted by 1, k_x, k_x²
    phase_y = torch.polar(torch.ones_like(ky).expand(*shifts.shape[:-1], -1), ky * shifts[..., :1])
    along_y = torch.stack([phase_y, phase_y * ky, phase_y * ky**2], dim=-1).to(cross_power.dtype)
    sums = torch.einsum("...ya,...yb->...ab", per_row, along_y).to(torch.complex128) / (ny * nx)  # [x order, y order]
    gradient = torch.stack([-sums[..., 0, 1].imag, -sums[..., 1, 0].imag], dim=-1)
    cross_term = -sums[..., 1, 1].real
    hessian = torch.stack(
        [
            torch.stack([-sums[..., 0, 2].real, cross_term], dim=-1),
            torch.stack([cross_term, -sums[..., 2, 0].real], dim=-1),
        ],
        dim=-2,
    )
    return MapDerivatives(sums[..., 0, 0].real, gradient, hessian)


def correlation_curvature(
    cross_power: torch.Tensor, shape_yx: tuple[int, int], shifts_px: torch.Tensor
) -> torch.Tensor:
    """Curvature ``-∂²c/∂s²`` ``(..., 2)`` along y and x, float32 per px², of the maps ``c = irfft2(cross_power,
    s=shape_yx)`` at given shifts (:func:`map_derivatives`)."""
    hessian = map_derivatives(cross_power, shape_yx, shifts_px).hessian
    return (-torch.diagonal(hessian, dim1=-2, dim2=-1)).float()


#: Newton steps of :func:`refine_peak`, and the largest step accepted (px): the 3-point estimate it starts from is
#: within a few hundredths of a pixel of the maximum, so a longer step means the map is not a peak there.
_NEWTON_STEPS = 2
_NEWTON_MAX_STEP_PX = 0.5


def refine_peak(
    cross_power: torch.Tensor, shape_yx: tuple[int, int], shifts_px: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The maximum of the band-limited maps ``irfft2(cross_power, s=shape_yx)`` near ``shifts_px``, by Newton's
    method on the exact derivatives (:func:`map_derivatives`), and the curvature there.

    A 3-point fit through the map's samples (:func:`find_peak_subpixel`) weighs the map's frequencies as finite
    differences do: near the Nyquist frequency hardly at all, and unlike the map's own slope. Where the
    correlation's information lies at high frequencies (a contrast transfer that reaches the Nyquist frequency of
    binned frames: simulated 4096² tilt movies aligned at 2048²) trajectories from the 3-point peaks were 1.5 times
    as far from the truth as from the maxima (0.022 against 0.014 px RMS); the maximum is also what the precision of
    :mod:`tomoprep.algorithms.peak_noise` describes. A step that is not towards a maximum (the Hessian not
    negative definite) or longer than half a pixel is not taken.

    Parameters
    ----------
    cross_power
        ``(..., ny, nx // 2 + 1)`` half spectra.
    shape_yx
        Real-space shape ``(ny, nx)``.
    shifts_px
        ``(..., 2)`` starting points ``(dy, dx)``, pixels (a 3-point fit's peaks).

    Returns
    -------
    tuple of torch.Tensor
        The maxima ``(..., 2)`` and the curvatures ``-∂²c/∂s²`` ``(..., 2)`` there (from the last evaluation, a
        thousandth of a pixel or less away), float32.
    """
    shifts = shifts_px.double()
    curvature = torch.zeros_like(shifts)
    for _ in range(_NEWTON_STEPS):
        derivatives = map_derivatives(cross_power, shape_yx, shifts)
        hessian = derivatives.hessian
        hyy, hxy, hxx = hessian[..., 0, 0], hessian[..., 0, 1], hessian[..., 1, 1]
        gy, gx = derivatives.gradient.unbind(-1)
        determinant = hyy * hxx - hxy**2
        safe = torch.where(determinant > 0, determinant, torch.ones_like(determinant))
        step = torch.stack([-(hxx * gy - hxy * gx) / safe, -(hyy * gx - hxy * gy) / safe], dim=-1)
        accepted = (hyy < 0) & (determinant > 0) & (step.abs().amax(dim=-1) <= _NEWTON_MAX_STEP_PX)
        shifts = torch.where(accepted[..., None], shifts + step, shifts)
        curvature = torch.stack([-hyy, -hxx], dim=-1)
    return shifts.float(), curvature.float()


def find_peak_subpixel(
    cc: torch.Tensor,
    *,
    max_shift_px: float | None = None,
    method: Literal["gaussian", "parabolic"] = "gaussian",
) -> torch.Tensor:
    """Sub-pixel position of the maximum of circular cross-correlation maps, as a shift.

    The maps follow the FFT convention of :func:`cross_correlation`: zero shift at index ``[0, 0]``, index ``i``
    standing for ``i - n`` past the middle, so a peak just left of index 0 wraps to index ``n - 1`` and is
    reported as a small negative shift. The integer maximum is searched within ``max_shift_px`` of zero; a 3-point
    fit through it along y and along x refines it: a parabola through the logarithms (exact for a Gaussian peak;
    the default) or through the values (where a value is not positive the parabola is used).

    Parameters
    ----------
    cc
        ``(..., ny, nx)`` real maps.
    max_shift_px
        Largest shift searched, in pixels along each axis; ``None`` searches the whole map.
    method
        ``"gaussian"`` or ``"parabolic"`` fit.

    Returns
    -------
    torch.Tensor
        ``(..., 2)`` shifts ``(dy, dx)`` in pixels, float32, in ``[-n/2, n/2]``.
    """
    ny, nx = cc.shape[-2], cc.shape[-1]
    limit = max(ny, nx) if max_shift_px is None else max(0, math.floor(max_shift_px))
    iy, ix = _window_indices(ny, limit, cc.device), _window_indices(nx, limit, cc.device)
    window = cc.index_select(-2, iy).index_select(-1, ix).float()
    inner = window[..., 1:-1, 1:-1]
    flat = inner.flatten(-2).argmax(dim=-1)
    py, px = flat // inner.shape[-1] + 1, flat % inner.shape[-1] + 1
    rows = window.gather(-2, py[..., None, None].expand(*py.shape, 1, window.shape[-1]))[..., 0, :]
    cols = window.gather(-1, px[..., None, None].expand(*px.shape, window.shape[-2], 1))[..., 0]

    def fit(line: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        left, centre, right = (line.gather(-1, (p + d)[..., None])[..., 0] for d in (-1, 0, 1))
        return _vertex_offset(left, centre, right, gaussian=method == "gaussian")

    half_y, half_x = (len(iy) - 3) // 2, (len(ix) - 3) // 2
    dy = (py - 1 - half_y).float() + fit(cols, py)
    dx = (px - 1 - half_x).float() + fit(rows, px)
    return torch.stack([dy, dx], dim=-1)
