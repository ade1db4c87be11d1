"""The parts a phantom is built of, and where they go: the complex, the chiral object, vesicles, gold.

Densities are contrasts relative to ice in phase radians per Å at 300 kV (:mod:`tomoprep.simulate.phantom`
explains the unit). A :class:`Layout` places bodies in slab coordinates ``(a, b, c)``, ``c`` along the slab
normal from the slab centre, keeping them clear of each other and of the slab surfaces; :func:`make_phantom
<tomoprep.simulate.phantom.make_phantom>` turns its lists of balls and spheres into specimen coordinates.
"""

from __future__ import annotations

import math

import numpy as np

from tomoprep.errors import InputError

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
#: The chiral object is twice as dense as protein (a marker, like a nucleic-acid-rich body) so that it stands out
#: in a reconstruction of the crowded slab (single tilts at 3 e⁻/Å² hide it, as they hide most of the content).
#: Its arms are rods of overlapping balls, ~40 Å thick (3 pixels at bin 8 of 1.5 Å), at most 20 Å apart; the
#: junction and the knob are single balls.
_CHIRAL_BALL_SIGMA_ANGSTROM = 17.0
_CHIRAL_BALL_SPACING_ANGSTROM = 20.0
_CHIRAL_DENSITY = 2 * PROTEIN_DENSITY
#: A Gaussian ball takes the volume of the sphere that holds its mass at its centre density: this many sigmas.
BALL_EQUIVALENT_RADIUS_SIGMAS = (3 / (4 * math.pi) * (2 * math.pi) ** 1.5) ** (1 / 3)
#: Nothing is placed closer than this to a slab surface.
SURFACE_MARGIN_ANGSTROM = 10.0
#: Contamination on the slab's surfaces (ice crystals, frost, milling debris): balls of these sigmas (Å, whole
#: numbers) seen against vacuum, where even ice has its full potential (~4.5 V) and crystals diffract besides.
SURFACE_PARTICLE_SIGMA_RANGE_ANGSTROM = (15, 40)
SURFACE_PARTICLE_DENSITY = 2 * PROTEIN_DENSITY
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


class Layout:
    """Places primitives in slab coordinates ``(a, b, c)``: ``c`` along the slab normal from the slab centre."""

    def __init__(self, rng: np.random.Generator, field_of_view_angstrom: tuple[float, float], thickness: float):
        self.rng = rng
        self.half_fov = np.array(field_of_view_angstrom, dtype=float) / 2
        self.half_thickness = thickness / 2 - SURFACE_MARGIN_ANGSTROM
        self.occupied_centres = np.zeros((0, 3))
        self.occupied_radii = np.zeros(0)
        self.balls: list[tuple[np.ndarray, float, float, str]] = []
        self.spheres: list[tuple[np.ndarray, float, float, str]] = []

    def occupy(self, centres: np.ndarray, radii: np.ndarray) -> None:
        self.occupied_centres = np.vstack([self.occupied_centres, np.reshape(centres, (-1, 3))])
        self.occupied_radii = np.concatenate([self.occupied_radii, np.broadcast_to(radii, (len(centres),))])

    def place(self, radius: float, *, tries: int = 100, depth_margin: float | None = None) -> np.ndarray:
        """A random free position for a body of bounding ``radius`` (Å); overlaps only when none is found.

        The centre keeps ``depth_margin`` (default ``radius``: the whole body inside) from the slab's surfaces.
        """
        margin = radius if depth_margin is None else depth_margin
        half = np.array([*np.maximum(self.half_fov - radius, 0.0), max(self.half_thickness - margin, 0.0)])
        for _ in range(tries):
            centre = self.rng.uniform(-1.0, 1.0, 3) * half
            gaps = np.linalg.norm(self.occupied_centres - centre, axis=1) - self.occupied_radii - radius
            if not np.any(gaps < 0):
                break
        self.occupy(centre[None], np.array([radius]))
        return centre


def _chiral_pose(layout: Layout, pad: float) -> tuple[np.ndarray, np.ndarray]:
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


def add_chiral(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Add the chiral object; return its junction ``(3,)`` and arm vectors ``(3, 3)`` (rows), slab coordinates, Å."""
    sigma = _CHIRAL_BALL_SIGMA_ANGSTROM
    junction, arms = _chiral_pose(layout, pad=2.5 * sigma)
    layout.balls.append((junction, 1.7 * sigma, _CHIRAL_DENSITY, "chiral"))
    for arm in arms:
        length = float(np.linalg.norm(arm))
        count = math.ceil(length / _CHIRAL_BALL_SPACING_ANGSTROM)
        points = junction + np.outer(np.arange(1, count + 1) / count, arm)
        # Balls d apart add up on the rod's axis to ρ σ sqrt(2π) / d (about 2.1 ρ): each gets that much less.
        density = _CHIRAL_DENSITY * (length / count) / (sigma * math.sqrt(2 * math.pi))
        layout.balls.extend((point, sigma, density, "chiral") for point in points)
        layout.occupy(points, np.full(len(points), 2.5 * sigma))
    # The distinct end: a knob on the long arm's tip, so even a short view of it tells the arms apart.
    layout.balls.append((junction + arms[0], 2 * sigma, _CHIRAL_DENSITY, "chiral"))
    layout.occupy(junction[None], np.array([2.5 * sigma]))
    return junction, arms


def add_vesicle(layout: Layout, index: int) -> None:
    """Add one vesicle, its bilayer as four concentric spheres; nothing when the slab is too thin for one."""
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


def add_complex(layout: Layout, index: int, offsets: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Add one copy of the complex, randomly turned; return its pose: centre (3 values), then rotation (9).

    Its centre may lie anywhere in the slab, as macromolecules do throughout a lamella: a copy near a surface is
    cut by it (milled away), keeping only the balls whose centres lie inside the slab.
    """
    bounding = float(np.max(np.linalg.norm(offsets, axis=1) + 2 * sigmas))
    centre = layout.place(bounding, depth_margin=0.0)
    rotation = random_rotation(layout.rng)
    surface = layout.half_thickness + SURFACE_MARGIN_ANGSTROM
    for offset, sigma in zip(offsets, sigmas, strict=True):
        position = centre + rotation @ offset
        if abs(position[2]) <= surface:
            layout.balls.append((position, float(sigma), PROTEIN_DENSITY, f"complex:{index}"))
    return np.concatenate([centre, rotation.ravel()])


def add_fiducial(layout: Layout, index: int) -> None:
    """Add one gold sphere, clear of the slab surfaces."""
    centre = layout.place(GOLD_RADIUS_ANGSTROM + SURFACE_MARGIN_ANGSTROM)
    layout.spheres.append((centre, GOLD_RADIUS_ANGSTROM, GOLD_DENSITY, f"gold:{index}"))


def add_surface_particles(layout: Layout, count_per_surface: int) -> None:
    """Scatter contamination over both slab surfaces: dense balls resting on them, outside the ice.

    Each ball's centre lies one sigma (drawn from :data:`SURFACE_PARTICLE_SIGMA_RANGE_ANGSTROM`) beyond the
    surface, as a particle that landed on it sits; they mark the surfaces in a reconstruction, as contamination
    does on a real lamella, but are not part of the slab (its thickness is the ice's). Placed after the bodies
    inside, so those are where they would be without them.
    """
    surface = layout.half_thickness + SURFACE_MARGIN_ANGSTROM
    low, high = SURFACE_PARTICLE_SIGMA_RANGE_ANGSTROM
    for side in (-1.0, 1.0):
        for index in range(count_per_surface):
            ab = layout.rng.uniform(-1.0, 1.0, 2) * layout.half_fov
            sigma = float(layout.rng.integers(low, high + 1))
            centre = np.array([*ab, side * (surface + sigma)])
            layout.balls.append((centre, sigma, SURFACE_PARTICLE_DENSITY, f"surface:{int(side)}:{index}"))


def excluded_shells(layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spherical shells the bodies inside the slab take: centres ``(m, 3)``, inner and outer radii ``(m,)``, Å.

    A ball takes its equivalent sphere (:data:`BALL_EQUIVALENT_RADIUS_SIGMAS`), a gold sphere itself, a vesicle
    its bilayer (its lumen is cytoplasm-like too); the contamination outside the slab takes nothing inside it.
    """
    shells = [(centre, 0.0, BALL_EQUIVALENT_RADIUS_SIGMAS * sigma)
              for centre, sigma, _, label in layout.balls if not label.startswith("surface:")]  # fmt: skip
    outer: dict[str, tuple[np.ndarray, float, float]] = {}
    for centre, radius, _, label in layout.spheres:
        if label.startswith("vesicle:"):
            low = radius - LEAFLET_SEPARATION_ANGSTROM - LEAFLET_WIDTH_ANGSTROM
            previous = outer.get(label)
            outer[label] = (centre, low, radius) if previous is None or radius > previous[2] else previous
        else:
            shells.append((centre, 0.0, radius))
    shells.extend(outer.values())
    centres = np.array([shell[0] for shell in shells]).reshape(-1, 3)
    return centres, np.array([shell[1] for shell in shells]), np.array([shell[2] for shell in shells])
