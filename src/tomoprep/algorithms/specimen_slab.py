"""The specimen slab in a low-resolution reconstruction: its thickness, height and tilt.

A lamella or a thin ice layer holds its content between two planes. Squared band-passed density ("content")
averaged over a region of the slices gives a profile along z; a box with blurred edges
(``floor + height · [Φ((z - z_low) / σ) - Φ((z - z_high) / σ)]``) is fitted to it, and its edges are the slab's
surfaces: users measure the same in a tomogram by eye. Fitting the box in blocks along x and along y gives the
slab's centre as a plane, whose slope along x is the tilt offset that makes the slab flat.

Slices follow :mod:`tomoprep.algorithms.backprojection`: ``(ny, nz, nx)``, centred on ``N // 2``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import least_squares
from scipy.special import ndtr

from tomoprep.algorithms.slab_blur import fit_blurred_box

#: Fraction of the slices, along x and y, over which the profile is taken (their edges see few tilts).
CENTRAL_FRACTION_X = 0.6
CENTRAL_FRACTION_Y = 0.8
#: Blocks along x (and y) in which the slab's centre is measured for its tilt.
N_BLOCKS = 5
#: Most evaluations of a box fit.
FIT_MAX_EVALUATIONS = 60
#: Blocks along x and along y (this many squared) in which the slab's thickness is measured again, each on its
#: own: their scatter is the thickness's own uncertainty.
THICKNESS_BLOCKS = 3
#: A thickness is reported only when its standard error (from the scatter of the blocks' thicknesses) is at most
#: this fraction of it: half the 10 % a thickness is meant to be within, so that the figure is good to 10 % at
#: two standard errors.
MAX_THICKNESS_ERROR_FRACTION = 0.05
#: A block's box has two faces only where its edges are sharper than its width: blurred over more than a third
#: of it, the fitted "box" is a bump (scattered content), and the distance between its edges means nothing.
MIN_THICKNESS_PER_BLUR = 3.0


@dataclass(frozen=True)
class SlabFit:
    """A blurred box fitted to a content profile along z (voxel units, z from the slices' centre ``nz // 2``)."""

    z_low: float
    z_high: float
    blur: float
    floor: float
    height: float

    @property
    def thickness(self) -> float:
        """Distance between the two edges, voxels."""
        return self.z_high - self.z_low

    @property
    def centre(self) -> float:
        """Midpoint of the two edges, voxels from the slices' centre."""
        return 0.5 * (self.z_low + self.z_high)


@dataclass(frozen=True)
class SlabMeasurement:
    """The slab in a reconstruction (voxel units; z relative to the slices' centre).

    Attributes
    ----------
    fit
        The box fitted to the whole central region's profile (after levelling by the measured slope).
    profile
        ``(nz,)`` that profile (levelled).
    slope_x, slope_y
        ``dz/dx`` and ``dz/dy`` of the slab's centre plane.
    slope_x_error
        Standard error of ``slope_x`` from the scatter of the blocks' centres about their line (0 when the
        slab was too thin to fit blocks).
    tilt_offset_deg
        Change of every tilt angle that makes the slab flat: ``-atan(slope_x)`` in degrees.
    tilt_offset_error_deg
        Its standard error, degrees: a few degrees where the content is a sparse layer of particles, whose
        blocks scatter about any plane.
    block_thicknesses
        ``(THICKNESS_BLOCKS²,)`` the thicknesses of the levelled slab's blocks, each fitted on its own (``nan``
        where a block shows no slab); where fewer than half show two faces and a blur was measured apart from the
        slab (:func:`measure_slab`'s ``blur_kernel``), the widths of their boxes fitted with that blur.
    """

    fit: SlabFit
    profile: np.ndarray
    slope_x: float
    slope_y: float
    slope_x_error: float = 0.0
    block_thicknesses: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def tilt_offset_deg(self) -> float:
        return -math.degrees(math.atan(self.slope_x))

    @property
    def tilt_offset_error_deg(self) -> float:
        return math.degrees(self.slope_x_error / (1.0 + self.slope_x**2))

    @property
    def thickness(self) -> float:
        """The slab's thickness, voxels: the median of the blocks' own thicknesses where at least half the blocks
        show a slab (a block holding one large particle at the slab's centre, whose content makes the whole
        profile a bump rather than a box, does not pull it: a 20-voxel slab with a helix of large blobs at its
        centre fitted 11.2 voxels whole, 21.7 as the median of its blocks), else the whole profile's box."""
        found = self.block_thicknesses[np.isfinite(self.block_thicknesses)]
        if found.size >= max(3, self.block_thicknesses.size // 2 + 1):
            return float(np.median(found))
        return self.fit.thickness

    @property
    def layer_thickness(self) -> float:
        """Depth the specimen's content occupies, voxels: :attr:`thickness` where the blocks show a slab of their
        own (or, with a blur measured apart, their boxes fitted with it); else the whole profile's box widened by
        its blur on each side (content massed at a thin slab's centre fits a narrow, blurred box: a 20-voxel slab
        holding a helix of large blobs fitted 2 voxels blurred by 6; with the blur known, 19.6 voxels)."""
        if math.isfinite(self.thickness_error_fraction):
            return self.thickness
        return self.fit.thickness + 2.0 * self.fit.blur

    def why_not_found(self, *, min_thickness: float = 8.0, max_tilt_deg: float = 30.0) -> str:
        """Why no slab was found, in words (``""`` when one was): an edge at an end of the slices (the slab is
        deeper than the reconstruction, or there is none), thinner than ``min_thickness`` voxels, or tilted more
        than ``max_tilt_deg``."""
        half = self.profile.size // 2
        fit = self.fit
        if not (fit.z_low > -half + 2 and fit.z_high < self.profile.size - half - 3):
            return "an edge lies at an end of the reconstruction (a slab deeper than it, or none)"
        if self.layer_thickness < min_thickness:
            return f"a layer {self.layer_thickness:.1f} voxels deep, under {min_thickness:g}"
        if abs(self.tilt_offset_deg) > max_tilt_deg:
            return f"tilted {self.tilt_offset_deg:+.1f}°, more than {max_tilt_deg:g}°"
        return ""

    def is_plausible(self, *, min_thickness: float = 8.0, max_tilt_deg: float = 30.0) -> bool:
        """Whether a slab was found (:meth:`why_not_found` has no reason)."""
        return not self.why_not_found(min_thickness=min_thickness, max_tilt_deg=max_tilt_deg)

    @property
    def thickness_error_fraction(self) -> float:
        """Standard error of :attr:`thickness` as a fraction of it, from the scatter (median absolute deviation)
        of the blocks' own thicknesses; ``inf`` when fewer than half the blocks show a slab."""
        found = self.block_thicknesses[np.isfinite(self.block_thicknesses)]
        if found.size < max(3, self.block_thicknesses.size // 2 + 1):
            return math.inf
        spread = 1.4826 * float(np.median(np.abs(found - np.median(found))))
        return spread / math.sqrt(found.size) / max(self.thickness, 1e-9)

    def why_thickness_unreported(self) -> str:
        """Why the thickness is not to be trusted, in words (``""`` when it is): no slab found
        (:meth:`why_not_found`), fewer than half the blocks showing a slab of their own (a box with a plateau,
        :data:`MIN_THICKNESS_PER_BLUR`), or blocks that disagree (:data:`MAX_THICKNESS_ERROR_FRACTION`)."""
        reason = self.why_not_found()
        if reason:
            return reason
        error = self.thickness_error_fraction
        found = int(np.isfinite(self.block_thicknesses).sum())
        if not math.isfinite(error):
            return (f"only {found} of {self.block_thicknesses.size} blocks show a slab with two faces (the content "
                    "is a bump, not a box)")  # fmt: skip
        if error > MAX_THICKNESS_ERROR_FRACTION:
            return (f"its {found} blocks disagree on the thickness: standard error {100 * error:.0f} % of it, over "
                    f"{100 * MAX_THICKNESS_ERROR_FRACTION:.0f} %")  # fmt: skip
        return ""


def content(slices: torch.Tensor, *, smoothing_voxels: float = 1.0) -> torch.Tensor:
    """Squared band-passed density of slices ``(ny, nz, nx)``: high where there is specimen, low in vacuum."""
    spectrum = torch.fft.rfftn(slices - slices.mean(), dim=(0, 1, 2))
    ky = torch.fft.fftfreq(slices.shape[0])[:, None, None]
    kz = torch.fft.fftfreq(slices.shape[1])[None, :, None]
    kx = torch.fft.rfftfreq(slices.shape[2])[None, None, :]
    k2 = ky**2 + kz**2 + kx**2
    band = torch.exp(-k2 * (2 * math.pi * smoothing_voxels) ** 2 / 2) * (1 - torch.exp(-k2 / (2 * 0.02**2)))
    filtered = torch.fft.irfftn(spectrum * band, s=slices.shape, dim=(0, 1, 2))
    return filtered**2


def _central(n: int, fraction: float) -> slice:
    half = max(1, round(n * fraction / 2))
    return slice(max(0, n // 2 - half), min(n, n // 2 + half))


def _model(params: np.ndarray, z: np.ndarray) -> np.ndarray:
    z_low, z_high, blur, floor, height = params
    blur = max(abs(blur), 0.3)
    return floor + height * (ndtr((z - z_low) / blur) - ndtr((z - z_high) / blur))


def _model_jacobian(params: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``(nz, 5)`` derivatives of :func:`_model` by its parameters (the fit's bounds keep the blur ≥ 0.3)."""
    z_low, z_high, blur, _floor, height = params
    u_low, u_high = (z - z_low) / blur, (z - z_high) / blur
    g_low, g_high = np.exp(-0.5 * u_low**2) / math.sqrt(2 * math.pi), np.exp(-0.5 * u_high**2) / math.sqrt(2 * math.pi)
    return np.stack([-height * g_low / blur, height * g_high / blur, height * (g_high * u_high - g_low * u_low) / blur,
                     np.ones_like(z, dtype=np.float64), ndtr(u_low) - ndtr(u_high)], axis=1)  # fmt: skip


def fit_box(profile: np.ndarray) -> SlabFit:
    """Fit a blurred box to a content profile ``(nz,)``; z of the result relative to ``nz // 2``."""
    profile = np.asarray(profile, dtype=np.float64)
    nz = profile.size
    z = np.arange(nz) - nz // 2
    floor0 = float(np.percentile(profile, 10))
    excess = np.clip(profile - floor0, 0, None)
    cumulative = np.cumsum(excess) / max(excess.sum(), 1e-30)
    low0 = z[int(np.searchsorted(cumulative, 0.05))]
    high0 = z[min(int(np.searchsorted(cumulative, 0.95)), nz - 1)]
    height0 = float(np.percentile(profile, 90)) - floor0
    # A blur of up to a quarter of the profile; a profile only a few voxels deep starts within that bound.
    blur_max = max(nz / 4, 0.6)
    start = np.array([low0, high0, min(2.0, 0.5 * (0.3 + blur_max)), floor0, max(height0, 1e-12)])
    scale = max(float(np.abs(profile).max()), 1e-30)
    # An analytic Jacobian, and a bound on the iterations: a profile holding a slab converges in a few dozen,
    # one holding none wandered for hundreds (a fit is then judged by what it found, not by converging).
    result = least_squares(
        lambda p: (_model(p, z) - profile) / scale,
        start,
        jac=lambda p: _model_jacobian(p, z) / scale,
        bounds=([z[0], z[0], 0.3, -np.inf, 0.0], [z[-1], z[-1], blur_max, np.inf, np.inf]),
        max_nfev=FIT_MAX_EVALUATIONS,
    )
    z_low, z_high, blur, floor, height = result.x
    if z_low > z_high:
        z_low, z_high = z_high, z_low
    return SlabFit(float(z_low), float(z_high), float(blur), float(floor), float(height))


def fit_box_centre(profile: np.ndarray, *, thickness: float, blur: float) -> float:
    """Centre (relative to ``nz // 2``) of a box of known ``thickness`` and edge ``blur`` fitted to ``profile``.

    Every centre on a quarter-voxel grid is tried (floor and height by linear least squares, exact for each),
    then a parabola through the best three: with sharp edges the misfit is too flat between grid points for a
    gradient search.
    """
    profile = np.asarray(profile, dtype=np.float64)
    z = np.arange(profile.size) - profile.size // 2
    half, blur = 0.5 * thickness, max(blur, 0.5)
    centres = np.arange(z[0] + half, z[-1] - half + 1e-9, 0.25)
    if centres.size < 3:
        return 0.0
    box = ndtr((z[None, :] - (centres[:, None] - half)) / blur) - ndtr((z[None, :] - (centres[:, None] + half)) / blur)
    # Least squares of profile ≈ floor + height·box for each centre: residual = centred profile − β·centred box.
    p = profile - profile.mean()
    q = box - box.mean(axis=1, keepdims=True)
    beta = np.clip((q @ p) / np.maximum((q * q).sum(axis=1), 1e-30), 0, None)
    misfit = (p * p).sum() - 2 * beta * (q @ p) + beta**2 * (q * q).sum(axis=1)
    k = int(np.clip(np.argmin(misfit), 1, centres.size - 2))
    a, b, c = misfit[k - 1 : k + 2]
    curvature = a - 2 * b + c
    step = 0.5 * (a - c) / curvature if curvature > 0 else 0.0
    return float(centres[k] + 0.25 * np.clip(step, -1, 1))


def _block_profiles(weights: torch.Tensor, axis: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content profiles of blocks along ``axis`` (0 = y, 2 = x) of a content map, and the blocks' positions."""
    n = weights.shape[axis]
    # Fewer columns than blocks (a small working size) leaves some blocks empty: they are not blocks.
    spans = [(int(a), int(b)) for a, b in itertools.pairwise(np.linspace(0, n, N_BLOCKS + 1).round()) if b > a]
    positions = np.array([0.5 * (a + b - 1) - n // 2 for a, b in spans])
    profiles = [weights.narrow(axis, a, b - a).mean(dim=(0, 2)).numpy() for a, b in spans]
    return positions, profiles


def _line_slope(positions: np.ndarray, centres: np.ndarray) -> float:
    return _line_fit(positions, centres)[0]


def _line_fit(positions: np.ndarray, centres: np.ndarray) -> tuple[float, float]:
    """Slope of the least-squares line through ``(positions, centres)`` and its standard error."""
    design = np.stack([np.ones_like(positions), positions], axis=1)
    solution, *_ = np.linalg.lstsq(design, centres, rcond=None)
    residual = centres - design @ solution
    spread = float(((positions - positions.mean()) ** 2).sum())
    dof = len(positions) - 2
    error = math.sqrt(float(residual @ residual) / dof / spread) if dof > 0 and spread > 0 else math.inf
    return float(solution[1]), error


def _free_slope(weights: torch.Tensor, axis: int) -> float:
    """First slope: boxes fitted freely per block, blocks whose box is not the slab's left out.

    A block holding few particles, or whose profile a surface layer dominates, fits a box of another
    thickness (and so another centre); blocks within 20 % of the median thickness are kept.
    """
    positions, profiles = _block_profiles(weights, axis)
    fits = [fit_box(p) for p in profiles]
    thicknesses = np.array([f.thickness for f in fits])
    median = float(np.median(thicknesses))
    keep = np.abs(thicknesses - median) <= 0.2 * max(median, 1.0)
    if keep.sum() < 2:
        return 0.0
    return _line_slope(positions[keep], np.array([f.centre for f in fits])[keep])


def _constrained_slope(weights: torch.Tensor, axis: int, whole: SlabFit) -> tuple[float, float]:
    """Slope (and its standard error) from block centres fitted with the whole slab's thickness and edge blur
    (only the centre free): a free box per block scatters by a pixel where a thin slab holds few particles."""
    positions, profiles = _block_profiles(weights, axis)
    centres = np.array([fit_box_centre(p, thickness=whole.thickness, blur=whole.blur) for p in profiles])
    return _line_fit(positions, centres)


def level(map_: torch.Tensor, *, slope_x: float, slope_y: float) -> torch.Tensor:
    """Shift every column of a ``(ny, nz, nx)`` map along z by ``-(slope_x x + slope_y y)`` (linear interpolation)."""
    ny, nz, nx = map_.shape
    y = torch.arange(ny, dtype=torch.float64)[:, None] - ny // 2
    x = torch.arange(nx, dtype=torch.float64)[None, :] - nx // 2
    offset = slope_x * x + slope_y * y  # (ny, nx)
    z = torch.arange(nz, dtype=torch.float64)[None, :, None] + offset[:, None, :]
    low = torch.floor(z).clamp(0, nz - 2)
    weight = (z - low).clamp(0, 1).float()
    index = low.long()
    lower = torch.gather(map_, 1, index)
    upper = torch.gather(map_, 1, index + 1)
    inside = ((z >= 0) & (z <= nz - 1)).float()
    return (lower * (1 - weight) + upper * weight) * inside


def _thickness_blocks(levelled: torch.Tensor) -> list[np.ndarray]:
    """Content profiles ``(nz,)`` of :data:`THICKNESS_BLOCKS` ² blocks along x and y of a levelled content map."""
    ny, _, nx = levelled.shape
    ys = np.linspace(0, ny, THICKNESS_BLOCKS + 1).round().astype(int)
    xs = np.linspace(0, nx, THICKNESS_BLOCKS + 1).round().astype(int)
    return [levelled[y0:y1, :, x0:x1].mean(dim=(0, 2)).numpy().astype(np.float64)
            for (y0, y1), (x0, x1) in itertools.product(itertools.pairwise(ys), itertools.pairwise(xs))]  # fmt: skip


def _block_thicknesses(levelled: torch.Tensor) -> np.ndarray:
    """Thickness of the box fitted on its own to each of :data:`THICKNESS_BLOCKS` ² blocks of a levelled content
    map ``(ny, nz, nx)``, ``nan`` where a block shows no slab (:meth:`SlabMeasurement.why_not_found`)."""
    thicknesses = []
    for profile in _thickness_blocks(levelled):
        fit = fit_box(profile)
        block = SlabMeasurement(fit, profile, 0.0, 0.0)
        plateau = fit.thickness >= MIN_THICKNESS_PER_BLUR * fit.blur
        thicknesses.append(fit.thickness if plateau and block.is_plausible() else math.nan)
    return np.array(thicknesses)


def _kernel_thicknesses(levelled: torch.Tensor, kernel: np.ndarray, whole: SlabFit) -> np.ndarray:
    """Width of the box that, blurred by the measured ``kernel`` (:func:`.slab_blur.content_kernel`), fits each
    block of a levelled content map; ``nan`` where none fits. The whole profile's layer (its box widened by its
    blur) starts the search; every block's box is centred where the whole profile's is: the map is levelled, and
    a centre free in each block trades against its width where the faces are blurred (on a 20-voxel slab of blobs,
    with a kernel sized by the reconstruction's own spectrum, its blocks' widths scattered by 5.5 % of their median
    with the centre free, by 4.9 % with it shared)."""
    layer = whole.thickness + 2.0 * whole.blur
    profile = levelled.mean(dim=(0, 2)).numpy().astype(np.float64)
    _, centre = fit_blurred_box(profile, kernel, width0=layer, centre0=whole.centre)
    return np.array([fit_blurred_box(block, kernel, width0=layer, centre0=centre, centre_range_voxels=0.0)[0]
                     for block in _thickness_blocks(levelled)])  # fmt: skip


def measure_slab(slices: torch.Tensor, *, smoothing_voxels: float = 1.0,
                 central_fraction_xy: tuple[float, float] = (CENTRAL_FRACTION_X, CENTRAL_FRACTION_Y),
                 blur_kernel: Callable[[], np.ndarray] | None = None) -> SlabMeasurement:  # fmt: skip
    """Thickness, centre and tilt of the specimen slab in a reconstruction ``(ny, nz, nx)`` (voxel units),
    measured in the central ``central_fraction_xy`` of the slices along x and y.

    Where fewer than half the blocks show a box with two faces of their own (a thin slab, whose edges are
    blurred over a third of its width by its own particles and the missing wedge), and ``blur_kernel`` is
    given, the blocks' boxes are fitted again with the blur it returns (:func:`.slab_blur.content_kernel`)
    fixed: their width is then no longer traded against their blur."""
    ny, _nz, nx = slices.shape
    weights = content(slices.float(), smoothing_voxels=smoothing_voxels)
    central = weights[_central(ny, central_fraction_xy[1]), :, _central(nx, central_fraction_xy[0])]
    slope_x = _free_slope(central, axis=2)
    slope_y = _free_slope(central, axis=0)
    # The slab's thickness and edges from the roughly levelled map; then the blocks' centres with both fixed.
    rough = level(central, slope_x=slope_x, slope_y=slope_y)
    whole = fit_box(rough.mean(dim=(0, 2)).numpy())
    # Without a box of some thickness there are no faces to put a plane through: the tilt is undetermined.
    error_x = math.inf
    if whole.thickness >= 2.0:
        (correction_x, error_x), (correction_y, _) = (
            _constrained_slope(rough, 2, whole),
            _constrained_slope(rough, 0, whole),
        )
        slope_x, slope_y = slope_x + correction_x, slope_y + correction_y
    levelled = level(central, slope_x=slope_x, slope_y=slope_y)
    profile = levelled.mean(dim=(0, 2)).numpy().astype(np.float64)
    measured = SlabMeasurement(fit_box(profile), profile, slope_x, slope_y, error_x, _block_thicknesses(levelled))
    if blur_kernel is None or math.isfinite(measured.thickness_error_fraction) or measured.why_not_found():
        return measured
    thicknesses = _kernel_thicknesses(levelled, blur_kernel(), measured.fit)
    return SlabMeasurement(measured.fit, profile, slope_x, slope_y, error_x, thicknesses)
