"""The export's work: one tilt series at a time into the export folder, then the files of the whole export.

Each unit writes its series' files into ``--out`` and, for RELION 5, its row of the global table into its unit
folder of the run (``relion5_global.star``), from which :func:`finish_export` writes ``tomograms.star``, the
particles and the optimisation set once every series is done: so a resumed run writes them from all its series.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.model import TiltSeries
from tomoprep.steps.base import UnitOutput
from tomoprep.steps.export.params import ExportParams
from tomoprep.steps.recorded_params import params_from_record
from tomoprep.steps.tilt_series_set import finalize_tilt_series_set, project_root
from tomoprep.steps.unit import WARNING_PREFIX

GLOBAL_ROW_FILE = "relion5_global.star"


def export_one(ts: TiltSeries, params: ExportParams, output_dir: Path) -> UnitOutput:
    """Export ``ts`` in ``params.format`` into ``params.out``; the series itself is passed on unchanged."""
    if params.format == "relion5":
        import pandas as pd

        from tomoprep.export.relion5 import export_series
        from tomoprep.io.star import write_star

        exported = export_series(ts, params.out, copy=params.copy_files,
                                 thickness_angstrom=params.tomogram_thickness_angstrom,
                                 moves_with=project_root(output_dir.parent))  # fmt: skip
        write_star(output_dir / GLOBAL_ROW_FILE, {"global": pd.DataFrame([exported.global_row])})
        warnings = exported.notes
        done = f"{ts.name}: {len(ts.included_tilts)} tilts into {params.out}"
    else:
        from tomoprep.export.imod_aretomo import export_alignment_files

        files = export_alignment_files(ts, params.out, formats=frozenset({params.format}),
                                       thickness_angstrom=params.tomogram_thickness_angstrom)  # fmt: skip
        warnings = files.notes
        done = f"{ts.name}: {params.format} files in {files.folder}"
    return UnitOutput(ts, notes=(*(f"{WARNING_PREFIX} {w}" for w in warnings), done))


def coordinate_files(params: ExportParams) -> list[Path]:
    """The coordinate files ``--coordinates`` names, sorted; none found is an error."""
    pattern = str(params.coordinates)
    paths = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser())))
    if not paths:
        raise InputError(None, f"--coordinates {pattern!r} matches no file.", "check the path or glob (quote it).")
    return paths


def check_coordinate_files(params: ExportParams, names: Sequence[str]) -> None:
    """Read every coordinate file before the run starts: each must parse and name an exported series."""
    from tomoprep.export.particles import read_text_coordinates, series_of_file
    from tomoprep.io.star import read_star

    for path in coordinate_files(params):
        if path.suffix.lower() == ".star":
            tables = [t for t in read_star(path).values() if "rlnTomoName" in t]
            unknown = sorted({str(n) for t in tables for n in t["rlnTomoName"]} - set(names))
            if not tables or unknown:
                raise InputError(
                    path,
                    f"names tilt series not exported: {unknown}." if tables else "has no table with rlnTomoName.",
                    "give particles of the exported series only.",
                )
        else:
            series_of_file(path, names)
            read_text_coordinates(path)


def finish_export(run_dir: Path, names: Sequence[str]) -> Path:
    """Close the run's tilt-series set; for RELION 5 write ``tomograms.star``, ``particles.star`` (with
    coordinates) and ``optimisation_set.star`` from the units' global rows."""
    path = finalize_tilt_series_set(run_dir, names)
    recorded = json.loads((run_dir / "run.json").read_text())["params"]
    params = ExportParams.model_validate(params_from_record(ExportParams, recorded, project_root(run_dir)))
    if params.format != "relion5" or not names:
        return path
    from tomoprep.export.relion5 import write_optimisation_set, write_tomogram_set
    from tomoprep.io.star import read_star

    rows = [read_star(run_dir / name / GLOBAL_ROW_FILE)["global"].iloc[0].to_dict() for name in names]
    _, notes = write_tomogram_set(params.out, rows)
    for note in notes:
        _log_warning(run_dir, note)
    if params.coordinates is not None:
        _write_particles(params, rows)
    write_optimisation_set(params.out, particles=params.coordinates is not None)
    return path


def _write_particles(params: ExportParams, rows: list[dict[str, object]]) -> None:
    from tomoprep.export.particles import VolumeFrame, particle_tables, read_coordinates
    from tomoprep.export.relion5 import PARTICLES_FILE
    from tomoprep.io.star import write_star

    frames = {
        str(r["rlnTomoName"]): VolumeFrame(
            pixel_spacing_angstrom=float(r["rlnTomoTiltSeriesPixelSize"]),  # type: ignore[arg-type]
            size_px=(int(r["rlnTomoSizeX"]), int(r["rlnTomoSizeY"]), int(r["rlnTomoSizeZ"])),  # type: ignore[call-overload]
            tomogram_binning=float(r["rlnTomoTomogramBinning"]) if "rlnTomoTomogramBinning" in r else None,  # type: ignore[arg-type]
        )
        for r in rows
    }
    optics_labels = ("rlnOpticsGroupName", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
                     "rlnTomoTiltSeriesPixelSize")  # fmt: skip
    optics = {str(r["rlnTomoName"]): {label: r[label] for label in optics_labels} for r in rows}
    particles = read_coordinates(coordinate_files(params), frames, unit=params.coordinates_unit,
                                 binning=params.coordinates_binning)  # fmt: skip
    write_star(params.out / PARTICLES_FILE, particle_tables(particles, optics))


def _log_warning(run_dir: Path, message: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with open(run_dir / "log.txt", "a", encoding="utf-8") as log:
        log.write(f"{stamp} WARNING {message}\n")
