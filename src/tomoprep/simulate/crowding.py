"""The crowded content of a cell: many small proteins filling the slab, placed, projected and rasterized in bulk.

A lamella of cytoplasm (or a lysate, or a concentrated sample in thin ice) holds macromolecules at 15–30 % of its
volume. They give the slab a texture throughout its depth that a reconstruction shows at any working pixel, and
that ends at the slab's surfaces: what a user sees as the lamella. The phantom's "crowders" are Gaussian balls of
protein density in a few sizes (:data:`CROWDER_SIGMAS_ANGSTROM`), too many to draw one by one (about 10⁴ in the
demo's slab, 10⁵–10⁶ in the full preset's): every tilt splats their projected centres onto a pixel grid per size
and convolves with the ball's projection in Fourier space (one FFT per size and depth layer).

Densities are contrasts relative to ice in phase radians per Å at 300 kV (:mod:`tomoprep.simulate.phantom`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from scipy.spatial import cKDTree

from tomoprep.simulate.ctf import exposure_filter, rfft2_frequencies

#: Sizes of the crowders (standard deviations of the balls, Å): about 45, 105 and 255 kDa of protein at
#: 1.21 Å³/Da (a ball of density ρ holds the mass of ``(2π)^1.5 σ³`` Å³ of it). Each size takes an equal share
#: of the crowded volume.
CROWDER_SIGMAS_ANGSTROM = (15.0, 20.0, 27.0)
#: Crowders' centres are rounded to this many decimals of an Å in the specimen frame, so that truth.json holds
#: exactly what is simulated in few digits.
CROWDER_POSITION_DECIMALS = 1
#: The splatted centres are convolved on a grid padded by this many sigmas of the largest size (what the ball's
#: projection holds beyond is below 4e-4 of its peak), so that nothing wraps around.
_PAD_SIGMAS = 4.0
#: The splat grid's pixel is at most this fraction of the smallest sigma: its bilinear interpolation is then good
#: to about 1e-3 of a ball's peak, and the balls hold nothing beyond its Nyquist.
SPLAT_PIXEL_SIGMAS = 0.25


def ball_volume_angstrom3(sigma_angstrom: float | np.ndarray) -> float | np.ndarray:
    """Volume (Å³) of protein whose mass a Gaussian ball of protein density and this sigma holds."""
    return (2 * math.pi) ** 1.5 * np.asarray(sigma_angstrom) ** 3


def place_crowders(
    rng: np.random.Generator,
    *,
    half_extent_angstrom: tuple[float, float, float],
    volume_fraction: float,
    excluded_shells: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Crowders at random in a box (slab coordinates), none inside the other bodies.

    Parameters
    ----------
    rng
        Random state.
    half_extent_angstrom
        ``(a, b, c)`` half extents of the box, Å: the field of view in the slab's plane and half the slab's
        thickness along its normal. Centres fill the whole depth, so the content's density falls to half its
        level at the surfaces (a ball at the surface reaches as far out as in).
    volume_fraction
        Fraction of the box's volume the crowders' protein takes before those inside other bodies are removed.
    excluded_shells
        ``(m, 3)`` centres, ``(m,)`` inner and ``(m,)`` outer radii (Å) of the spherical shells the other bodies
        take (inner radius 0 for a solid body): no crowder's centre lies in one.

    Returns
    -------
    centres
        ``(n, 3)`` slab coordinates, Å.
    size_index
        ``(n,)`` index into :data:`CROWDER_SIGMAS_ANGSTROM`.
    """
    half = np.asarray(half_extent_angstrom, dtype=float)
    volume = float(np.prod(2 * half))
    counts = [round(volume_fraction / len(CROWDER_SIGMAS_ANGSTROM) * volume / float(ball_volume_angstrom3(s)))
              for s in CROWDER_SIGMAS_ANGSTROM]  # fmt: skip
    centres = rng.uniform(-1.0, 1.0, (sum(counts), 3)) * half
    size_index = np.repeat(np.arange(len(counts)), counts)
    keep = np.ones(len(centres), dtype=bool)
    shell_centres, inner, outer = (np.asarray(a, dtype=float) for a in excluded_shells)
    shell_centres = shell_centres.reshape(-1, 3)
    if len(centres) and len(outer):
        within = cKDTree(centres).query_ball_point(shell_centres, r=outer)
        for centre, low, found in zip(shell_centres, inner, within, strict=True):
            hits = np.asarray(found, dtype=np.int64)
            if low > 0 and hits.size:
                hits = hits[np.linalg.norm(centres[hits] - centre, axis=1) >= low]
            keep[hits] = False
    return centres[keep], size_index[keep]


def rasterize_crowders(
    volume: np.ndarray,
    centres_zyx_voxels: np.ndarray,
    size_index: np.ndarray,
    *,
    density: float,
    voxel_size_angstrom: float,
) -> None:
    """Add the crowders' density to ``volume`` ``(z, y, x)`` in place, each as
    :func:`~tomoprep.simulate.phantom.rasterize` adds a ball: sampled at the voxels within 4 sigmas, widened by
    the voxel's box variance ``v²/12`` with its integral kept. Vectorised over crowders of one size (the ball is
    the product of three 1D Gaussians), in chunks that keep the temporaries to some 100 MB.
    """
    v = voxel_size_angstrom
    shape = np.array(volume.shape)
    for index, sigma in enumerate(CROWDER_SIGMAS_ANGSTROM):
        points = centres_zyx_voxels[size_index == index]
        wide = math.sqrt(sigma**2 + v**2 / 12)
        offsets = np.arange(-math.ceil(4 * wide / v), math.ceil(4 * wide / v) + 1)
        chunk = max(1, 4_000_000 // offsets.size**3)
        for start in range(0, len(points), chunk):
            part = points[start : start + chunk]
            cells = np.rint(part).astype(np.int64)[:, :, None] + offsets  # (n, 3 axes, window)
            weights = np.exp(-0.5 * ((cells - part[:, :, None]) * (v / wide)) ** 2)
            weights *= (cells >= 0) & (cells < shape[None, :, None])
            cells = np.clip(cells, 0, shape[None, :, None] - 1)
            flat = (cells[:, 0, :, None, None] * shape[1] + cells[:, 1, None, :, None]) * shape[2]
            flat = flat + cells[:, 2, None, None, :]
            values = weights[:, 0, :, None, None] * weights[:, 1, None, :, None] * weights[:, 2, None, None, :]
            total = np.bincount(flat.ravel(), weights=values.ravel(), minlength=volume.size)
            volume += (density * (sigma / wide) ** 3 * total).reshape(volume.shape).astype(volume.dtype)


class CrowderLayers:
    """The crowders of one tilt, by depth layer: their projected phase, added to a layer's image on demand.

    Each size's centres are splatted (bilinear weights) onto a grid padded by what their projections reach beyond
    the image, of pixels at most :data:`SPLAT_PIXEL_SIGMAS` of the smallest sigma (a whole multiple ``b`` of the
    image's: 2 at 1.7 Å, 1 from 3.75 Å up), and convolved there in Fourier space; the sum of the sizes' spectra is
    brought to the image's pixels by zero-padding (exact: the balls hold nothing beyond that grid's Nyquist).
    About 1e-3 of a ball's peak accurate at 3 Å pixels, 1e-2 at 12 Å (the splat's interpolation).

    Parameters
    ----------
    xy_pixels, depth_angstrom
        ``(n, 2)`` projected centres (image pixels ``(x, y)``) and ``(n,)`` depths (Å) of every crowder.
    size_index
        ``(n,)`` index into :data:`CROWDER_SIGMAS_ANGSTROM`.
    density
        The crowders' density (phase per Å at ``voltage_kv``, already scaled from 300 kV).
    image_shape_yx, pixel_spacing_angstrom
        The image the layers are drawn into.
    layer_thickness_angstrom
        A crowder at depth ``z'`` belongs to layer ``round(z' / layer_thickness)`` (``inf``: all in layer 0).
    exposure_e_per_angstrom2, voltage_kv
        Exposure the crowders are filtered for (as every primitive is), and the voltage.
    """

    def __init__(self, xy_pixels: np.ndarray, depth_angstrom: np.ndarray, size_index: np.ndarray, *, density: float,
                 image_shape_yx: tuple[int, int], pixel_spacing_angstrom: float, layer_thickness_angstrom: float,
                 exposure_e_per_angstrom2: float, voltage_kv: float) -> None:  # fmt: skip
        px = pixel_spacing_angstrom
        self.bin = max(1, math.floor(SPLAT_PIXEL_SIGMAS * min(CROWDER_SIGMAS_ANGSTROM) / px))
        self.pad = math.ceil(_PAD_SIGMAS * max(CROWDER_SIGMAS_ANGSTROM) / (self.bin * px)) + 2  # coarse pixels
        self.image_shape_yx = image_shape_yx
        self.grid_shape = tuple(scipy.fft.next_fast_len(-(-n // self.bin) + 2 * self.pad, real=True)
                                for n in image_shape_yx)  # fmt: skip
        # Splat-grid coordinates; crowders whose projection cannot reach the image are left out.
        xy = (np.asarray(xy_pixels, dtype=float) + self.pad * self.bin) / self.bin
        inside = np.all((xy >= 0) & (xy < np.array(self.grid_shape[::-1]) - 1), axis=1)
        self.xy = xy[inside]
        self.layer = np.rint(np.asarray(depth_angstrom)[inside] / layer_thickness_angstrom).astype(np.int64)
        self.size_index = np.asarray(size_index)[inside]
        self.transfer = self._transfer(density, px, exposure_e_per_angstrom2, voltage_kv)

    @property
    def layers(self) -> set[int]:
        """The depth layers that hold crowders the image sees."""
        return {int(layer) for layer in np.unique(self.layer)}

    def _transfer(self, density: float, pixel: float, exposure: float, voltage_kv: float) -> np.ndarray:
        """Per size, what turns the splat grid's rfft2 into the image's: ``(sizes, h, w // 2 + 1)``.

        The ball's 2D transform ``ρ (2π)^1.5 σ³ exp(-2π²σ²k²)`` per image pixel area, exposure-filtered, tapered
        from 0.8 to 1.0 × the image's Nyquist as every primitive's projection is, and divided by the bilinear
        splat's own transfer ``sinc²(kx p) sinc²(ky p)`` on the splat grid's pixels ``p`` (so the mean image is the
        exact projection).
        """
        coarse = self.bin * pixel
        k_y, k_x = rfft2_frequencies(self.grid_shape, pixel_spacing_angstrom=coarse)
        k2 = (k_x * k_x + k_y * k_y).astype(np.float64)
        k = np.sqrt(k2)
        nyquist = 0.5 / pixel
        taper = 0.5 * (1 - np.cos(math.pi * np.clip((nyquist - k) / (0.2 * nyquist), 0.0, 1.0)))
        splat = (np.sinc(k_x * coarse) * np.sinc(k_y * coarse)) ** 2
        common = taper * exposure_filter(k, exposure_e_per_angstrom2=exposure, voltage_kv=voltage_kv) / splat
        sigmas = np.array(CROWDER_SIGMAS_ANGSTROM)[:, None, None]
        balls = ball_volume_angstrom3(sigmas) * np.exp(-2 * math.pi**2 * sigmas**2 * k2)
        return (density / pixel**2 * balls * common).astype(np.float32)

    def _splat(self, xy: np.ndarray) -> np.ndarray:
        """Bilinear splat of unit weights at ``xy`` (splat-grid pixels, all inside) onto the splat grid."""
        height, width = self.grid_shape
        base = np.floor(xy).astype(np.int64)
        fx, fy = (xy - base).T
        grid = np.zeros(height * width, dtype=np.float64)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            weight = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
            grid += np.bincount((base[:, 1] + dy) * width + base[:, 0] + dx, weights=weight, minlength=grid.size)
        return grid.reshape(height, width).astype(np.float32)

    def _spectrum(self, xy: np.ndarray, size: int) -> np.ndarray:
        """The rfft2 of the phase of crowders of one size at ``xy`` (splat-grid pixels), on the splat grid."""
        spectrum = scipy.fft.rfft2(self._splat(xy), workers=-1)
        spectrum *= self.transfer[size]
        return spectrum

    def add(self, image: np.ndarray, layer: int) -> None:
        """Add the projected phase (rad) of the crowders in ``layer`` to ``image`` (in place)."""
        chosen = self.layer == layer
        if not np.any(chosen):
            return
        xy, sizes = self.xy[chosen], self.size_index[chosen]
        # One size at a time: a 4K image's grids are large, so only one splat and one spectrum are held at once.
        spectra = (self._spectrum(xy[sizes == size], size) for size in np.unique(sizes))
        total = next(spectra)
        for spectrum in spectra:
            total += spectrum
        fine_shape = (self.grid_shape[0] * self.bin, self.grid_shape[1] * self.bin)
        phase = scipy.fft.irfft2(_zero_padded(total, fine_shape), s=fine_shape, workers=-1)
        rows, columns = self.image_shape_yx
        start = self.pad * self.bin
        image += phase[start : start + rows, start : start + columns].astype(image.dtype, copy=False)


def _zero_padded(spectrum: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """An rfft2 ``(h, w // 2 + 1)`` of an ``(h, w)`` grid placed in that of a larger grid ``shape_yx`` (its
    Nyquist row and column dropped, as they hold nothing here)."""
    h = spectrum.shape[0]
    if (h, spectrum.shape[1]) == (shape_yx[0], shape_yx[1] // 2 + 1):
        return spectrum
    out = np.zeros((shape_yx[0], shape_yx[1] // 2 + 1), dtype=spectrum.dtype)
    positive, negative, columns = (h + 1) // 2, (h - 1) // 2, spectrum.shape[1] - 1
    out[:positive, :columns] = spectrum[:positive, :columns]
    if negative:
        out[-negative:, :columns] = spectrum[-negative:, :columns]
    return out
