"""The phantom: deterministic, inside its slab, a right-handed chiral object, truth that matches the primitives."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.simulate.crowding import CROWDER_SIGMAS_ANGSTROM, ball_volume_angstrom3
from tomoprep.simulate.phantom import (
    CHIRAL_ARM_LENGTHS_ANGSTROM,
    GOLD_RADIUS_ANGSTROM,
    PROTEIN_DENSITY,
    Phantom,
    complex_template,
    empty_phantom,
    make_phantom,
    phantom_to_dict,
    projection_profiles,
    rasterize,
)

FOV = (3000.0, 2500.0)


@pytest.fixture(scope="module")
def tilted() -> Phantom:
    """A milled lamella: pretilt, eucentric error, every kind of body."""
    return make_phantom(seed=11, field_of_view_angstrom=FOV, thickness_angstrom=1500.0, pretilt_deg=15.0,
                        z_offset_angstrom=-250.0, n_vesicles=4, n_complexes=30, n_fiducials=6)  # fmt: skip


def _height(phantom: Phantom, points: np.ndarray) -> np.ndarray:
    """Signed distance (Å) of points from the slab's mid-plane, along its normal."""
    return (points - phantom.slab_centre_angstrom) @ phantom.slab_normal


def test_same_seed_same_phantom_other_seed_other_phantom() -> None:
    first, again = (make_phantom(seed=5, field_of_view_angstrom=FOV, n_fiducials=2) for _ in range(2))
    other = make_phantom(seed=6, field_of_view_angstrom=FOV, n_fiducials=2)
    for name in ("ball_centres_angstrom", "ball_sigmas_angstrom", "sphere_centres_angstrom", "sphere_radii_angstrom"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert first.labels == again.labels
    assert not np.allclose(first.ball_centres_angstrom[:50], other.ball_centres_angstrom[:50])


def _complex_balls(phantom: Phantom) -> np.ndarray:
    return np.array([label.startswith("complex:") for label in phantom.labels])


def test_everything_lies_inside_the_slab(tilted: Phantom) -> None:
    half = tilted.thickness_angstrom / 2
    assert tilted.slab_normal == pytest.approx([math.sin(math.radians(15.0)), 0.0, math.cos(math.radians(15.0))])
    whole = ~_complex_balls(tilted)
    balls = np.abs(_height(tilted, tilted.ball_centres_angstrom[whole])) + 2 * tilted.ball_sigmas_angstrom[whole]
    spheres = np.abs(_height(tilted, tilted.sphere_centres_angstrom)) + tilted.sphere_radii_angstrom
    assert balls.max() <= half and spheres.max() <= half
    # Complexes fill the whole depth, cut by the surfaces (milled): the centres of their balls lie inside.
    assert np.abs(_height(tilted, tilted.ball_centres_angstrom[~whole])).max() <= half + 1e-9
    # ...and across the field of view, in the slab's own frame (rotate the pretilt back).
    in_plane = (tilted.ball_centres_angstrom - tilted.slab_centre_angstrom) @ np.array(
        [[math.cos(math.radians(15.0)), 0.0, -math.sin(math.radians(15.0))], [0.0, 1.0, 0.0]]
    ).T
    assert np.all(np.abs(in_plane) <= np.array(FOV) / 2)


def test_bodies_and_labels(tilted: Phantom) -> None:
    offsets = complex_template()[0]
    assert len(tilted.labels) == len(tilted.ball_centres_angstrom)
    assert len({label for label in tilted.labels if label.startswith("complex:")}) == 30
    assert len(tilted.sphere_labels) == len(tilted.sphere_radii_angstrom) == 4 * 4 + 6
    gold = np.array([label.startswith("gold:") for label in tilted.sphere_labels])
    assert np.all(tilted.sphere_radii_angstrom[gold] == GOLD_RADIUS_ANGSTROM)
    assert np.all(tilted.sphere_densities[gold] > 3 * tilted.ball_densities.max())
    # Each vesicle: two dense leaflets (~20 Å) 40 Å apart, as differences of concentric spheres.
    radii = tilted.sphere_radii_angstrom[np.array([label == "vesicle:0" for label in tilted.sphere_labels])]
    assert 200.0 <= radii[0] <= 600.0 and np.diff(radii) == pytest.approx([-20.0, -20.0, -20.0])
    # Every copy of the complex is the template at its recorded pose, less what lies beyond a surface.
    cut = 0
    poses = zip(tilted.complex_centres_angstrom, tilted.complex_rotations, strict=True)
    for index, (centre, rotation) in enumerate(poses):
        balls = tilted.ball_centres_angstrom[np.array([label == f"complex:{index}" for label in tilted.labels])]
        posed = centre + offsets @ rotation.T
        inside = np.abs(_height(tilted, posed)) <= tilted.thickness_angstrom / 2
        assert balls == pytest.approx(posed[inside])
        assert rotation @ rotation.T == pytest.approx(np.eye(3)) and np.linalg.det(rotation) == pytest.approx(1.0)
        cut += int(np.sum(~inside))
    assert cut > 0  # the fixture holds complexes at the surfaces


def test_complexes_keep_clear_of_vesicles(tilted: Phantom) -> None:
    outer = [i for i, label in enumerate(tilted.sphere_labels) if label.startswith("vesicle:")][::4]
    bounding = max(np.linalg.norm(complex_template()[0], axis=1) + 2 * complex_template()[1])
    gaps = np.linalg.norm(
        tilted.complex_centres_angstrom[:, None] - tilted.sphere_centres_angstrom[outer][None], axis=2
    ) - (tilted.sphere_radii_angstrom[outer] + bounding)
    assert np.all(gaps >= -1e-6)


def test_the_chiral_object_is_right_handed(tilted: Phantom) -> None:
    arms = tilted.chiral_arms_angstrom
    lengths = np.linalg.norm(arms, axis=1)
    assert lengths == pytest.approx(CHIRAL_ARM_LENGTHS_ANGSTROM)
    assert arms @ arms.T == pytest.approx(np.diag(lengths**2), abs=1e-6)  # orthogonal
    assert tilted.chiral_hand == 1
    assert np.dot(np.cross(arms[0], arms[1]), arms[2]) > 0  # (long, medium, short) is right-handed
    # Its balls lie on the arms, from the junction to their ends.
    balls = tilted.ball_centres_angstrom[np.array([label == "chiral" for label in tilted.labels])]
    relative = balls - tilted.chiral_centre_angstrom
    along = relative @ (arms / lengths[:, None]).T
    on_an_arm = np.linalg.norm(relative[:, None] - along[..., None] * (arms / lengths[:, None])[None], axis=2)
    assert np.all(on_an_arm.min(axis=1) < 1e-6)
    assert np.max(along, axis=0) == pytest.approx(lengths)


def test_the_chiral_object_is_twice_as_dense_as_protein(tilted: Phantom) -> None:
    chiral = np.array([label == "chiral" for label in tilted.labels])
    centres, sigmas = tilted.ball_centres_angstrom[chiral], tilted.ball_sigmas_angstrom[chiral]
    densities = tilted.ball_densities[chiral]

    def density(point: np.ndarray) -> float:
        return float(np.sum(densities * np.exp(-0.5 * np.sum((centres - point) ** 2, axis=1) / sigmas**2)))

    for arm in tilted.chiral_arms_angstrom:  # along each arm, away from the junction and the knob
        for fraction in (0.45, 0.55, 0.65):
            point = tilted.chiral_centre_angstrom + fraction * arm
            assert density(point) == pytest.approx(2 * PROTEIN_DENSITY, rel=0.03)


def test_a_thin_slab_shrinks_what_does_not_fit() -> None:
    thin = make_phantom(seed=2, field_of_view_angstrom=FOV, thickness_angstrom=400.0, n_vesicles=3, n_fiducials=2)
    assert len(thin.sphere_labels) == 3 * 4 + 2
    whole = ~_complex_balls(thin)
    heights = np.abs(_height(thin, thin.ball_centres_angstrom[whole])) + 2 * thin.ball_sigmas_angstrom[whole]
    spheres = np.abs(_height(thin, thin.sphere_centres_angstrom)) + thin.sphere_radii_angstrom
    assert heights.max() <= 200.0 and spheres.max() <= 200.0
    assert np.dot(np.cross(thin.chiral_arms_angstrom[0], thin.chiral_arms_angstrom[1]), thin.chiral_arms_angstrom[2])
    with pytest.raises(InputError, match="thickness"):
        make_phantom(seed=2, field_of_view_angstrom=FOV, thickness_angstrom=100.0)


@pytest.fixture(scope="module")
def crowded() -> Phantom:
    """A lamella of cytoplasm: crowders at 25 % of the volume around a vesicle and complexes, contamination."""
    return make_phantom(seed=12, field_of_view_angstrom=(2000.0, 1500.0), thickness_angstrom=800.0, pretilt_deg=-12.0,
                        z_offset_angstrom=60.0, n_vesicles=1, n_complexes=10, surface_particles_per_um2=400.0,
                        crowding_volume_fraction=0.25)  # fmt: skip


def test_crowders_fill_the_slab_to_its_surfaces(crowded: Phantom) -> None:
    half = crowded.thickness_angstrom / 2
    heights = _height(crowded, crowded.crowder_centres_angstrom)
    assert np.abs(heights).max() <= half + 0.1  # centres rounded to 0.1 Å
    # Uniform through the depth: each tenth of it holds a tenth of them (Poisson scatter well inside 15 %).
    counts = np.histogram(heights, bins=10, range=(-half, half))[0]
    assert counts == pytest.approx(np.full(10, counts.mean()), rel=0.15)
    assert np.array_equal(crowded.crowder_centres_angstrom, np.round(crowded.crowder_centres_angstrom, 1))
    # The protein they hold: 25 % of the slab's volume, less what the other bodies take.
    volume = 2000.0 * 1500.0 * crowded.thickness_angstrom
    fraction = ball_volume_angstrom3(crowded.crowder_sigmas_angstrom).sum() / volume
    assert 0.2 < fraction < 0.25
    sizes = np.bincount(crowded.crowder_size_index, minlength=len(CROWDER_SIGMAS_ANGSTROM))
    assert sizes * ball_volume_angstrom3(np.array(CROWDER_SIGMAS_ANGSTROM)) == pytest.approx(
        np.full(len(sizes), fraction * volume / len(sizes)), rel=0.1
    )


def test_crowders_keep_out_of_the_other_bodies(crowded: Phantom) -> None:
    inside = ~np.array([label.startswith("surface:") for label in crowded.labels])
    gaps = (
        np.linalg.norm(crowded.crowder_centres_angstrom[:, None] - crowded.ball_centres_angstrom[inside][None], axis=2)
        - 1.55 * crowded.ball_sigmas_angstrom[inside]
    )
    assert gaps.min() >= -0.2
    # A vesicle's bilayer is kept clear; its lumen is crowded like the rest.
    radius = crowded.sphere_radii_angstrom[0]
    distance = np.linalg.norm(crowded.crowder_centres_angstrom - crowded.sphere_centres_angstrom[0], axis=1)
    assert not np.any((distance > radius - 60.0 + 0.2) & (distance < radius - 0.2))
    assert np.sum(distance < radius - 80.0) > 10


def test_contamination_rests_on_both_surfaces_outside_the_slab(crowded: Phantom) -> None:
    surface = np.array([label.startswith("surface:") for label in crowded.labels])
    assert surface.sum() == 2 * round(400.0 * 2000.0 * 1500.0 / 1e8)
    sigmas = crowded.ball_sigmas_angstrom[surface]
    heights = _height(crowded, crowded.ball_centres_angstrom[surface])
    # Each centre one sigma beyond its surface, as many on the top as on the bottom.
    assert np.abs(heights) == pytest.approx(crowded.thickness_angstrom / 2 + sigmas)
    assert np.sum(heights > 0) == np.sum(heights < 0)
    assert sigmas.min() >= 15.0 and sigmas.max() <= 40.0 and np.all(sigmas == np.round(sigmas))


def test_truth_dict_is_json(tilted: Phantom) -> None:
    truth = json.loads(json.dumps(phantom_to_dict(tilted)))
    assert truth["chiral"]["hand"] == 1
    assert len(truth["balls"]["labels"]) == len(tilted.labels)
    assert truth["slab"]["pretilt_deg"] == 15.0
    assert np.array(truth["complexes"]["rotations"]).shape == (30, 3, 3)


def test_truth_dict_holds_the_crowders_exactly(crowded: Phantom) -> None:
    crowders = json.loads(json.dumps(phantom_to_dict(crowded)))["crowders"]
    assert np.array_equal(np.array(crowders["centres_angstrom"]), crowded.crowder_centres_angstrom)
    sigmas = np.array(crowders["sigmas_angstrom"])[np.array(crowders["size_index"])]
    assert np.array_equal(sigmas, crowded.crowder_sigmas_angstrom)
    assert crowders["density"] == crowded.crowder_density


def test_rasterize_puts_density_where_the_primitives_are() -> None:
    ball = dataclasses.replace(
        empty_phantom(thickness_angstrom=1000.0),
        ball_centres_angstrom=np.array([[120.0, -80.0, 40.0]]),
        ball_sigmas_angstrom=np.array([15.0]),
        ball_densities=np.array([0.002]),
        sphere_centres_angstrom=np.array([[-150.0, 100.0, -60.0]]),
        sphere_radii_angstrom=np.array([50.0]),
        sphere_densities=np.array([0.01]),
        labels=("a",),
    )
    voxel = 10.0
    volume = rasterize(ball, shape_zyx=(64, 80, 96), voxel_size_angstrom=voxel)
    assert volume.dtype == np.float32 and volume.shape == (64, 80, 96)
    # (x, y, z) Å -> (z, y, x) index with the origin at N // 2.
    assert volume[32 + 4, 40 - 8, 48 + 12] == pytest.approx(0.002, rel=0.25)
    assert volume[32 - 6, 40 + 10, 48 - 15] == pytest.approx(0.01)
    sphere_mass = 0.01 * 4 / 3 * math.pi * 50.0**3
    ball_mass = 0.002 * (2 * math.pi) ** 1.5 * 15.0**3
    assert volume.sum() * voxel**3 == pytest.approx(sphere_mass + ball_mass, rel=0.02)
    z, y, x = np.indices(volume.shape)
    near_ball = (x - 60) ** 2 + (y - 32) ** 2 + (z - 36) ** 2 <= 36
    assert volume[near_ball].sum() * voxel**3 == pytest.approx(ball_mass, rel=0.05)


def test_rasterize_puts_each_crowder_where_a_ball_of_its_size_would_go() -> None:
    rng = np.random.default_rng(3)
    centres = np.round(rng.uniform(-250.0, 250.0, (30, 3)), 1)
    sizes = rng.integers(0, len(CROWDER_SIGMAS_ANGSTROM), 30)
    slab = empty_phantom(thickness_angstrom=800.0)
    crowders = dataclasses.replace(slab, crowder_centres_angstrom=centres, crowder_size_index=sizes)
    balls = dataclasses.replace(
        slab,
        ball_centres_angstrom=centres,
        ball_sigmas_angstrom=crowders.crowder_sigmas_angstrom,
        ball_densities=np.full(30, crowders.crowder_density),
        labels=("ball",) * 30,
    )
    for voxel in (6.0, 10.0):
        shape = (int(700 / voxel),) * 3
        bulk = rasterize(crowders, shape_zyx=shape, voxel_size_angstrom=voxel)
        one_by_one = rasterize(balls, shape_zyx=shape, voxel_size_angstrom=voxel)
        assert bulk.sum() == pytest.approx(one_by_one.sum(), rel=1e-3)
        assert np.abs(bulk - one_by_one).max() < 1e-3 * one_by_one.max()


def test_rasterize_marks_outside_the_tilted_slab() -> None:
    slab = empty_phantom(thickness_angstrom=200.0, pretilt_deg=30.0, z_offset_angstrom=50.0)
    volume = rasterize(slab, shape_zyx=(40, 8, 40), voxel_size_angstrom=10.0, outside_slab_value=np.nan)
    z, x = np.meshgrid((np.arange(40) - 20) * 10.0, (np.arange(40) - 20) * 10.0, indexing="ij")
    height = x * math.sin(math.radians(30.0)) + (z - 50.0) * math.cos(math.radians(30.0))
    assert np.array_equal(np.isnan(volume[:, 4, :]), np.abs(height) > 100.0)


def test_projection_profiles_match_the_analytic_projections() -> None:
    r, balls, spheres = projection_profiles(np.array([6.0, 20.0]), np.array([50.0, 400.0]),
                                            pixel_spacing_angstrom=2.0, r_max_angstrom=500.0)  # fmt: skip
    for sigma, profile in zip((6.0, 20.0), balls, strict=True):
        analytic = math.sqrt(2 * math.pi) * sigma * np.exp(-0.5 * (r / sigma) ** 2)
        assert profile == pytest.approx(analytic, abs=2e-3 * analytic.max())
    for radius, profile in zip((50.0, 400.0), spheres, strict=True):
        chord = 2 * np.sqrt(np.maximum(radius**2 - r**2, 0.0))
        away_from_edge = np.abs(r - radius) > 8.0  # the band limit softens the rim over a few pixels
        assert profile[away_from_edge] == pytest.approx(chord[away_from_edge], abs=5e-3 * chord.max())
