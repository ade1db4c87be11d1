"""Particle coordinates into RELION 5's particle set: ``rlnCenteredCoordinateX/Y/ZAngst``.

RELION 5 places a particle at ``rlnCenteredCoordinate × 1/rlnTomoTiltSeriesPixelSize + rlnTomoSize / 2`` tilt-series
pixels (``particle_set.cpp``), that is in Å from the centre of the bin-1 volume, the point its projection model
puts at the image centre plus the tilt's shift. tomoprep's tomograms have that point at voxel ``n // 2`` of each
axis (``conventions.py``), so a position ``v`` in voxels of a tomogram of ``n`` voxels and spacing ``s`` Å is
``(v - n // 2) × s`` Å from the centre. RELION's own Python picker subtracts ``rlnTomoSize / 2 - 1`` pixels
instead (one tilt-series pixel apart); tomoprep follows the C++ programs, which project the particles.

Coordinates are read from

- text files (``.txt``, ``.coords``, ``.csv``...): three columns ``x y z`` per particle (blank, comma or tab
  separated, ``#`` comments), the tilt series named by the start of the file name (``TS_01.txt``,
  ``TS_01_ribosomes.coords``: the longest series name that starts it);
- STAR files: ``rlnTomoName`` with ``rlnCenteredCoordinateX/Y/ZAngst`` (taken as they are) or
  ``rlnCoordinateX/Y/Z`` (converted as text files are).

Uncentred coordinates are in ``voxel``\\ s of a tomogram binned ``binning`` times from the tilt series (the
exported tomogram's binning by default), or in ``angstrom`` from the first voxel (voxel × its spacing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tomoprep.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

CoordinateUnit = Literal["voxel", "angstrom"]
CENTERED_LABELS = ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst")
UNCENTERED_LABELS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")


@dataclass(frozen=True)
class VolumeFrame:
    """What places a coordinate in a series' volume: tilt-series pixel spacing (Å), the bin-1 size
    (``rlnTomoSizeX/Y/Z``, pixels), and the binning of the exported tomogram (``None`` when it has none)."""

    pixel_spacing_angstrom: float
    size_px: tuple[int, int, int]
    tomogram_binning: float | None = None

    def centre_angstrom(self, binning: float) -> np.ndarray:
        """``(3,)`` position of the volume's centre in Å from the first voxel of a tomogram binned ``binning``."""
        voxels = np.rint(np.asarray(self.size_px, dtype=np.float64) / binning)
        return (voxels // 2) * binning * self.pixel_spacing_angstrom


def centered_angstrom(
    xyz: np.ndarray, frame: VolumeFrame, *, unit: CoordinateUnit, binning: float | None
) -> np.ndarray:
    """``(n, 3)`` positions in RELION 5's centred Å from ``(n, 3)`` uncentred ``xyz`` (module docstring).

    Raises
    ------
    InputError
        If voxel coordinates come without a binning and the series has no tomogram to take it from.
    """
    factor = binning if binning is not None else frame.tomogram_binning
    if factor is None:
        if unit == "voxel":
            raise InputError(None, "coordinates in voxels need the binning of the tomogram they were picked in, "
                             "and the series has no tomogram to take it from.",
                             "give --coordinates-binning (tomogram voxel size / tilt-series pixel size).")  # fmt: skip
        factor = 1.0
    positions = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    if unit == "voxel":
        positions = positions * factor * frame.pixel_spacing_angstrom
    return positions - frame.centre_angstrom(factor)


def uncentered_voxels(centered: np.ndarray, frame: VolumeFrame, *, binning: float) -> np.ndarray:
    """The inverse of :func:`centered_angstrom` for voxels of a tomogram binned ``binning``: ``(n, 3)``."""
    spacing = binning * frame.pixel_spacing_angstrom
    return (np.asarray(centered, dtype=np.float64).reshape(-1, 3) + frame.centre_angstrom(binning)) / spacing


def series_of_file(path: Path, names: Sequence[str]) -> str:
    """The series a text coordinate file is for: the longest name its file name starts with."""
    stem = Path(path).name
    matches = [n for n in names if stem == n or re.match(rf"{re.escape(n)}(?![0-9A-Za-z])", stem)]
    if not matches:
        raise InputError(
            path,
            f"its name starts with none of the exported tilt series ({', '.join(names)}).",
            "name each coordinate file after its tilt series (TS_01.txt, TS_01_picks.coords).",
        )
    return max(matches, key=len)


def read_text_coordinates(path: Path) -> np.ndarray:
    """``(n, 3)`` coordinates of a text file (module docstring)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f for f in re.split(r"[\s,;]+", text) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise InputError(path, f"line {number} is not numbers: {line.strip()!r}.",
                             "write three numbers (x y z) per line.") from None  # fmt: skip
        if len(values) < 3:
            raise InputError(path, f"line {number} has {len(values)} numbers, not x y z.",
                             "write three numbers (x y z) per line.")  # fmt: skip
        rows.append(values[:3])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def read_coordinates(
    paths: Sequence[Path], frames: Mapping[str, VolumeFrame], *, unit: CoordinateUnit, binning: float | None
) -> list[tuple[str, np.ndarray]]:
    """``(series, (n, 3) centred Å)`` of every file, for the series in ``frames``; particles of other series are
    an error naming the file."""
    found: list[tuple[str, np.ndarray]] = []
    for path in paths:
        if Path(path).suffix.lower() == ".star":
            found.extend(_star_coordinates(Path(path), frames, unit=unit, binning=binning))
        else:
            name = series_of_file(Path(path), list(frames))
            xyz = read_text_coordinates(Path(path))
            found.append((name, centered_angstrom(xyz, frames[name], unit=unit, binning=binning)))
    return found


def _star_coordinates(
    path: Path, frames: Mapping[str, VolumeFrame], *, unit: CoordinateUnit, binning: float | None
) -> list[tuple[str, np.ndarray]]:
    from tomoprep.io.star import read_star

    table = next((t for t in read_star(path).values() if "rlnTomoName" in t), None)
    if table is None:
        raise InputError(path, "has no table with rlnTomoName.", "give a RELION particles or picks STAR file.")
    centred = all(label in table for label in CENTERED_LABELS)
    if not centred and not all(label in table for label in UNCENTERED_LABELS):
        raise InputError(path, "has neither rlnCenteredCoordinateX/Y/ZAngst nor rlnCoordinateX/Y/Z.",
                         "give a STAR file with particle coordinates.")  # fmt: skip
    found = []
    for name, group in table.groupby(table["rlnTomoName"].astype(str), sort=False):
        if name not in frames:
            raise InputError(path, f"has particles of {name!r}, which is not among the exported tilt series.",
                             "export that series too, or leave its particles out.")  # fmt: skip
        if centred:
            found.append((name, group[list(CENTERED_LABELS)].to_numpy(dtype=np.float64)))
        else:
            xyz = group[list(UNCENTERED_LABELS)].to_numpy(dtype=np.float64)
            found.append((name, centered_angstrom(xyz, frames[name], unit=unit, binning=binning)))
    return found


def particle_tables(
    particles: list[tuple[str, np.ndarray]], optics: Mapping[str, dict[str, object]]
) -> dict[str, pd.DataFrame]:
    """``data_optics`` and ``data_particles`` of RELION 5's particle set.

    ``optics`` maps each series to its optics (``rlnOpticsGroupName``, ``rlnVoltage``,
    ``rlnSphericalAberration``, ``rlnAmplitudeContrast``, ``rlnTomoTiltSeriesPixelSize``); series with the same
    values share an optics group, numbered from 1.
    """
    import pandas as pd

    groups: dict[tuple[object, ...], int] = {}
    optics_rows: list[dict[str, object]] = []
    particle_rows: list[dict[str, object]] = []
    counters: dict[str, int] = {}
    for name, centred in particles:
        values = optics[name]
        key = tuple(values.values())
        if key not in groups:
            groups[key] = len(groups) + 1
            group_name = str(values.get("rlnOpticsGroupName", "opticsGroup"))
            if any(row.get("rlnOpticsGroupName") == group_name for row in optics_rows):
                group_name = f"{group_name}_{groups[key]}"  # same name, other optics: RELION needs them apart
            optics_rows.append({"rlnOpticsGroup": groups[key], **values, "rlnOpticsGroupName": group_name})
        for x, y, z in np.asarray(centred).reshape(-1, 3):
            counters[name] = counters.get(name, 0) + 1
            particle_rows.append({"rlnTomoName": name, "rlnCenteredCoordinateXAngst": x,
                                  "rlnCenteredCoordinateYAngst": y, "rlnCenteredCoordinateZAngst": z,
                                  "rlnOpticsGroup": groups[key],
                                  "rlnTomoParticleName": f"{name}/{counters[name]}"})  # fmt: skip
    return {"optics": pd.DataFrame(optics_rows), "particles": pd.DataFrame(particle_rows)}
