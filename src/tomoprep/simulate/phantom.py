"""A phantom specimen made of analytic primitives, with its ground truth.

Specimen coordinates ``(x, y, z)`` are in Å from the specimen centre, ``z`` along the beam at zero tilt (the
frame RELION 5's projection model rotates, see :mod:`tomoprep.simulate.geometry`).

Density unit
    Every density is a contrast relative to vitreous ice, in radians of electron phase shift per Å of path at
    300 kV (``σ · ΔV``: interaction constant 6.53e-4 rad/(V·Å) times the potential above that of ice, in V).
    Protein is about +0.0017 (≈2.6 V above ice), lipid head groups +0.0015, the hydrocarbon core -0.0004,
    gold about +0.012. The imaging model scales it with the interaction constant for other voltages.
    A Gaussian ball's density is its value at the centre: the ball is ``ρ exp(-|X - c|² / (2 σ²))``, so its
    projected phase at the centre is ``ρ σ sqrt(2π)`` radians. A sphere is uniform: ``ρ`` for ``|X - c| ≤ R``.
Ice slab
    the specimen is a slab (lamella) of thickness ``t`` whose normal is ``Ry(pretilt) · ẑ`` and whose centre is
    ``(0, 0, z_offset)``; every body lies inside it but the surface contamination, which rests on its two
    surfaces. Ice and the vacuum outside the slab both have density 0: a laterally uniform slab's phase is one
    constant, which no image shows; the imaging model gives the ice its attenuation (the mean of a tilt falls as
    ``exp(-t / cos / mfp)``) and a texture. A body's density is its contrast against what it displaces: ice inside
    the slab, vacuum on its surfaces.
Crowded content
    the slab is filled with small proteins ("crowders", :mod:`tomoprep.simulate.crowding`) at a volume fraction,
    as a lamella of cytoplasm is; they show the slab throughout its depth in a reconstruction, and their density
    falls to half its level at the slab's surfaces, where the slab's thickness is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tomoprep.errors import InputError
from tomoprep.simulate.crowding import (
    CROWDER_POSITION_DECIMALS,
    CROWDER_SIGMAS_ANGSTROM,
    ball_volume_angstrom3,
    place_crowders,
    rasterize_crowders,
)
from tomoprep.simulate.profiles import projection_profiles, projection_transforms
from tomoprep.simulate.specimen_parts import (
    CHIRAL_ARM_LENGTHS_ANGSTROM,
    GOLD_DENSITY,
    GOLD_RADIUS_ANGSTROM,
    HEADGROUP_DENSITY,
    HYDROCARBON_DENSITY,
    LEAFLET_SEPARATION_ANGSTROM,
    LEAFLET_WIDTH_ANGSTROM,
    PROTEIN_DENSITY,
    VESICLE_RADIUS_RANGE_ANGSTROM,
    Layout,
    add_chiral,
    add_complex,
    add_fiducial,
    add_surface_particles,
    add_vesicle,
    complex_template,
    excluded_shells,
    random_rotation,
)

# The parts and the primitives' profiles moved to specimen_parts.py and profiles.py; their names stay
# importable from here, where callers and tests take them.
__all__ = [
    "CHIRAL_ARM_LENGTHS_ANGSTROM",
    "GOLD_DENSITY",
    "GOLD_RADIUS_ANGSTROM",
    "HEADGROUP_DENSITY",
    "HYDROCARBON_DENSITY",
    "LEAFLET_SEPARATION_ANGSTROM",
    "LEAFLET_WIDTH_ANGSTROM",
    "PROTEIN_DENSITY",
    "VESICLE_RADIUS_RANGE_ANGSTROM",
    "Phantom",
    "complex_template",
    "empty_phantom",
    "make_phantom",
    "phantom_to_dict",
    "projection_profiles",
    "projection_transforms",
    "random_rotation",
    "rasterize",
]

_MIN_THICKNESS_ANGSTROM = 300.0


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
    crowder_centres_angstrom, crowder_size_index, crowder_density
        ``(c, 3)`` centres (Å, rounded to 0.1 Å) and ``(c,)`` sizes (index into
        :data:`~tomoprep.simulate.crowding.CROWDER_SIGMAS_ANGSTROM`) of the crowded content's Gaussian balls, all
        of centre density ``crowder_density``.
    crowder_mean_density
        Their mean density over the slab (phase per Å): their mass over the volume they were placed in.
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
    crowder_centres_angstrom: np.ndarray = field(default_factory=_empty_points)
    crowder_size_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    crowder_density: float = PROTEIN_DENSITY
    crowder_mean_density: float = 0.0

    @property
    def crowder_sigmas_angstrom(self) -> np.ndarray:
        """``(c,)`` standard deviation of every crowder, Å."""
        return np.asarray(CROWDER_SIGMAS_ANGSTROM, dtype=float)[self.crowder_size_index]

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
    surface_particles_per_um2: float = 0.0,
    crowding_volume_fraction: float = 0.0,
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
    surface_particles_per_um2
        Contamination resting on each of the two slab surfaces, per µm² of field of view
        (:func:`~tomoprep.simulate.specimen_parts.add_surface_particles`).
    crowding_volume_fraction
        Fraction of the slab's volume that crowders fill (:func:`~tomoprep.simulate.crowding.place_crowders`;
        0.15–0.3 in cytoplasm), none inside the other bodies; 0 for none.

    Returns
    -------
    Phantom
        Always with one right-handed chiral object (arms 600, 400 and 250 Å, shrunk only when the slab is too
        thin) near the centre, placed first, then vesicles, complexes and fiducials, all inside the slab, the
        surface contamination and last the crowders (so the other bodies are where they are without them).
    """
    if thickness_angstrom < _MIN_THICKNESS_ANGSTROM:
        raise InputError(None, f"thickness_angstrom={thickness_angstrom} is too thin for a phantom.", "use ≥ 300 Å.")
    if min(field_of_view_angstrom) <= 0 or min(n_vesicles, n_complexes, n_fiducials) < 0:
        raise InputError(None, f"field of view {field_of_view_angstrom} and counts must be positive.")
    if not 0.0 <= crowding_volume_fraction < 1.0:
        raise InputError(None, f"crowding_volume_fraction={crowding_volume_fraction} is not a fraction.",
                         "use a value in [0, 1), e.g. 0.2 for cytoplasm.")  # fmt: skip
    layout = Layout(np.random.default_rng(seed), field_of_view_angstrom, thickness_angstrom)
    offsets, sigmas = complex_template(complex_size_angstrom)
    if n_complexes and np.max(np.linalg.norm(offsets, axis=1) + 2 * sigmas) > layout.half_thickness:
        raise InputError(None, f"complexes of {complex_size_angstrom} Å do not fit a {thickness_angstrom} Å slab.",
                         "use a thicker slab or smaller complexes.")  # fmt: skip
    junction, arms = add_chiral(layout)
    for index in range(n_vesicles):
        add_vesicle(layout, index)
    poses = np.array([add_complex(layout, index, offsets, sigmas) for index in range(n_complexes)]).reshape(-1, 12)
    for index in range(n_fiducials):
        add_fiducial(layout, index)
    area_um2 = field_of_view_angstrom[0] * field_of_view_angstrom[1] / 1e8
    add_surface_particles(layout, round(surface_particles_per_um2 * area_um2))
    crowders = place_crowders(layout.rng, half_extent_angstrom=(*layout.half_fov, thickness_angstrom / 2),
                              volume_fraction=crowding_volume_fraction,
                              excluded_shells=excluded_shells(layout))  # fmt: skip
    slab = (float(thickness_angstrom), float(pretilt_deg), float(z_offset_angstrom))
    return _in_specimen_frame(layout, junction=junction, arms=arms, poses=poses, slab=slab,
                              complex_size_angstrom=complex_size_angstrom, crowders=crowders)  # fmt: skip


def _in_specimen_frame(layout: Layout, *, junction: np.ndarray, arms: np.ndarray, poses: np.ndarray,
                       slab: tuple[float, float, float], complex_size_angstrom: float,
                       crowders: tuple[np.ndarray, np.ndarray]) -> Phantom:  # fmt: skip
    """The laid-out bodies (slab coordinates) turned by the pretilt and moved to the slab's centre.

    ``slab`` is ``(thickness_angstrom, pretilt_deg, z_offset_angstrom)``; ``crowders`` their centres (slab
    coordinates) and size indices; their centres are rounded to ``CROWDER_POSITION_DECIMALS`` decimals.
    """
    thickness_angstrom, pretilt_deg, z_offset_angstrom = slab
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
        crowder_centres_angstrom=np.round(origin + crowders[0] @ tilt.T, CROWDER_POSITION_DECIMALS),
        crowder_size_index=crowders[1],
        crowder_mean_density=float(
            PROTEIN_DENSITY
            * np.sum(ball_volume_angstrom3(np.asarray(CROWDER_SIGMAS_ANGSTROM)[crowders[1]]))
            / (4 * layout.half_fov[0] * layout.half_fov[1] * thickness_angstrom)
        ),
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
        "crowders": {
            "sigmas_angstrom": list(CROWDER_SIGMAS_ANGSTROM),
            "density": p.crowder_density,
            "mean_density": p.crowder_mean_density,
            "centres_angstrom": p.crowder_centres_angstrom.tolist(),
            "size_index": p.crowder_size_index.tolist(),
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
    rasterize_crowders(volume, origin + p.crowder_centres_angstrom[:, ::-1] / v, p.crowder_size_index,
                       density=p.crowder_density, voxel_size_angstrom=v)  # fmt: skip
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
