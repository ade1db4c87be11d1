"""Trajectories across frames from noisy shift measurements: a fit that follows the data as far as its precision
allows, and a fixed-penalty smoother.

:func:`fit_trajectory` takes each measurement's standard deviation (:mod:`tomoprep.algorithms.peak_noise`) and
models the true trajectory as a quadratic (free) plus two Gaussian processes whose sizes are chosen from the data:

- a random walk, ``s_i - s_{i-1}`` independent with variance ``τ₁²``: stage and specimen jitter, whose steps do
  not average out, however many frames there are;
- a smooth motion, third differences independent with variance ``τ₃²``: the fast settling at the start of an
  exposure and a slowly changing drift (the prior of the Whittaker smoother of third order).

``(τ₁², τ₃²)`` maximise the restricted (REML) likelihood of the measurements, ``y ~ N(Xβ, τ₁² K₁ + τ₃² K₃ +
diag(σ²))`` with ``X`` the quadratic and ``β`` integrated out, over a grid from 10⁻⁴ to 10⁸ times the median
``σ²`` (and 0). The fit is the posterior mean. Where the peaks are sharp (σ ≈ 0.01 px) against the motion, the fit
follows the measurements; where they are noisy and the motion smooth, ``τ₁ = 0`` and the fit is nearly a
quadratic; a jittery trajectory measured precisely gets a large ``τ₁`` and is followed. Frames without a
measurement (``σ = inf``: a peak not credible) are interpolated by the same model from the others, which is why
the model is given as covariances: the fit is kriging with a quadratic drift.

The frames are equally spaced in time (frame index). On 10 frames the likelihood is a function of 7 contrasts per
axis; ``τ`` is shared by all series fitted together (both axes, all patches of a row).

:func:`smooth_trajectory` is the Whittaker smoother with a fixed penalty ``λ``, for callers who want one.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch

#: Candidate prior variances relative to the median measurement variance (0 is also tried).
_SCALES = (0.0, *(10 ** (k / 2) for k in range(-8, 17)))
#: Order of the differences penalised by :func:`smooth_trajectory` and of the smooth prior.
_DIFFERENCE_ORDER = 3
#: Prior probability that the random walk is absent (scale 0), and that the smooth motion is: every exposure
#: settles, so a trajectory without any smooth motion beyond a quadratic is rare.
_ABSENT_PRIOR = (0.5, 0.05)
#: Grid points whose posterior weight is below this fraction of the largest are left out of the average.
_WEIGHT_FLOOR = 1e-3
#: Degree of the free polynomial of the trajectory model.
_DRIFT_DEGREE = 2


class TrajectoryFit(NamedTuple):
    """Result of :func:`fit_trajectory`.

    Attributes
    ----------
    shifts_px
        ``(..., n, 2)`` fitted shifts, same dtype as the measurements.
    random_walk_px2
        Variance of the random walk's step per frame chosen, px² (``τ₁²``).
    smooth_px2
        Variance of the smooth motion's third difference chosen, px² (``τ₃²``).
    """

    shifts_px: torch.Tensor
    random_walk_px2: float
    smooth_px2: float


@functools.lru_cache(maxsize=32)
def _kernels(n: int, degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """The drift basis ``(n, degree + 1)`` and the two prior covariances ``(n, n)`` (random walk, smooth),
    projected off the drift and scaled to a mean variance of 1 per contrast, with those scales (τ in px²)."""
    t = np.arange(n) / max(n - 1, 1)
    basis = np.stack([t**d for d in range(degree + 1)], axis=-1)
    orthonormal, _ = np.linalg.qr(basis)
    projector = np.eye(n) - orthonormal @ orthonormal.T
    cumulative = np.tril(np.ones((n, n)))
    kernels, scales = [], []
    for power in (1, _DIFFERENCE_ORDER):
        root = np.linalg.matrix_power(cumulative, power)
        kernel = projector @ root @ root.T @ projector
        scale = float(np.trace(kernel)) / max(n - degree - 1, 1)
        kernels.append(kernel / scale)
        scales.append(scale)
    return basis, kernels[0], kernels[1], (scales[0], scales[1])


def _log_likelihood(
    y: np.ndarray, variance: np.ndarray, basis: np.ndarray, walk: np.ndarray, smooth: np.ndarray
) -> np.ndarray:
    """REML log-likelihood ``(len(_SCALES), len(_SCALES))`` (smooth, walk) summed over series ``y`` ``(S, m)``.

    For each smooth scale, ``A = diag(σ²) + τ₃² K₃ = L Lᵀ`` and ``L⁻¹ K₁ L⁻ᵀ = U Λ Uᵀ``: then every walk scale
    costs only diagonal operations, ``V = L U (I + τ₁² Λ) Uᵀ Lᵀ``.
    """
    scales = np.array(_SCALES)
    a = variance[:, None, :, None] * np.eye(len(walk)) + scales[:, None, None] * smooth  # (S, G, m, m)
    inverse_lower = np.linalg.inv(np.linalg.cholesky(a))
    eigenvalues, vectors = np.linalg.eigh(inverse_lower @ walk @ inverse_lower.swapaxes(-1, -2))
    whiten = vectors.swapaxes(-1, -2) @ inverse_lower
    white_y = (whiten @ y[:, None, :, None])[..., 0]  # (S, G, m)
    white_basis = whiten @ basis  # (S, G, m, p)
    spread = 1 + scales[:, None] * eigenvalues.clip(min=0)[:, :, None, :]  # (S, G3, G1, m)
    inverse = 1 / spread
    quadratic = (white_y[:, :, None] ** 2 * inverse).sum(-1)
    normal = np.einsum("sgmp,sghm,sgmq->sghpq", white_basis, inverse, white_basis)
    projected = np.einsum("sgmp,sghm,sgm->sghp", white_basis, inverse, white_y)
    explained = (projected * np.linalg.solve(normal, projected[..., None])[..., 0]).sum(-1)
    log_det = -2 * np.log(np.diagonal(inverse_lower, axis1=-2, axis2=-1)).sum(-1)[..., None] + np.log(spread).sum(-1)
    likelihood = -(log_det + np.linalg.slogdet(normal)[1] + quadratic - explained) / 2
    return likelihood.sum(axis=0)


def _posterior_mean(
    y: np.ndarray, variance: np.ndarray, observed: np.ndarray, basis: np.ndarray, prior: np.ndarray
) -> np.ndarray:
    """Kriging with a quadratic drift: the fitted ``(G, S, n)`` trajectories of series ``y`` ``(S, m)`` observed at
    the frames ``observed``, for each of the prior covariances ``prior`` ``(G, n, n)``."""
    basis_o = basis[observed]
    covariance = variance[:, :, None] * np.eye(len(basis_o)) + prior[:, None][..., observed, :][..., observed]
    inverse = np.linalg.inv(covariance)  # (G, S, m, m)
    inverse_basis = inverse @ basis_o
    drift = np.linalg.solve(basis_o.T @ inverse_basis, inverse_basis.swapaxes(-1, -2) @ y[..., None])
    residual = inverse @ (y[..., None] - basis_o @ drift)
    return (basis @ drift + prior[:, None][..., observed] @ residual)[..., 0]


def _interpolate(y: np.ndarray, observed: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The polynomial through too few observed points to fit a model to: of one degree less than their number,
    at most the drift's (zeros where none)."""
    m = int(observed.sum())
    if m == 0:
        return np.zeros((len(y), len(basis)))
    columns = basis[:, :m]
    return (columns @ np.linalg.solve(columns[observed], y.T)).T


def fit_trajectory(shifts_px: torch.Tensor, sigma_px: torch.Tensor) -> TrajectoryFit:
    """Fit trajectories to measured shifts of known precision (module notes).

    Parameters
    ----------
    shifts_px
        ``(..., n, 2)`` measured shifts, pixels.
    sigma_px
        ``(..., n, 2)`` their standard deviations, pixels; ``inf`` (or nan) for frames without a measurement,
        which are interpolated.

    Returns
    -------
    TrajectoryFit
        The fitted shifts and the prior variances chosen (shared by all series).
    """
    # Small matrices: numpy's loops over them, not torch's thread pool (which costs more than the arithmetic).
    n = shifts_px.shape[-2]
    y = shifts_px.detach().cpu().double().movedim(-1, -2).reshape(-1, n).numpy()
    variance = sigma_px.detach().cpu().double().movedim(-1, -2).reshape(-1, n).numpy() ** 2
    observed = np.isfinite(variance)
    y = np.where(observed, y, 0.0)
    scale = float(np.median(variance[observed])) if observed.any() else 1.0
    groups = [(pattern, (observed == pattern).all(axis=1)) for pattern in np.unique(observed, axis=0)]
    total = np.zeros((len(_SCALES), len(_SCALES)))
    for pattern, rows in groups:
        basis, walk, smooth, _ = _kernels(n, _drift_degree(pattern))
        if pattern.sum() > basis.shape[1]:
            total += _log_likelihood(
                y[rows][:, pattern] / math.sqrt(scale), variance[rows][:, pattern] / scale, basis[pattern],
                walk[np.ix_(pattern, pattern)], smooth[np.ix_(pattern, pattern)],
            )  # fmt: skip
    weights = np.exp((posterior := total + _log_prior()) - posterior.max()).ravel()
    kept = np.flatnonzero(weights >= _WEIGHT_FLOOR)
    weights = weights[kept] / weights[kept].sum()
    smooth_scales, walk_scales = np.array(_SCALES)[kept // len(_SCALES)], np.array(_SCALES)[kept % len(_SCALES)]
    fitted = np.empty_like(y)
    for pattern, rows in groups:
        basis, walk, smooth, _ = _kernels(n, _drift_degree(pattern))
        if pattern.sum() > basis.shape[1]:
            priors = (walk_scales[:, None, None] * walk + smooth_scales[:, None, None] * smooth) * scale
            each = _posterior_mean(y[rows][:, pattern], variance[rows][:, pattern], pattern, basis, priors)
            fitted[rows] = np.einsum("g,gsn->sn", weights, each)
        else:
            fitted[rows] = _interpolate(y[rows][:, pattern], pattern, basis)
    out = torch.from_numpy(fitted).reshape(*shifts_px.shape[:-2], 2, n).movedim(-2, -1)
    kernel_scales = _kernels(n, _DRIFT_DEGREE)[3]
    walk_px2 = float(weights @ walk_scales) * scale / kernel_scales[0]
    smooth_px2 = float(weights @ smooth_scales) * scale / kernel_scales[1]
    return TrajectoryFit(out.to(dtype=shifts_px.dtype, device=shifts_px.device), walk_px2, smooth_px2)


def _drift_degree(observed: np.ndarray) -> int:
    """The free polynomial's degree: a quadratic where every frame is measured, a line where some are not (a
    quadratic carried over missing frames, at the ends most, multiplies the noise of the measured ones)."""
    return _DRIFT_DEGREE if observed.all() else 1


def _log_prior() -> np.ndarray:
    """``(G, G)`` log prior probability of (smooth, walk) scales: each component is absent (scale 0) with its
    probability in :data:`_ABSENT_PRIOR`, else log-uniform over the grid."""
    walk, smooth = (np.full(len(_SCALES), (1 - absent) / (len(_SCALES) - 1)) for absent in _ABSENT_PRIOR)
    walk[0], smooth[0] = _ABSENT_PRIOR
    return np.log(smooth)[:, None] + np.log(walk)[None, :]


def _whittaker(n: int, smoothing: float, device: torch.device) -> torch.Tensor:
    eye = torch.eye(n, dtype=torch.float64, device=device)
    difference = torch.diff(eye, n=_DIFFERENCE_ORDER, dim=0)
    return torch.linalg.inv(eye + smoothing * difference.T @ difference)


def smooth_trajectory(shifts_px: torch.Tensor, *, smoothing: float) -> torch.Tensor:
    """Smooth trajectories across frames by penalised least squares with a fixed penalty (a Whittaker smoother).

    Solves ``(I + λ DᵀD) s = shifts`` per axis, ``D`` being the third-difference operator over frames: a drift
    with constant acceleration passes unchanged, frame-to-frame jitter is damped, the mean is kept. On 10 frames,
    λ = 3 passes about half of white noise (RMS) and bends an exponential start (3 px, time constant 2.5
    frames) by 0.03 px RMS. The penalty does not know the measurements' precision: :func:`fit_trajectory` does.

    Parameters
    ----------
    shifts_px
        ``(..., n_frames, 2)`` shifts in pixels.
    smoothing
        ``λ`` ≥ 0; 0 returns the input.

    Returns
    -------
    torch.Tensor
        Smoothed shifts, same shape and dtype.
    """
    n = shifts_px.shape[-2]
    if n <= _DIFFERENCE_ORDER or smoothing <= 0:
        return shifts_px
    return (_whittaker(n, float(smoothing), shifts_px.device) @ shifts_px.double()).to(shifts_px.dtype)
