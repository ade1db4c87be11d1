"""The ground truth of a simulated session: plain dataclasses, written to and read from ``truth.json``.

Every later step can be scored against it: the acquisition (order, doses, frame counts, gains, defects), the
motion in every movie, the true tilt geometry and defocus of every tilt, and the specimen itself. The schema
is documented in ``docs/simulate.md``; :data:`SCHEMA_VERSION` changes whenever a field changes meaning or goes.
A new field with a default keeps the version: reading ignores fields it does not know and fills in defaults
for fields a file lacks, so older and newer files of one version read both ways.

Conventions: units in the field names (Å, degrees, e⁻/Å²); defocus positive for underfocus; tilt-axis angles
counter-clockwise from the image Y axis; geometry in RELION 5's projection model; pixel coordinates ``(y, x)``
in MRC row order (as :func:`tomoprep.io.movies.read_movie` returns frames); file paths relative to the
session folder, with ``/`` separators.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np

from tomoprep.errors import InputError
from tomoprep.simulate.acquisition import SeriesPlan, TiltPlan
from tomoprep.simulate.bad_tilts import PlantedDefect
from tomoprep.simulate.frames import LocalMotion, TiltMotion

SCHEMA_VERSION = 1
_T = TypeVar("_T")


@dataclass(frozen=True)
class GainTruth:
    """One gain reference and the camera defects it belongs with.

    ``file`` must be read with ``read_gain(file, rotation_deg=rotation_deg, flip=flip)`` to correct the movies
    (``corrected = frames * gain``); ``hot_pixels_yx``/``dead_pixels_yx`` are ``[y, x]`` pixels; a hot pixel
    counts ``hot_rate_factor`` times the mean electrons per pixel of each frame, whatever the specimen.
    """

    name: str
    file: str
    rotation_deg: int
    flip: str
    hot_pixels_yx: list[list[int]]
    hot_rate_factor: list[float]
    dead_pixels_yx: list[list[int]]


@dataclass(frozen=True)
class LocalMotionTruth:
    """Smooth local deformation of one movie (Å): ``u(r, f) = profile[f] Σ_k a_k cos(2π k_k·r + φ_k)``.

    ``r = (x, y)`` in Å from the image centre pixel ``N // 2``; the content of fraction ``f`` at ``r + d_f +
    u(r, f)`` came from ``r`` of the expected image (``d_f`` the tilt's trajectory).
    """

    wave_vectors_per_angstrom: list[list[float]]
    phases_rad: list[float]
    amplitudes_angstrom: list[list[float]]
    profile: list[float]

    def displacement_angstrom(self, x_angstrom: np.ndarray, y_angstrom: np.ndarray, fraction: int = -1) -> np.ndarray:
        """``(2, *x.shape)`` displacement (x, y) in Å at the given positions, of fraction ``fraction``."""
        motion = LocalMotion(np.array(self.wave_vectors_per_angstrom), np.array(self.phases_rad),
                             np.array(self.amplitudes_angstrom), np.array(self.profile))  # fmt: skip
        x, y = np.asarray(x_angstrom), np.asarray(y_angstrom)
        return motion.displacement_angstrom(x, y, fraction % len(self.profile))


@dataclass(frozen=True)
class TiltTruth:
    """One tilt: what the mdoc says and what really happened (units in the names).

    ``tilt_deformation`` is the smooth deformation of the whole tilt image (profile ``[1]``; content from ``r``
    of the undeformed image lies at ``r + u(r)``), ``None`` when none was simulated.
    ``planted_defect`` is ``shifted``, ``dark`` or ``blurred`` for a tilt made bad on purpose
    (:mod:`tomoprep.simulate.bad_tilts`), with ``planted_defect_detail`` saying how; ``None`` for the others.
    A shifted tilt's ``shift_*_angstrom`` include its jump.
    """

    acquisition_index: int
    section_index: int
    stack_index: int
    intended_tilt_deg: float
    nominal_tilt_deg: float
    true_tilt_deg: float
    true_tilt_axis_deg: float
    x_tilt_deg: float
    shift_x_angstrom: float
    shift_y_angstrom: float
    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    pre_exposure_e_per_angstrom2: float
    dose_e_per_angstrom2: float
    date_time: str
    movie: str
    gain: str
    n_frames: int
    fraction_frames: list[int]
    trajectory_angstrom: list[list[float]]
    fraction_counts: list[int]
    local_motion: LocalMotionTruth | None = None
    tilt_deformation: LocalMotionTruth | None = None
    planted_defect: str | None = None
    planted_defect_detail: str | None = None


@dataclass(frozen=True)
class SeriesTruth:
    """One tilt series: its files, optics, specimen and tilts (in acquisition order)."""

    name: str
    mdoc: str
    movie_format: str
    gain: str
    detector_shape_yx: list[int]
    pixel_spacing_angstrom: float
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    hand: int
    nominal_tilt_axis_deg: float
    true_tilt_axis_deg: float
    tilt_offset_deg: float
    target_defocus_angstrom: float
    astigmatism_angstrom: float
    thickness_angstrom: float
    pretilt_deg: float
    z_offset_angstrom: float
    ice_mean_free_path_angstrom: float
    phantom: dict[str, Any]
    phantom_volume: str
    phantom_volume_voxel_size_angstrom: float
    contact_sheet: str
    tilts: list[TiltTruth]
    stack: str | None = None
    stack_rawtlt: str | None = None
    stack_mdoc: str | None = None

    def tilt(self, acquisition_index: int) -> TiltTruth:
        """The tilt recorded ``acquisition_index``-th (0-based)."""
        return next(t for t in self.tilts if t.acquisition_index == acquisition_index)

    def mid_plane_defocus_angstrom(self, tilt: TiltTruth) -> float:
        """Defocus (Å, positive underfocus) at the centre of ``tilt``'s image on the slab's mid-plane: what a CTF
        estimate of the tilt centre should find. The simulated defocus is at depth 0 of the image centre; the
        mid-plane passes through ``(0, 0, z_offset)`` with the normal of the pretilt."""
        from tomoprep.simulate.geometry import TiltGeometry, projection_matrix

        geometry = TiltGeometry(tilt.true_tilt_deg, tilt.true_tilt_axis_deg, 0.0, tilt.shift_x_angstrom,
                                tilt.shift_y_angstrom)  # fmt: skip
        pretilt = math.radians(self.pretilt_deg)
        normal = np.array([math.sin(pretilt), 0.0, math.cos(pretilt)])
        rotated = projection_matrix(geometry) @ normal
        # The image centre sees the specimen points with (R X)[:2] = -shift; on the plane n · X = n · c.
        depth = (normal[2] * self.z_offset_angstrom + rotated[0] * tilt.shift_x_angstrom
                 + rotated[1] * tilt.shift_y_angstrom) / rotated[2]  # fmt: skip
        return 0.5 * (tilt.defocus_u_angstrom + tilt.defocus_v_angstrom) + self.hand * depth


@dataclass(frozen=True)
class Truth:
    """Everything ``tomoprep simulate`` knows about the session it wrote."""

    schema_version: int
    generator: str
    params: dict[str, Any]
    resolved: dict[str, Any]
    gains: list[GainTruth]
    tilt_series: list[SeriesTruth]
    notes: list[str] = field(default_factory=list)

    def series(self, name: str) -> SeriesTruth:
        """The tilt series called ``name``.

        Raises
        ------
        KeyError
            If there is none.
        """
        for series in self.tilt_series:
            if series.name == name:
                return series
        raise KeyError(f"no tilt series {name!r} in the truth ({[s.name for s in self.tilt_series]})")

    def gain(self, name: str) -> GainTruth:
        """The gain reference called ``name`` (``A`` or ``B``)."""
        return next(g for g in self.gains if g.name == name)


def tilt_truth(
    tilt: TiltPlan,
    motion: TiltMotion,
    *,
    movie: str,
    gain: str,
    fraction_counts: list[int],
    defect: PlantedDefect | None = None,
    deformation: LocalMotion | None = None,
) -> TiltTruth:
    """The truth of one simulated tilt: its plan, its movie's motion (``movie`` relative) and its planted defect."""
    local = motion.local
    return TiltTruth(
        acquisition_index=tilt.acquisition_index,
        section_index=tilt.acquisition_index,  # the movie mdoc lists tilts in acquisition order
        stack_index=tilt.stack_index,
        intended_tilt_deg=tilt.intended_tilt_deg,
        nominal_tilt_deg=tilt.nominal_tilt_deg,
        true_tilt_deg=tilt.true_tilt_deg,
        true_tilt_axis_deg=tilt.true_tilt_axis_deg,
        x_tilt_deg=0.0,
        shift_x_angstrom=tilt.shift_x_angstrom,
        shift_y_angstrom=tilt.shift_y_angstrom,
        defocus_u_angstrom=tilt.defocus_u_angstrom,
        defocus_v_angstrom=tilt.defocus_v_angstrom,
        astigmatism_angle_deg=tilt.astigmatism_angle_deg,
        pre_exposure_e_per_angstrom2=tilt.pre_exposure_e_per_angstrom2,
        dose_e_per_angstrom2=tilt.dose_e_per_angstrom2,
        date_time=tilt.date_time.isoformat(),
        movie=movie,
        gain=gain,
        n_frames=motion.n_frames,
        fraction_frames=list(motion.fraction_frames),
        trajectory_angstrom=motion.trajectory_angstrom.tolist(),
        fraction_counts=fraction_counts,
        local_motion=None if local is None else _local_truth(local),
        tilt_deformation=None if deformation is None else _local_truth(deformation),
        planted_defect=None if defect is None else defect.kind,
        planted_defect_detail=None if defect is None else defect.describe(),
    )


def _local_truth(local: LocalMotion) -> LocalMotionTruth:
    return LocalMotionTruth(
        local.wave_vectors_per_angstrom.tolist(),
        local.phases_rad.tolist(),
        local.amplitudes_angstrom.tolist(),
        local.profile.tolist(),
    )


def plan_fields(plan: SeriesPlan) -> dict[str, Any]:
    """The :class:`SeriesTruth` fields that come from a series' plan (axis, offset, focus, specimen slab)."""
    return {
        "name": plan.name,
        "nominal_tilt_axis_deg": plan.nominal_tilt_axis_deg,
        "true_tilt_axis_deg": plan.true_tilt_axis_deg,
        "tilt_offset_deg": plan.tilt_offset_deg,
        "target_defocus_angstrom": plan.target_defocus_angstrom,
        "astigmatism_angstrom": plan.astigmatism_angstrom,
        "thickness_angstrom": plan.thickness_angstrom,
        "pretilt_deg": plan.pretilt_deg,
        "z_offset_angstrom": plan.z_offset_angstrom,
    }


#: A list of numbers (no strings, lists or objects in it) as ``json.dumps(indent=1)`` spreads it over lines.
_NUMBER_LIST = re.compile(r"\[\n\s*([^\[\]{}\"\n]+(?:,\n\s*[^\[\]{}\"\n]+)*)\n\s*\]")


def write_truth(path: Path, truth: Truth) -> None:
    """Write ``truth`` as indented JSON, every list of numbers on one line (a phantom holds 10⁴-10⁶ crowders'
    centres), through a temporary file and a rename."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    text = json.dumps(dataclasses.asdict(truth), indent=1)
    text = _NUMBER_LIST.sub(lambda match: "[" + re.sub(r",\n\s*", ", ", match.group(1)) + "]", text)
    temporary.write_text(text + "\n", encoding="utf-8")
    temporary.replace(path)


def read_truth(path: Path) -> Truth:
    """Read a ``truth.json``.

    Raises
    ------
    InputError
        If the file is missing, not JSON, or of another schema version.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        problem = f"cannot be read as a simulation truth ({exc})."
        raise InputError(path, problem, "give the truth.json of a session.") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        problem = f"has truth schema version {version!r}; this tomoprep reads version {SCHEMA_VERSION}."
        raise InputError(path, problem, "simulate the session again with this tomoprep.")
    return _build(Truth, data)


def _build(cls: type[_T], data: dict[str, Any]) -> _T:
    """A dataclass from its ``asdict`` form, nested dataclasses (also in lists and optionals) included."""
    hints = get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.name in data:
            values[item.name] = _convert(hints[item.name], data[item.name])
    return cls(**values)


def _convert(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (element,) = get_args(annotation)
        return [_convert(element, v) for v in value]
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _build(annotation, value)
    return value
