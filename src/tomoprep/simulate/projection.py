"""The phantom projected into one tilt, depth layer by depth layer: its primitives drawn and the ice's texture.

Every primitive becomes a radial blob of projected phase (:mod:`tomoprep.simulate.profiles`, exposure-filtered)
at the pixel and in the depth layer where :func:`tomoprep.simulate.geometry.project_points` puts its centre; the
crowders are drawn in bulk (:class:`tomoprep.simulate.crowding.CrowderLayers`); the ice slab adds to each layer
the texture of the ice that layer holds. :func:`layer_phases` yields the layers one
by one, for :mod:`tomoprep.simulate.imaging` to pass each through the CTF at its own defocus.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft

from tomoprep.simulate.crowding import CrowderLayers
from tomoprep.simulate.ctf import (
    exposure_filter,
    hankel_frequencies,
    interaction_constant_rad_per_volt_angstrom,
    rfft2_frequencies,
)
from tomoprep.simulate.geometry import MIN_SLAB_COSINE, TiltGeometry, project_points, projection_matrix
from tomoprep.simulate.phantom import Phantom
from tomoprep.simulate.profiles import projection_profiles

#: Power spectral density of the ice texture's phase per Å of ice path at 300 kV, rad²·Å² per Å (white above
#: ~1/100 Å⁻¹): 0.13 rad rms per 1.5 Å pixel through 2000 Å of ice, so that one 3 e/Å² tilt shows Thon rings
#: (~20 % modulation of the power spectrum at 20 Å, visible to ~8 Å at 3 µm defocus).
ICE_TEXTURE_PSD_RAD2_ANGSTROM = 2e-5
#: The ice texture's spectrum is ``1 - exp(-(k L)²)`` times white, with this L (Å): no blotches at low resolution.
_ICE_TEXTURE_CUT_ON_ANGSTROM = 100.0


@dataclass(frozen=True)
class _Drawable:
    """A radially symmetric projected-phase blob: centre (pixels) and profile (rad) sampled every ``r_step``."""

    x: float
    y: float
    profile: np.ndarray


#: A blob's profile is cut where it stays below this fraction of its largest magnitude.
_PROFILE_CUT = 1e-5


def _window_radius_angstrom(phantom: Phantom, pixel_spacing_angstrom: float) -> tuple[np.ndarray, np.ndarray]:
    # Generous: the band limit and a strong exposure filter widen the blobs; _cut trims each profile after.
    margin = 8 * pixel_spacing_angstrom + 30.0
    return 5 * phantom.ball_sigmas_angstrom + margin, phantom.sphere_radii_angstrom + margin


def _cut(profile: np.ndarray) -> np.ndarray:
    """The profile up to where it falls below ``_PROFILE_CUT`` of its largest magnitude for good (plus one zero)."""
    magnitude = np.abs(profile)
    above = np.flatnonzero(magnitude >= _PROFILE_CUT * magnitude.max(initial=0.0))
    last = int(above[-1]) if above.size else 0
    return np.append(profile[: last + 1], 0.0).astype(np.float32)


def _drawables(
    phantom: Phantom,
    g: TiltGeometry,
    *,
    image_shape_yx: tuple[int, int],
    pixel_spacing_angstrom: float,
    layer_thickness_angstrom: float,
    exposure_e_per_angstrom2: float,
    voltage_kv: float,
) -> tuple[float, dict[int, list[_Drawable]]]:
    """The phantom's primitives as exposure-filtered radial blobs, by depth layer; and the profiles' ``r`` step."""
    ball_windows, sphere_windows = _window_radius_angstrom(phantom, pixel_spacing_angstrom)
    r_max = float(max(ball_windows.max(initial=0.0), sphere_windows.max(initial=0.0), pixel_spacing_angstrom))
    k = hankel_frequencies(pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max)
    sigmas, ball_kind = np.unique(phantom.ball_sigmas_angstrom, return_inverse=True)
    radii, sphere_kind = np.unique(phantom.sphere_radii_angstrom, return_inverse=True)
    r, ball_profiles, sphere_profiles = projection_profiles(
        sigmas, radii, pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max,
        frequency_filter=exposure_filter(k, exposure_e_per_angstrom2=exposure_e_per_angstrom2, voltage_kv=voltage_kv),
    )  # fmt: skip
    # Densities are phase per Å at 300 kV; the phase scales with the interaction constant.
    scale = interaction_constant_rad_per_volt_angstrom(voltage_kv) / interaction_constant_rad_per_volt_angstrom(300.0)
    step = float(r[1] - r[0])
    layers: dict[int, list[_Drawable]] = {}
    kinds = [
        (phantom.ball_centres_angstrom, ball_profiles[ball_kind], phantom.ball_densities, ball_windows),
        (phantom.sphere_centres_angstrom, sphere_profiles[sphere_kind], phantom.sphere_densities, sphere_windows),
    ]
    for centres, profiles, densities, windows in kinds:
        xy, depth = project_points(
            centres, g, image_shape_yx=image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom
        )
        layer_index = np.rint(depth / layer_thickness_angstrom).astype(int)
        # Concentric spheres (a vesicle's shells) in one layer are drawn once, as the sum of their profiles.
        merged: dict[tuple[int, float, float], np.ndarray] = {}
        for i in range(len(centres)):
            key = (int(layer_index[i]), float(xy[i, 0]), float(xy[i, 1]))
            n = min(int(windows[i] / step) + 2, r.size)
            profile = (scale * densities[i]) * profiles[i, :n]
            previous = merged.get(key)
            merged[key] = profile if previous is None else _sum_profiles(previous, profile)
        for (layer, x, y), profile in merged.items():
            layers.setdefault(layer, []).append(_Drawable(x, y, _cut(profile)))
    return step, layers


def _sum_profiles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    longer, shorter = (a, b) if a.size >= b.size else (b, a)
    total = longer.copy()
    total[: shorter.size] += shorter
    return total


def _draw(image: np.ndarray, blob: _Drawable, *, r_step_pixels: float) -> None:
    """Add a radial blob into ``image`` (in place), only inside its window."""
    height, width = image.shape
    radius = (blob.profile.size - 1) * r_step_pixels
    x0, x1 = max(math.floor(blob.x - radius), 0), min(math.ceil(blob.x + radius) + 1, width)
    y0, y1 = max(math.floor(blob.y - radius), 0), min(math.ceil(blob.y + radius) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return
    dx = ((np.arange(x0, x1, dtype=np.float32) - np.float32(blob.x)) / np.float32(r_step_pixels)) ** 2
    dy = ((np.arange(y0, y1, dtype=np.float32) - np.float32(blob.y)) / np.float32(r_step_pixels)) ** 2
    index = np.sqrt(dy[:, None] + dx[None, :])
    image[y0:y1, x0:x1] += np.interp(index, np.arange(blob.profile.size), blob.profile, right=0.0).astype(image.dtype)


@dataclass(frozen=True)
class _IceSlab:
    """The slab seen along one tilt's beam: at pixel ``(x, y)`` it spans depths ``mid ± half_depth`` (Å) with
    ``mid = offset + slope_x * x + slope_y * y``."""

    offset: float
    slope_x: float
    slope_y: float
    half_depth: float

    @classmethod
    def of(cls, phantom: Phantom, g: TiltGeometry, *, image_shape_yx: tuple[int, int], pixel: float) -> _IceSlab:
        rotation = projection_matrix(g)
        normal, centre = rotation @ phantom.slab_normal, rotation @ phantom.slab_centre_angstrom
        cosine = math.copysign(max(abs(normal[2]), MIN_SLAB_COSINE), normal[2])
        height, width = image_shape_yx
        # Image-plane position (Å) of pixel (0, 0) in the rotated frame, relative to the slab centre.
        x0 = -(width // 2) * pixel - g.shift_x_angstrom - centre[0]
        y0 = -(height // 2) * pixel - g.shift_y_angstrom - centre[1]
        return cls(
            offset=centre[2] - (normal[0] * x0 + normal[1] * y0) / cosine,
            slope_x=-normal[0] * pixel / cosine,
            slope_y=-normal[1] * pixel / cosine,
            half_depth=phantom.thickness_angstrom / (2 * abs(cosine)),
        )

    def extent(self, image_shape_yx: tuple[int, int], axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Least and greatest mid-depth over each row (``axis=0``) or column (``axis=1``) of the image, Å."""
        along, across = (self.slope_y, self.slope_x) if axis == 0 else (self.slope_x, self.slope_y)
        base = self.offset + along * np.arange(image_shape_yx[axis])
        span = across * (image_shape_yx[1 - axis] - 1)
        return base + min(span, 0.0), base + max(span, 0.0)

    def box(self, image_shape_yx: tuple[int, int], low: float, high: float) -> tuple[slice, slice] | None:
        """The bounding box of the pixels whose ray crosses depths ``[low, high)``; None if there is none."""
        ranges = []
        for axis in (0, 1):
            least, greatest = self.extent(image_shape_yx, axis)
            hits = np.flatnonzero((least - self.half_depth < high) & (greatest + self.half_depth > low))
            if hits.size == 0:
                return None
            ranges.append(slice(int(hits[0]), int(hits[-1]) + 1))
        return ranges[0], ranges[1]

    def root_overlap(self, box: tuple[slice, slice], low: float, high: float) -> np.ndarray:
        """Square root of the length (Å) of each ray in ``box`` inside the depth range ``[low, high)``, float32."""
        half_layer, middle = (high - low) / 2, (high + low) / 2
        y = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None] * np.float32(self.slope_y)
        x = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :] * np.float32(self.slope_x)
        distance = y + (x + np.float32(self.offset - middle))
        # The overlap of [mid ± half_depth] with [middle ± half_layer] is a trapezoid in |mid - middle|.
        np.abs(distance, out=distance)
        np.subtract(np.float32(self.half_depth + half_layer), distance, out=distance)
        np.clip(distance, 0.0, 2 * min(self.half_depth, half_layer), out=distance)
        return np.sqrt(distance, out=distance)


class _IceTexture:
    """The ice texture of one tilt: per depth layer, a white phase field (above its cut-on) with unit variance per
    Å of path, drawn independently of every other layer's.

    Independent draws, not offset windows of one field: shifted copies of one field stay correlated frequency by
    frequency (their cross-spectrum is the field's power times a phase ramp), so their sum through the layers'
    CTFs would carry fringes across the Thon rings, fixed in direction and the same in every tilt.
    """

    def __init__(
        self, image_shape_yx: tuple[int, int], *, rms_per_root_angstrom: float, cut_on_pixels: float, seed: int
    ) -> None:
        self.shape = image_shape_yx
        self.rms = rms_per_root_angstrom
        k_y, k_x = rfft2_frequencies(image_shape_yx, pixel_spacing_angstrom=1.0)
        self.cut_on = -np.expm1(-((k_x * k_x + k_y * k_y) * np.float32(cut_on_pixels**2)))
        self.seed = seed

    def _field(self, layer: int) -> np.ndarray:
        # Drawn in Fourier space, so the cut-on costs nothing; uniform draws are cheaper than normal ones, and
        # a sum over many coefficients is Gaussian anyway. E|c|² = 6 N var(uniform) = N gives unit variance.
        rng = np.random.default_rng((self.seed, layer % 2**32))
        spectrum = np.empty(self.cut_on.shape, dtype=np.complex64)
        spectrum.real = rng.random(spectrum.shape, dtype=np.float32)
        spectrum.imag = rng.random(spectrum.shape, dtype=np.float32)
        spectrum -= np.complex64(0.5 + 0.5j)
        spectrum *= np.float32(self.rms * math.sqrt(6.0 * self.shape[0] * self.shape[1]))
        spectrum *= self.cut_on
        return scipy.fft.irfft2(spectrum, s=self.shape, workers=-1)

    def add(self, image: np.ndarray, slab: _IceSlab, layer: int, low: float, high: float) -> None:
        """Add the texture of the ice between depths ``low`` and ``high`` (Å) to a layer's phase (in place)."""
        box = slab.box(image.shape, low, high)
        if box is None:
            return
        amplitude = slab.root_overlap(box, low, high)
        amplitude *= self._field(layer)[box]
        image[box] += amplitude


def _crowder_layers(phantom: Phantom, g: TiltGeometry, *, image_shape_yx: tuple[int, int], pixel: float,
                    layer_thickness_angstrom: float, exposure: float,
                    voltage_kv: float) -> CrowderLayers | None:  # fmt: skip
    if not len(phantom.crowder_centres_angstrom):
        return None
    xy, depth = project_points(phantom.crowder_centres_angstrom, g, image_shape_yx=image_shape_yx,
                               pixel_spacing_angstrom=pixel)  # fmt: skip
    scale = interaction_constant_rad_per_volt_angstrom(voltage_kv) / interaction_constant_rad_per_volt_angstrom(300.0)
    return CrowderLayers(xy, depth, phantom.crowder_size_index, density=scale * phantom.crowder_density,
                         image_shape_yx=image_shape_yx, pixel_spacing_angstrom=pixel,
                         layer_thickness_angstrom=layer_thickness_angstrom, exposure_e_per_angstrom2=exposure,
                         voltage_kv=voltage_kv)  # fmt: skip


def layer_phases(
    phantom: Phantom,
    g: TiltGeometry,
    *,
    image_shape_yx: tuple[int, int],
    pixel_spacing_angstrom: float,
    layer_thickness_angstrom: float,
    exposure_e_per_angstrom2: float,
    voltage_kv: float,
    ice_texture_psd_rad2_angstrom: float,
    seed: int,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(layer depth (Å), projected phase (rad) of the layer)`` for every non-empty depth layer.

    The phase image is one buffer, overwritten for the next layer: use it before asking for the next.
    """
    step, drawables = _drawables(
        phantom, g, image_shape_yx=image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom,
        layer_thickness_angstrom=layer_thickness_angstrom, exposure_e_per_angstrom2=exposure_e_per_angstrom2,
        voltage_kv=voltage_kv,
    )  # fmt: skip
    slab = _IceSlab.of(phantom, g, image_shape_yx=image_shape_yx, pixel=pixel_spacing_angstrom)
    crowders = _crowder_layers(phantom, g, image_shape_yx=image_shape_yx, pixel=pixel_spacing_angstrom,
                               layer_thickness_angstrom=layer_thickness_angstrom,
                               exposure=exposure_e_per_angstrom2, voltage_kv=voltage_kv)  # fmt: skip
    layers, texture = set(drawables) | (crowders.layers if crowders else set()), None
    if ice_texture_psd_rad2_angstrom > 0:
        least, greatest = slab.extent(image_shape_yx, axis=0)
        lowest = round((least.min() - slab.half_depth) / layer_thickness_angstrom)
        highest = round((greatest.max() + slab.half_depth) / layer_thickness_angstrom)
        layers.update(range(lowest, highest + 1))
        # Phase scales with the interaction constant; the PSD is given at 300 kV.
        scale = interaction_constant_rad_per_volt_angstrom(voltage_kv) / interaction_constant_rad_per_volt_angstrom(300)
        rms = scale * math.sqrt(ice_texture_psd_rad2_angstrom) / pixel_spacing_angstrom
        cut_on = _ICE_TEXTURE_CUT_ON_ANGSTROM / pixel_spacing_angstrom
        texture = _IceTexture(image_shape_yx, rms_per_root_angstrom=rms, cut_on_pixels=cut_on, seed=seed)
    phase = np.empty(image_shape_yx, dtype=np.float32)
    for layer in sorted(layers):
        phase.fill(0.0)
        for blob in drawables.get(layer, []):
            _draw(phase, blob, r_step_pixels=step / pixel_spacing_angstrom)
        if crowders is not None:
            crowders.add(phase, layer)
        if texture is not None:
            low, high = (layer - 0.5) * layer_thickness_angstrom, (layer + 0.5) * layer_thickness_angstrom
            texture.add(phase, slab, layer, low, high)
        yield (layer * layer_thickness_angstrom if layer else 0.0), phase  # 0 × inf for projected_phase
