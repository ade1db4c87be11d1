"""A second, deliberately different generator of tilt stacks: Gaussian blobs projected analytically.

The session simulator (:mod:`tomoprep.simulate.session`) voxelises a phantom of complexes, vesicles and ice,
projects it in Fourier space, applies a CTF and counts electrons. A method tuned to it can fail on the next
dataset, so alignment is also tested on stacks made here in another way that shares no code with it:

- the specimen is a slab of ice (uniform density, soft faces) holding Gaussian blobs of 1-4 px sigma whose
  depths fill the slab with the same soft faces, plus a small right-handed helix of larger blobs at its centre;
- each blob is projected exactly (the line integral of a 3-D Gaussian is a 2-D Gaussian of the same sigma),
  the ice slab by its path length ``thickness / cos``, with RELION 5's projection model: a specimen point ``X``
  (pixels from the specimen centre) lands at ``Rz(axis) Ry(tilt) X + shift`` from the image centre ``N // 2``;
- images show mass as dark (a constant level minus the projected density), no CTF, and additive white Gaussian
  noise whose standard deviation is a given multiple of the signal's;
- the true tilts are the nominal ones plus a stage offset; the slab itself may be pretilted about the specimen's
  y axis; the shifts are a random walk through the tilts in angle order.

Only numpy and mrcfile are used. :func:`make_blob_stack` returns the stack and its truth;
:func:`write_blob_stack` writes ``<name>.mrc``, ``<name>.rawtlt`` (nominal tilts, stack order) and
``<name>_truth.json``, as a user would import them with ``tomoprep import --stack``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import mrcfile
import numpy as np

#: Blob sigmas are drawn from these values (px), so that blobs of one sigma are drawn together.
_SIGMA_LEVELS = 7
#: A blob is drawn within this many sigmas of its centre.
_WINDOW_SIGMAS = 4.0


@dataclass(frozen=True)
class BlobStackSpec:
    """What :func:`make_blob_stack` makes; lengths in pixels of the stack, angles in degrees.

    Attributes
    ----------
    size_px
        Width and height of the square images.
    pixel_spacing_angstrom
        Pixel spacing written into the stack, Å.
    tilt_axis_deg
        True tilt-axis angle, counter-clockwise from the image Y axis.
    nominal_axis_error_deg
        The nominal (given) axis is the true one plus this.
    tilt_range_deg, tilt_step_deg
        Nominal tilts from ``-tilt_range_deg`` to ``+tilt_range_deg`` in steps of ``tilt_step_deg``.
    stage_offset_deg
        True tilt = nominal tilt + this.
    pretilt_deg
        Rotation of the slab about the specimen's y axis (a lamella milled at an angle).
    thickness_px
        Thickness of the ice slab between the half-density points of its faces.
    face_width_px
        Standard deviation of the Gaussian that softens the slab's faces (density and blob depths).
    slab_z_px
        Depth of the slab's centre from the specimen centre (the rotation centre of the stage).
    blob_sigma_px
        Smallest and largest blob sigma.
    blob_volume_fraction
        Sum of the blobs' volumes (``(2 sqrt(2 ln 2) sigma)^3``, a FWHM cube each) over the slab's volume.
    ice_contrast
        Density of the ice relative to a blob's peak density.
    helix_blobs
        Number of blobs in the right-handed helix at the slab's centre (0: none).
    shift_step_px
        Standard deviation of each step of the random walk of the shifts, per axis.
    noise_to_signal
        Standard deviation of the noise over that of the noiseless images (1: noise as strong as the signal).
    seed
        Seed of every random draw.
    """

    size_px: int = 256
    pixel_spacing_angstrom: float = 10.0
    tilt_axis_deg: float = -95.0
    nominal_axis_error_deg: float = 2.0
    tilt_range_deg: float = 60.0
    tilt_step_deg: float = 3.0
    stage_offset_deg: float = 3.5
    pretilt_deg: float = 0.0
    thickness_px: float = 48.0
    face_width_px: float = 2.0
    slab_z_px: float = 0.0
    blob_sigma_px: tuple[float, float] = (1.0, 4.0)
    blob_volume_fraction: float = 0.6
    ice_contrast: float = 0.15
    helix_blobs: int = 12
    shift_step_px: float = 1.5
    noise_to_signal: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class BlobStackTruth:
    """The geometry of a stack from :func:`make_blob_stack` (RELION 5's projection model; stack order).

    ``flat_tilt_offset_deg`` is what an alignment should add to the nominal tilts to make the slab flat: the
    stage offset plus the pretilt. ``shifts_px`` are ``(x, y)``: where the specimen centre lands relative to the
    image centre; ``slab_centre_px`` is the slab's centre ``(x, y, z)`` in specimen coordinates.
    """

    pixel_spacing_angstrom: float
    tilt_axis_deg: float
    nominal_tilt_axis_deg: float
    nominal_tilts_deg: list[float]
    tilts_deg: list[float]
    stage_offset_deg: float
    pretilt_deg: float
    flat_tilt_offset_deg: float
    shifts_px: list[list[float]]
    thickness_px: float
    thickness_angstrom: float
    slab_centre_px: list[float]


def _rotation_z(angle_deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_y(angle_deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _specimen(spec: BlobStackSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blob centres ``(m, 3)`` (x, y, z px from the specimen centre), sigmas ``(m,)`` px and peak densities."""
    half_depth = spec.thickness_px / 2 + 3 * spec.face_width_px
    # Wide enough that every tilt's field of view is covered, whatever the axis: the corner of the field at
    # the steepest tilt, plus the slab's own lean.
    steepest = math.radians(spec.tilt_range_deg + abs(spec.stage_offset_deg) + abs(spec.pretilt_deg))
    half_width = spec.size_px / math.sqrt(2) / math.cos(steepest) + half_depth * math.tan(steepest) + 8
    levels = np.linspace(*spec.blob_sigma_px, _SIGMA_LEVELS)
    fwhm_volume = (2 * math.sqrt(2 * math.log(2)) * levels) ** 3
    count = int(spec.blob_volume_fraction * (2 * half_width) ** 2 * spec.thickness_px / fwhm_volume.mean())
    sigmas = levels[rng.integers(0, _SIGMA_LEVELS, count)]
    depth = rng.uniform(-spec.thickness_px / 2, spec.thickness_px / 2, count) + rng.normal(0, spec.face_width_px, count)
    centres = np.column_stack([rng.uniform(-half_width, half_width, (count, 2)), depth])
    densities = rng.uniform(0.5, 1.5, count)
    helix = _helix(spec)
    centres = np.concatenate([centres, helix])
    sigmas = np.concatenate([sigmas, np.full(len(helix), spec.blob_sigma_px[1] * 1.25)])
    densities = np.concatenate([densities, np.full(len(helix), 2.0)])
    slab_frame = _rotation_y(spec.pretilt_deg)
    centres[:, 2] += spec.slab_z_px
    return centres @ slab_frame.T, sigmas, densities


def _helix(spec: BlobStackSpec) -> np.ndarray:
    """Centres of a right-handed helix along z (counter-clockwise seen from +z as z grows), two turns."""
    if spec.helix_blobs == 0:
        return np.zeros((0, 3))
    turn = np.linspace(0.0, 4 * math.pi, spec.helix_blobs)
    radius = 0.25 * spec.thickness_px
    rise = 0.6 * spec.thickness_px
    return np.column_stack([radius * np.cos(turn), radius * np.sin(turn), rise * (turn / turn[-1] - 0.5)])


def _render(points_xy: np.ndarray, sigmas: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Sum of 2-D Gaussians ``weight exp(-r² / 2 sigma²)`` at ``points_xy`` (px from the image centre)."""
    image = np.zeros(size * size)
    centre = size // 2
    for sigma in np.unique(sigmas):
        chosen = sigmas == sigma
        radius = math.ceil(_WINDOW_SIGMAS * sigma)
        offsets = np.arange(-radius, radius + 1)
        xy = points_xy[chosen] + centre
        nearest = np.rint(xy).astype(np.int64)
        inside = np.all((nearest > -radius) & (nearest < size + radius), axis=1)
        nearest, fraction, weight = nearest[inside], (xy - np.rint(xy))[inside], weights[chosen][inside]
        gx = np.exp(-((offsets[None] - fraction[:, :1]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((offsets[None] - fraction[:, 1:]) ** 2) / (2 * sigma**2))
        values = weight[:, None, None] * gy[:, :, None] * gx[:, None, :]
        cols = nearest[:, 0, None, None] + offsets[None, None, :]
        rows = nearest[:, 1, None, None] + offsets[None, :, None]
        keep = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
        index = np.broadcast_to(rows * size + cols, values.shape)[keep]
        image += np.bincount(index, weights=values[keep], minlength=size * size)
    return image.reshape(size, size)


def _shift_walk(spec: BlobStackSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` shifts: a random walk through the tilts in angle order, centred on a random offset."""
    walk = np.cumsum(rng.normal(0.0, spec.shift_step_px, (n, 2)), axis=0)
    return walk - walk.mean(axis=0) + rng.uniform(-3.0, 3.0, 2)


def make_blob_stack(spec: BlobStackSpec) -> tuple[np.ndarray, BlobStackTruth]:
    """Make a tilt stack ``(n, size, size)`` float32, sections in nominal tilt order, and its truth."""
    rng = np.random.default_rng(spec.seed)
    count = round(2 * spec.tilt_range_deg / spec.tilt_step_deg) + 1
    nominal = np.linspace(-spec.tilt_range_deg, spec.tilt_range_deg, count)
    tilts = nominal + spec.stage_offset_deg
    centres, sigmas, densities = _specimen(spec, rng)
    shifts = _shift_walk(spec, count, rng)
    # The line integral of a 3-D Gaussian of peak density d is d sigma sqrt(2 pi), spread as a 2-D Gaussian.
    weights = densities * sigmas * math.sqrt(2 * math.pi)
    projected = np.empty((count, spec.size_px, spec.size_px))
    for i, tilt in enumerate(tilts):
        rotation = _rotation_z(spec.tilt_axis_deg) @ _rotation_y(tilt)
        points = centres @ rotation.T
        ice_path = spec.thickness_px / math.cos(math.radians(tilt + spec.pretilt_deg))
        projected[i] = _render(points[:, :2] + shifts[i], sigmas, weights, spec.size_px)
        projected[i] += spec.ice_contrast * ice_path
    level = 2.0 * float(projected.max())
    signal = level - projected
    noise_sd = spec.noise_to_signal * float((signal - signal.mean(axis=(1, 2), keepdims=True)).std())
    stack = (signal + rng.normal(0.0, noise_sd, signal.shape)).astype(np.float32)
    truth = BlobStackTruth(
        pixel_spacing_angstrom=spec.pixel_spacing_angstrom,
        tilt_axis_deg=spec.tilt_axis_deg,
        nominal_tilt_axis_deg=spec.tilt_axis_deg + spec.nominal_axis_error_deg,
        nominal_tilts_deg=[round(float(t), 4) for t in nominal],
        tilts_deg=[float(t) for t in tilts],
        stage_offset_deg=spec.stage_offset_deg,
        pretilt_deg=spec.pretilt_deg,
        flat_tilt_offset_deg=spec.stage_offset_deg + spec.pretilt_deg,
        shifts_px=shifts.tolist(),
        thickness_px=spec.thickness_px,
        thickness_angstrom=spec.thickness_px * spec.pixel_spacing_angstrom,
        slab_centre_px=(_rotation_y(spec.pretilt_deg) @ [0.0, 0.0, spec.slab_z_px]).tolist(),
    )
    return stack, truth


def write_blob_stack(folder: Path, spec: BlobStackSpec, *, name: str = "TS_01") -> BlobStackTruth:
    """Write ``<name>.mrc``, ``<name>.rawtlt`` and ``<name>_truth.json`` into ``folder``; return the truth."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stack, truth = make_blob_stack(spec)
    with mrcfile.new(folder / f"{name}.mrc", overwrite=True) as mrc:
        mrc.set_data(stack)
        mrc.voxel_size = spec.pixel_spacing_angstrom
    (folder / f"{name}.rawtlt").write_text("".join(f"{t:.2f}\n" for t in truth.nominal_tilts_deg))
    record = {"spec": asdict(spec), "truth": asdict(truth)}
    (folder / f"{name}_truth.json").write_text(json.dumps(record, indent=1))
    return truth
