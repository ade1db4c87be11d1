"""Read a RELION 5 tomogram set (any job's global STAR and its per-series tables) back into tilt series.

The global table (``data_global``: ``tomograms.star``, ``aligned_tilt_series.star``, ``tilt_series_ctf.star``...)
names each series' table through ``rlnTomoTiltSeriesStarFile``, a path relative to the RELION project directory.
That directory is found by walking up from the global file's folder until the first series' table resolves (a
job folder such as ``Tomograms/job006/`` lies two levels below it; a tomoprep export folder is its own).

Each row of a per-series table is a tilt RELION kept (RELION leaves excluded tilts out):

- acquisition order is the order of ``rlnMicrographPreExposure``; a tilt's dose is the global
  ``rlnTomoImportFractionalDose`` where given, else the step to the next tilt's pre-exposure (the last tilt takes
  the step before it);
- ``rlnMicrographName`` ``<n>@<stack>`` is section ``n - 1`` of a stack, anything else a motion-corrected sum
  (with ``rlnMicrographNameEven/Odd`` and ``rlnAccumMotion*`` where present); a movie column naming the tilt image
  itself (a series exported from a stack) is no movie;
- ``rlnTomoXTilt/YTilt/ZRot/XShiftAngst/YShiftAngst`` are the alignment, RELION's CTF labels the CTF, in the
  units tomoprep keeps (:mod:`tomoprep.io.tilt_series_star`); ``rlnTomoNominalDefocus`` is µm, negative for
  underfocus;
- the series' tomogram is ``rlnTomoReconstructedTomogram`` (with its halves and denoised copy), its size
  ``rlnTomoSize / rlnTomoTomogramBinning`` voxels.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tomoprep.errors import InputError
from tomoprep.io.ctf_star import ctf_from_row
from tomoprep.io.tilt_series_star import ALIGNMENT_LABELS, MICROMETRE_IN_ANGSTROM
from tomoprep.model import (
    Optics,
    TiltAcquisition,
    TiltAlignment,
    TiltImage,
    TiltMotion,
    TiltSeries,
    Tomogram,
)
from tomoprep.model.tilt_series import Hand

if TYPE_CHECKING:
    import pandas as pd

#: Global STAR files of RELION 5's tomography jobs (and of a tomoprep export), newest stage first.
GLOBAL_FILES = (
    "tomograms.star",
    "aligned_tilt_series.star",
    "selected_tilt_series.star",
    "tilt_series_ctf.star",
    "corrected_tilt_series.star",
    "tilt_series.star",
)


def find_global_file(path: Path) -> Path:
    """The global STAR of a RELION 5 job or export folder (the first of :data:`GLOBAL_FILES` there), or ``path``
    itself when it is a file."""
    path = Path(path)
    if path.is_file():
        return path
    for name in GLOBAL_FILES:
        if (path / name).is_file():
            return path / name
    raise InputError(
        path,
        f"holds none of {', '.join(GLOBAL_FILES)}.",
        "give the folder of a RELION 5 job (or export), or its global STAR file.",
    )


def project_dir(global_file: Path, first_series_file: str) -> Path:
    """The RELION project directory: the nearest folder, from ``global_file``'s up, where the first series'
    table resolves."""
    if Path(first_series_file).is_absolute():
        return global_file.parent
    for folder in [global_file.parent, *global_file.parent.parents]:
        if (folder / first_series_file).is_file():
            return folder
    raise InputError(
        global_file,
        f"names {first_series_file!r}, which resolves from none of its parent folders.",
        "keep the RELION project's folders as RELION wrote them.",
    )


def read_relion5_project(path: Path) -> list[TiltSeries]:
    """Every tilt series of a RELION 5 tomogram set (``path``: a global STAR, or a folder holding one).

    Raises
    ------
    InputError
        If no global table, a series' table or its ``data_<name>`` block is missing, or a required label is
        absent (each naming the file).
    """
    from tomoprep.io.star import read_star

    global_file = find_global_file(path)
    table = read_star(global_file).get("global")
    if table is None or "rlnTomoName" not in table or "rlnTomoTiltSeriesStarFile" not in table:
        raise InputError(
            global_file,
            "has no data_global table with rlnTomoName and rlnTomoTiltSeriesStarFile.",
            "give a RELION 5 tomogram or tilt-series set.",
        )
    root = project_dir(global_file, str(table["rlnTomoTiltSeriesStarFile"].iloc[0]))
    series = []
    for _, row in table.iterrows():
        name = str(row["rlnTomoName"])
        star = _resolve(root, str(row["rlnTomoTiltSeriesStarFile"]))
        block = read_star(star).get(name)
        if block is None:
            raise InputError(star, f"has no data_{name} table.", "give the tilt-series STAR RELION wrote.")
        series.append(series_from_tables(row, block, root=root, source=global_file, series_file=star))
    return series


def _resolve(root: Path, text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else root / path


def _opt(row: pd.Series, label: str) -> float | None:
    value = row.get(label)
    if value is None:
        return None
    number = float(cast(Any, value))
    return None if math.isnan(number) else number


def _required(row: pd.Series, label: str, source: Path) -> float:
    value = _opt(row, label)
    if value is None:
        raise InputError(
            source,
            f"has no {label} for {row.get('rlnTomoName', 'a series')}.",
            "give a RELION 5 set that holds it (RELION's import writes it).",
        )
    return value


def series_from_tables(
    row: pd.Series, table: pd.DataFrame, *, root: Path, source: Path, series_file: Path
) -> TiltSeries:
    """One tilt series from its global row and its per-series table (paths resolved from ``root``)."""
    name = str(row["rlnTomoName"])
    pre = table["rlnMicrographPreExposure"].astype(float).to_numpy() if "rlnMicrographPreExposure" in table else None
    if pre is None:
        raise InputError(series_file, "has no rlnMicrographPreExposure.", "give the STAR file RELION wrote.")
    order = sorted(range(len(table)), key=lambda i: (pre[i], i))
    doses = _doses([float(pre[i]) for i in order], _opt(row, "rlnTomoImportFractionalDose"))
    acquisition_index = {row_index: k for k, row_index in enumerate(order)}
    tilts = tuple(
        _tilt(tilt_row, root=root, index=i, acquisition_index=acquisition_index[i], dose=doses[acquisition_index[i]])
        for i, (_, tilt_row) in enumerate(table.iterrows())
    )
    spacing = _opt(row, "rlnTomoTiltSeriesPixelSize")
    axis = _opt(table.iloc[0], "rlnTomoNominalTiltAxisAngle")
    if axis is None:
        axis = _opt(table.iloc[0], "rlnTomoZRot")
    if axis is None:
        raise InputError(
            series_file, "has neither rlnTomoNominalTiltAxisAngle nor rlnTomoZRot.", "give the STAR file RELION wrote."
        )
    return TiltSeries(
        name=name,
        original_pixel_spacing_angstrom=_required(row, "rlnMicrographOriginalPixelSize", source),
        optics=Optics(
            voltage_kv=_required(row, "rlnVoltage", source),
            spherical_aberration_mm=_required(row, "rlnSphericalAberration", source),
            amplitude_contrast=_required(row, "rlnAmplitudeContrast", source),
            optics_group_name=str(row.get("rlnOpticsGroupName", "opticsGroup1")),
        ),
        tilts=tilts,
        nominal_tilt_axis_angle_deg=axis,
        hand=cast(Hand, int(_required(row, "rlnTomoHand", source))),
        tilt_series_pixel_spacing_angstrom=spacing,
        sources=(source,),
        tomograms=_tomograms(row, root=root, spacing=spacing),
    )


def _doses(pre_exposures: list[float], fractional: float | None) -> list[float | None]:
    if fractional is not None:
        return [fractional] * len(pre_exposures)
    steps: list[float | None] = [b - a for a, b in pairwise(pre_exposures)]
    return [*steps, steps[-1] if steps else None]


def _text(row: pd.Series, label: str) -> str | None:
    value = row.get(label)
    text = None if value is None else str(value)
    return None if text in (None, "", "None", "nan") else text


def _tilt(row: pd.Series, *, root: Path, index: int, acquisition_index: int, dose: float | None) -> TiltImage:
    micrograph = _text(row, "rlnMicrographName")
    movie = _text(row, "rlnMicrographMovieName")
    stack, section = None, index
    if micrograph is not None and "@" in micrograph:
        number, _, stack_text = micrograph.partition("@")
        stack, section = _resolve(root, stack_text), int(number) - 1
    defocus_um = _opt(row, "rlnTomoNominalDefocus")
    frames = _opt(row, "rlnTomoTiltMovieFrameCount")
    nominal = _opt(row, "rlnTomoNominalStageTiltAngle")
    acquisition = TiltAcquisition(
        acquisition_index=acquisition_index,
        section_index=section,
        nominal_tilt_angle_deg=float(row.get("rlnTomoYTilt", 0.0)) if nominal is None else nominal,
        pre_exposure_e_per_angstrom2=_opt(row, "rlnMicrographPreExposure"),
        dose_e_per_angstrom2=dose,
        movie_path=None if movie is None or movie == micrograph else _resolve(root, movie),
        frame_count=None if frames is None or frames < 0 else int(frames),
        nominal_defocus_angstrom=None if defocus_um is None else -defocus_um * MICROMETRE_IN_ANGSTROM,
        stack_path=stack,
    )
    return TiltImage(
        acquisition=acquisition,
        motion=_motion(row, root, micrograph, stack is not None),
        alignment=_alignment(row),
        ctf=ctf_from_row(row),
    )


def _motion(row: pd.Series, root: Path, micrograph: str | None, from_stack: bool) -> TiltMotion | None:
    if micrograph is None or from_stack:
        return None
    even, odd = _text(row, "rlnMicrographNameEven"), _text(row, "rlnMicrographNameOdd")
    total = _opt(row, "rlnAccumMotionTotal")
    early, late = _opt(row, "rlnAccumMotionEarly"), _opt(row, "rlnAccumMotionLate")
    return TiltMotion(
        micrograph_path=_resolve(root, micrograph),
        micrograph_even_path=None if even is None else _resolve(root, even),
        micrograph_odd_path=None if odd is None else _resolve(root, odd),
        accumulated_motion_angstrom=None
        if total is None
        else (total, math.nan if early is None else early, math.nan if late is None else late),
    )


def _alignment(row: pd.Series) -> TiltAlignment | None:
    pose = {attribute: _opt(row, label) for label, attribute in ALIGNMENT_LABELS.items()}
    if pose["y_tilt_deg"] is None or pose["z_rot_deg"] is None:
        return None
    return TiltAlignment(**{k: 0.0 if v is None else v for k, v in pose.items()})


def _tomograms(row: pd.Series, *, root: Path, spacing: float | None) -> tuple[Tomogram, ...]:
    path = _text(row, "rlnTomoReconstructedTomogram")
    binning = _opt(row, "rlnTomoTomogramBinning")
    sizes = [_opt(row, f"rlnTomoSize{axis}") for axis in "XYZ"]
    if path is None or binning is None or spacing is None or any(s is None for s in sizes):
        return ()
    optional = {attribute: _text(row, label) for label, attribute in (
        ("rlnTomoReconstructedTomogramHalf1", "half1_path"), ("rlnTomoReconstructedTomogramHalf2", "half2_path"),
        ("rlnTomoReconstructedTomogramDenoised", "denoised_path"))}  # fmt: skip
    return (
        Tomogram(
            path=_resolve(root, path),
            binning=binning,
            voxel_spacing_angstrom=spacing * binning,
            size_xyz=cast(tuple[int, int, int], tuple(round(cast(float, s) / binning) for s in sizes)),
            **{k: None if v is None else _resolve(root, v) for k, v in optional.items()},  # type: ignore[arg-type]
        ),
    )
