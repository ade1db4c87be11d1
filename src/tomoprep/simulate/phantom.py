"""A phantom specimen made of analytic primitives, with its ground truth.

Specimen coordinates ``(x, y, z)`` are in Å from the specimen centre, ``z`` along the beam at zero tilt (the
frame RELION 5's projection model rotates, see :mod:`tomoprep.simulate.imaging`).

Density unit
    Every density is a contrast relative to vitreous ice, in radians of electron phase shift per Å of path at
    300 kV (``σ · ΔV``: interaction constant 6.53e-4 rad/(V·Å) times the potential above that of ice, in V).
    Protein is about +0.0017 (≈2.6 V above ice), lipid head groups +0.0015, the hydrocarbon core -0.0004,
    gold about +0.012. The imaging model scales it with the interaction constant for other voltages.
    A Gaussian ball's density is its value at the centre: the ball is ``ρ exp(-|X - c|² / (2 σ²))``, so its
    projected phase at the centre is ``ρ σ sqrt(2π)`` radians. A sphere is uniform: ``ρ`` for ``|X - c| ≤ R``.
Ice slab
    the specimen is a slab (lamella) of thickness ``t`` whose normal is ``Ry(pretilt) · ẑ`` and whose centre is
    ``(0, 0, z_offset)``; every primitive lies inside it. Ice and the vacuum outside the slab both have
    density 0: the imaging model gives ice only attenuation and a texture, never phase contrast of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tomoprep.errors import InputError
from tomoprep.simulate.ctf import band_limited_profiles, hankel_frequencies

PROTEIN_DENSITY = 0.0017
HEADGROUP_DENSITY = 0.0015
HYDROCARBON_DENSITY = -0.0004
GOLD_DENSITY = 0.012
GOLD_RADIUS_ANGSTROM = 50.0
LEAFLET_WIDTH_ANGSTROM = 20.0
#: Distance between the centres of the two leaflets of a bilayer.
LEAFLET_SEPARATION_ANGSTROM = 40.0
VESICLE_RADIUS_RANGE_ANGSTROM = (200.0, 600.0)
#: Lengths of the chiral object's arms (long, medium, short) before any shrinking to fit a thin slab.
CHIRAL_ARM_LENGTHS_ANGSTROM = (600.0, 400.0, 250.0)
#: Arms are rods of overlapping balls, ~40 Å thick (3 pixels at bin 8 of 1.5 Å), twice as dense as protein
#: (a marker, like a nucleic-acid-rich body) so that they stand out in single tilts.
_CHIRAL_BALL_SIGMA_ANGSTROM = 17.0
_CHIRAL_BALL_SPACING_ANGSTROM = 20.0
_CHIRAL_DENSITY = 2 * PROTEIN_DENSITY
#: Nothing is placed closer than this to a slab surface.
_SURFACE_MARGIN_ANGSTROM = 10.0
_MIN_THICKNESS_ANGSTROM = 300.0
#: The complex: ball centres and sigmas (Å, for a 120 Å complex), deliberately without any symmetry. Its mass,
#: Σ ρ (2π)^1.5 σ³ = 1000 rad·Å², is that of 0.5 MDa of protein (1.21 Å³/Da): plausible for a lumpy 120 Å complex.
_COMPLEX_TEMPLATE = np.array(
    [
        [0.0, 0.0, 0.0, 22.0],
        [30.0, 8.0, -6.0, 19.0],
        [-26.0, 20.0, 10.0, 18.0],
        [6.0, -34.0, 14.0, 17.0],
        [-10.0, -6.0, 38.0, 15.0],
        [42.0, -26.0, -22.0, 12.0],
        [-36.0, -30.0, -16.0, 14.0],
        [16.0, 34.0, 30.0, 11.0],
    ]
)


def _empty_points() -> np.ndarray:
    return np.zeros((0, 3))


@dataclass(frozen=True, eq=False)
class Phantom:
    """The specimen: Gaussian balls and uniform spheres inside an ice slab (see the module docstring for units).

    Attributes
    ----------
    ball_centres_angstrom, ball_sigmas_angstrom, ball_densities
        ``(n, 3)`` centres (x, y, z) in Å, ``(n,)`` standard deviations in Å, ``(n,)`` centre densities.
    sphere_centres_angstrom, sphere_radii_angstrom, sphere_densities
        ``(m, 3)`` centres in Å, ``(m,)`` radii in Å, ``(m,)`` signed uniform densities (a bilayer is a
        difference of concentric spheres).
    thickness_angstrom, pretilt_deg, z_offset_angstrom
        The ice slab: thickness (Å), rotation of its normal about the specimen y axis (degrees), centre along z.
    chiral_centre_angstrom, chiral_hand
        ``(3,)`` junction of the chiral object's arms; ``+1`` when its arms (long, medium, short) form a
        right-handed frame (``make_phantom`` always builds +1).
    labels
        Per ball: ``"complex:<i>"`` or ``"chiral"``.
    sphere_labels
        Per sphere: ``"vesicle:<i>"`` or ``"gold:<i>"``.
    chiral_arms_angstrom
        ``(3, 3)`` rows: vectors (Å) from the junction to the ends of the long, medium and short arm.
    complex_centres_angstrom, complex_rotations
        ``(k, 3)`` centres and ``(k, 3, 3)`` rotations of the copies of the complex: ball ``j`` of copy ``i`` is
        at ``centre_i + rotation_i @ template_j`` (:func:`complex_template` of ``complex_size_angstrom``).
    """

    ball_centres_angstrom: np.ndarray
    ball_sigmas_angstrom: np.ndarray
    ball_densities: np.ndarray
    sphere_centres_angstrom: np.ndarray
    sphere_radii_angstrom: np.ndarray
    sphere_densities: np.ndarray
    thickness_angstrom: float
    pretilt_deg: float
    z_offset_angstrom: float
    chiral_centre_angstrom: np.ndarray
    chiral_hand: int
    labels: tuple[str, ...]
    sphere_labels: tuple[str, ...] = ()
    chiral_arms_angstrom: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    complex_centres_angstrom: np.ndarray = field(default_factory=_empty_points)
    complex_rotations: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    complex_size_angstrom: float = 120.0

    @property
    def slab_normal(self) -> np.ndarray:
        """Unit normal of the ice slab in specimen coordinates, ``(3,)``."""
        angle = math.radians(self.pretilt_deg)
        return np.array([math.sin(angle), 0.0, math.cos(angle)])

    @property
    def slab_centre_angstrom(self) -> np.ndarray:
        """Centre of the ice slab, Å, ``(3,)``."""
        return np.array([0.0, 0.0, self.z_offset_angstrom])


def empty_phantom(*, thickness_angstrom: float, pretilt_deg: float = 0.0, z_offset_angstrom: float = 0.0) -> Phantom:
    """An ice slab without any primitive (for tests of the ice model and Thon rings)."""
    return Phantom(
        ball_centres_angstrom=_empty_points(),
        ball_sigmas_angstrom=np.zeros(0),
        ball_densities=np.zeros(0),
        sphere_centres_angstrom=_empty_points(),
        sphere_radii_angstrom=np.zeros(0),
        sphere_densities=np.zeros(0),
        thickness_angstrom=thickness_angstrom,
        pretilt_deg=pretilt_deg,
        z_offset_angstrom=z_offset_angstrom,
        chiral_centre_angstrom=np.zeros(3),
        chiral_hand=1,
        labels=(),
    )


def complex_template(complex_size_angstrom: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    """The one asymmetric complex every copy is made of: ball offsets ``(b, 3)`` and sigmas ``(b,)``, Å."""
    scale = complex_size_angstrom / 120.0
    return _COMPLEX_TEMPLATE[:, :3] * scale, _COMPLEX_TEMPLATE[:, 3] * scale


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix ``(3, 3)`` drawn uniformly (from a normalised Gaussian quaternion)."""
    quaternion = rng.standard_normal(4)
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


class _Layout:
    """Places primitives in slab coordinates ``(a, b, c)``: ``c`` along the slab normal from the slab centre."""

    def __init__(self, rng: np.random.Generator, field_of_view_angstrom: tuple[float, float], thickness: float):
        self.rng = rng
        self.half_fov = np.array(field_of_view_angstrom, dtype=float) / 2
        self.half_thickness = thickness / 2 - _SURFACE_MARGIN_ANGSTROM
        self.occupied_centres = np.zeros((0, 3))
        self.occupied_radii = np.zeros(0)
        self.balls: list[tuple[np.ndarray, float, float, str]] = []
        self.spheres: list[tuple[np.ndarray, float, float, str]] = []

    def occupy(self, centres: np.ndarray, radii: np.ndarray) -> None:
        self.occupied_centres = np.vstack([self.occupied_centres, np.reshape(centres, (-1, 3))])
        self.occupied_radii = np.concatenate([self.occupied_radii, np.broadcast_to(radii, (len(centres),))])

    def place(self, radius: float, *, tries: int = 100) -> np.ndarray:
        """A random free position for a body of bounding ``radius`` (Å); overlaps only when none is found."""
        half = np.array([*np.maximum(self.half_fov - radius, 0.0), max(self.half_thickness - radius, 0.0)])
        for _ in range(tries):
            centre = self.rng.uniform(-1.0, 1.0, 3) * half
            gaps = np.linalg.norm(self.occupied_centres - centre, axis=1) - self.occupied_radii - radius
            if not np.any(gaps < 0):
                break
        self.occupy(centre[None], np.array([radius]))
        return centre


def _chiral_pose(layout: _Layout, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Junction (slab coordinates) and arm vectors ``(3, 3)`` (rows) that fit the slab, no arm along the beam."""
    for scale in (1.0, 0.8, 0.64, 0.5, 0.4, 0.3, 0.2):
        lengths = np.array(CHIRAL_ARM_LENGTHS_ANGSTROM) * scale
        for _ in range(200):
            rotation = random_rotation(layout.rng)
            # Arms steeper than ~37° from the slab plane would be smeared by the missing wedge.
            if np.max(np.abs(rotation[2])) > 0.8:
                continue
            arms = (rotation * lengths).T
            top, bottom = max(arms[:, 2].max(), 0.0) + pad, min(arms[:, 2].min(), 0.0) - pad
            if top - bottom > 2 * layout.half_thickness:
                continue
            c = layout.rng.uniform(-layout.half_thickness - bottom, layout.half_thickness - top)
            ab = layout.rng.uniform(-1.0, 1.0, 2) * layout.half_fov / 3
            return np.array([*ab, c]), arms
    raise InputError(None, f"the slab ({2 * layout.half_thickness:.0f} Å usable) cannot hold the chiral object.")


def _add_chiral(layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    sigma = _CHIRAL_BALL_SIGMA_ANGSTROM
    junction, arms = _chiral_pose(layout, pad=2.5 * sigma)
    layout.balls.append((junction, 1.7 * sigma, _CHIRAL_DENSITY, "chiral"))
    for arm in arms:
        length = float(np.linalg.norm(arm))
        count = math.ceil(length / _CHIRAL_BALL_SPACING_ANGSTROM)
        points = junction + np.outer(np.arange(1, count + 1) / count, arm)
        layout.balls.extend((point, sigma, _CHIRAL_DENSITY, "chiral") for point in points)
        layout.occupy(points, np.full(len(points), 2.5 * sigma))
    # The distinct end: a knob on the long arm's tip, so even a short view of it tells the arms apart.
    layout.balls.append((junction + arms[0], 2 * sigma, _CHIRAL_DENSITY, "chiral"))
    layout.occupy(junction[None], np.array([2.5 * sigma]))
    return junction, arms


def _add_vesicle(layout: _Layout, index: int) -> None:
    bilayer = LEAFLET_SEPARATION_ANGSTROM + LEAFLET_WIDTH_ANGSTROM
    largest = min(VESICLE_RADIUS_RANGE_ANGSTROM[1], layout.half_thickness)
    if largest < bilayer + 40.0:
        return
    radius = min(layout.rng.uniform(*VESICLE_RADIUS_RANGE_ANGSTROM), largest)
    centre = layout.place(radius)
    width, label = LEAFLET_WIDTH_ANGSTROM, f"vesicle:{index}"
    # Outer leaflet, hydrocarbon core, inner leaflet as differences of concentric spheres.
    shells = [
        (radius, HEADGROUP_DENSITY),
        (radius - width, HYDROCARBON_DENSITY - HEADGROUP_DENSITY),
        (radius - 2 * width, HEADGROUP_DENSITY - HYDROCARBON_DENSITY),
        (radius - bilayer, -HEADGROUP_DENSITY),
    ]
    layout.spheres.extend((centre, r, density, label) for r, density in shells)


def _add_complex(layout: _Layout, index: int, offsets: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    bounding = float(np.max(np.linalg.norm(offsets, axis=1) + 2 * sigmas))
    centre = layout.place(bounding)
    rotation = random_rotation(layout.rng)
    for offset, sigma in zip(offsets, sigmas, strict=True):
        layout.balls.append((centre + rotation @ offset, float(sigma), PROTEIN_DENSITY, f"complex:{index}"))
    return np.concatenate([centre, rotation.ravel()])


def _pretilt_matrix(pretilt_deg: float) -> np.ndarray:
    angle = math.radians(pretilt_deg)
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _columns(items: list[tuple[np.ndarray, float, float, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = np.array([item[0] for item in items]).reshape(-1, 3)
    return centres, np.array([item[1] for item in items]), np.array([item[2] for item in items])


def make_phantom(
    *,
    seed: int,
    field_of_view_angstrom: tuple[float, float],
    thickness_angstrom: float = 2000.0,
    pretilt_deg: float = 0.0,
    z_offset_angstrom: float = 0.0,
    n_vesicles: int = 3,
    n_complexes: int = 40,
    n_fiducials: int = 0,
    complex_size_angstrom: float = 120.0,
) -> Phantom:
    """Build a random phantom, deterministic for a given ``seed``.

    Parameters
    ----------
    seed
        Seed of every random choice.
    field_of_view_angstrom
        ``(x, y)`` extent of the specimen area to fill, Å (e.g. detector size × pixel spacing).
    thickness_angstrom, pretilt_deg, z_offset_angstrom
        The ice slab: thickness (Å, at least 300), milling pretilt about y (degrees), centre along z (Å).
    n_vesicles
        Vesicles of outer radius 200–600 Å (at most what the slab holds) with a bilayer of two 20 Å head-group
        leaflets 40 Å apart around a hydrocarbon core; none when the slab is too thin.
    n_complexes
        Copies of one asymmetric complex (:func:`complex_template`), each at a random position and orientation,
        kept clear of the other bodies where a free place is found within 100 tries.
    n_fiducials
        Gold spheres of radius 50 Å.
    complex_size_angstrom
        Size of the complex, Å (the template is scaled from 120 Å).

    Returns
    -------
    Phantom
        Always with one right-handed chiral object (arms 480, 320 and 200 Å, shrunk only when the slab is too
        thin) near the centre, placed first, then vesicles, complexes and fiducials, all inside the slab.
    """
    if thickness_angstrom < _MIN_THICKNESS_ANGSTROM:
        raise InputError(None, f"thickness_angstrom={thickness_angstrom} is too thin for a phantom.", "use ≥ 300 Å.")
    if min(field_of_view_angstrom) <= 0 or min(n_vesicles, n_complexes, n_fiducials) < 0:
        raise InputError(None, f"field of view {field_of_view_angstrom} and counts must be positive.")
    layout = _Layout(np.random.default_rng(seed), field_of_view_angstrom, thickness_angstrom)
    offsets, sigmas = complex_template(complex_size_angstrom)
    if n_complexes and np.max(np.linalg.norm(offsets, axis=1) + 2 * sigmas) > layout.half_thickness:
        raise InputError(None, f"complexes of {complex_size_angstrom} Å do not fit a {thickness_angstrom} Å slab.",
                         "use a thicker slab or smaller complexes.")  # fmt: skip
    junction, arms = _add_chiral(layout)
    for index in range(n_vesicles):
        _add_vesicle(layout, index)
    poses = np.array([_add_complex(layout, index, offsets, sigmas) for index in range(n_complexes)]).reshape(-1, 12)
    for index in range(n_fiducials):
        centre = layout.place(GOLD_RADIUS_ANGSTROM + _SURFACE_MARGIN_ANGSTROM)
        layout.spheres.append((centre, GOLD_RADIUS_ANGSTROM, GOLD_DENSITY, f"gold:{index}"))
    tilt = _pretilt_matrix(pretilt_deg)
    origin = np.array([0.0, 0.0, z_offset_angstrom])
    ball_centres, ball_sigmas, ball_densities = _columns(layout.balls)
    sphere_centres, sphere_radii, sphere_densities = _columns(layout.spheres)
    return Phantom(
        ball_centres_angstrom=origin + ball_centres @ tilt.T,
        ball_sigmas_angstrom=ball_sigmas,
        ball_densities=ball_densities,
        sphere_centres_angstrom=origin + sphere_centres @ tilt.T,
        sphere_radii_angstrom=sphere_radii,
        sphere_densities=sphere_densities,
        thickness_angstrom=float(thickness_angstrom),
        pretilt_deg=float(pretilt_deg),
        z_offset_angstrom=float(z_offset_angstrom),
        chiral_centre_angstrom=origin + tilt @ junction,
        chiral_hand=1,
        labels=tuple(item[3] for item in layout.balls),
        sphere_labels=tuple(item[3] for item in layout.spheres),
        chiral_arms_angstrom=arms @ tilt.T,
        complex_centres_angstrom=origin + poses[:, :3] @ tilt.T,
        complex_rotations=tilt @ poses[:, 3:].reshape(-1, 3, 3),
        complex_size_angstrom=float(complex_size_angstrom),
    )


def phantom_to_dict(p: Phantom) -> dict[str, Any]:
    """The phantom as plain JSON-able values (lists and numbers), with its units, for ``truth.json``."""
    return {
        "units": {
            "lengths": "angstrom, specimen coordinates from the specimen centre, z along the beam at zero tilt",
            "densities": "phase radians per angstrom of path at 300 kV, relative to ice; balls: value at the centre",
        },
        "slab": {
            "thickness_angstrom": p.thickness_angstrom,
            "pretilt_deg": p.pretilt_deg,
            "z_offset_angstrom": p.z_offset_angstrom,
            "normal": p.slab_normal.tolist(),
        },
        "balls": {
            "centres_angstrom": p.ball_centres_angstrom.tolist(),
            "sigmas_angstrom": p.ball_sigmas_angstrom.tolist(),
            "densities": p.ball_densities.tolist(),
            "labels": list(p.labels),
        },
        "spheres": {
            "centres_angstrom": p.sphere_centres_angstrom.tolist(),
            "radii_angstrom": p.sphere_radii_angstrom.tolist(),
            "densities": p.sphere_densities.tolist(),
            "labels": list(p.sphere_labels),
        },
        "chiral": {
            "centre_angstrom": p.chiral_centre_angstrom.tolist(),
            "hand": p.chiral_hand,
            "arms_angstrom": p.chiral_arms_angstrom.tolist(),
            "arm_order": ["long", "medium", "short"],
        },
        "complexes": {
            "size_angstrom": p.complex_size_angstrom,
            "template_offsets_angstrom": complex_template(p.complex_size_angstrom)[0].tolist(),
            "template_sigmas_angstrom": complex_template(p.complex_size_angstrom)[1].tolist(),
            "centres_angstrom": p.complex_centres_angstrom.tolist(),
            "rotations": p.complex_rotations.tolist(),
        },
    }


def _window(centre_index: np.ndarray, radius_voxels: float, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    lower = np.maximum(np.floor(centre_index - radius_voxels).astype(int), 0)
    upper = np.minimum(np.ceil(centre_index + radius_voxels).astype(int) + 1, shape)
    if np.any(upper <= lower):
        return None
    return tuple(slice(lo, hi) for lo, hi in zip(lower, upper, strict=True))


def _distances(window: tuple[slice, ...], centre_index: np.ndarray, voxel: float) -> np.ndarray:
    axes = np.ogrid[window]
    return voxel * np.sqrt(sum((axis - c) ** 2 for axis, c in zip(axes, centre_index, strict=True)))


def rasterize(
    p: Phantom, *, shape_zyx: tuple[int, int, int], voxel_size_angstrom: float, outside_slab_value: float = 0.0
) -> np.ndarray:
    """Sample the phantom's density on a voxel grid (the ground-truth volume).

    Parameters
    ----------
    p
        The phantom.
    shape_zyx
        Volume shape ``(z, y, x)``; voxel ``N // 2`` along each axis is the specimen origin.
    voxel_size_angstrom
        Voxel size, Å.
    outside_slab_value
        Value given to voxels outside the ice slab (default 0: ice and vacuum both read 0, as they look to the
        imaging model; e.g. ``nan`` marks the slab for masks).

    Returns
    -------
    numpy.ndarray
        float32 ``shape_zyx``, density relative to ice (see the module docstring). Spheres get a one-voxel linear
        edge (partial volume); balls are widened by the voxel's box variance ``v²/12`` with their integral kept,
        so small balls at coarse voxels are neither lost nor aliased.
    """
    volume = np.zeros(shape_zyx, dtype=np.float32)
    v = voxel_size_angstrom
    origin = np.array([n // 2 for n in shape_zyx], dtype=float)
    for centre, sigma, density in zip(p.ball_centres_angstrom, p.ball_sigmas_angstrom, p.ball_densities, strict=True):
        wide = math.sqrt(sigma**2 + v**2 / 12)
        index = origin + centre[::-1] / v  # (x, y, z) Å -> (z, y, x) voxels
        window = _window(index, 4 * wide / v, shape_zyx)
        if window is not None:
            r = _distances(window, index, v)
            volume[window] += density * (sigma / wide) ** 3 * np.exp(-0.5 * (r / wide) ** 2)
    spheres = zip(p.sphere_centres_angstrom, p.sphere_radii_angstrom, p.sphere_densities, strict=True)
    for centre, radius, density in spheres:
        index = origin + centre[::-1] / v
        window = _window(index, radius / v + 1, shape_zyx)
        if window is not None:
            r = _distances(window, index, v)
            volume[window] += density * np.clip((radius - r) / v + 0.5, 0.0, 1.0)
    if outside_slab_value != 0.0:
        z, _, x = np.ogrid[tuple(slice(0, n) for n in shape_zyx)]
        normal, centre = p.slab_normal, p.slab_centre_angstrom
        height = ((x - origin[2]) * v - centre[0]) * normal[0] + ((z - origin[0]) * v - centre[2]) * normal[2]
        volume[np.broadcast_to(np.abs(height) > p.thickness_angstrom / 2, shape_zyx)] = outside_slab_value
    return volume


def projection_transforms(sigmas_angstrom: np.ndarray, radii_angstrom: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Radial 2D Fourier transforms of the projections of unit-density balls and spheres.

    Returns
    -------
    numpy.ndarray
        ``(n_sigmas + n_radii, nk)``, rad·Å² per rad/Å, at the frequencies ``k`` (1/Å, ``(nk,)``).
    """
    sigma = np.asarray(sigmas_angstrom, dtype=float)[:, None]
    balls = math.sqrt(2 * math.pi) * sigma * 2 * math.pi * sigma**2 * np.exp(-2 * (math.pi * sigma * k) ** 2)
    radius = np.asarray(radii_angstrom, dtype=float)[:, None]
    x = np.maximum(2 * math.pi * k * radius, 1e-3)
    # A projection's 2D transform is the 3D transform's central section (the sphere's form factor).
    shape = np.where(x > 1e-2, 3 * (np.sin(x) - x * np.cos(x)) / x**3, 1 - x**2 / 10)
    spheres = 4 / 3 * math.pi * radius**3 * shape
    return np.vstack([balls.reshape(-1, k.size), spheres.reshape(-1, k.size)])


def projection_profiles(
    ball_sigmas_angstrom: np.ndarray,
    sphere_radii_angstrom: np.ndarray,
    *,
    pixel_spacing_angstrom: float,
    r_max_angstrom: float,
    frequency_filter: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band-limited projections of unit-density primitives, as radial profiles (exact up to the band limit).

    Parameters
    ----------
    ball_sigmas_angstrom, sphere_radii_angstrom
        ``(nb,)`` ball sigmas and ``(ns,)`` sphere radii, Å.
    pixel_spacing_angstrom
        Image pixel spacing, Å: sets the band limit.
    r_max_angstrom
        Largest radius needed, Å.
    frequency_filter
        Optional ``(nk,)`` radial filter (e.g. the exposure filter) on the grid of
        :func:`tomoprep.simulate.ctf.hankel_frequencies` for the same arguments.

    Returns
    -------
    r_angstrom
        ``(nr,)`` radii, Å, from 0 in steps of ``pixel_spacing / 8``.
    ball_profiles, sphere_profiles
        ``(nb, nr)`` and ``(ns, nr)`` projected phase per unit density (rad per rad/Å, i.e. Å), float32.
    """
    k = hankel_frequencies(pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max_angstrom)
    transforms = projection_transforms(ball_sigmas_angstrom, sphere_radii_angstrom, k)
    if frequency_filter is not None:
        transforms *= frequency_filter
    r, profiles = band_limited_profiles(
        transforms, pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max_angstrom
    )
    n_balls = len(ball_sigmas_angstrom)
    return r, profiles[:n_balls], profiles[n_balls:]
