"""Rich renderings of runs and tilt series for the terminal."""

from __future__ import annotations

from rich.table import Table

from tomoprep.model import TiltSeries
from tomoprep.project import RunRecord
from tomoprep.project.records import duration_text

STATUS_STYLE = {"SUCCEEDED": "green", "PARTIAL": "magenta", "FAILED": "red", "RUNNING": "yellow"}


def runs_table(runs: list[RunRecord]) -> Table:
    """One row per run: number, step, status, units, inputs, start and duration."""
    table = Table(title="Runs")
    for column in ("run", "step", "status", "units (done/failed/all)", "input", "started (UTC)", "took"):
        table.add_column(column)
    for run in runs:
        done = sum(u.status == "SUCCEEDED" for u in run.units.values())
        failed = len(run.failed_units)
        style = STATUS_STYLE.get(run.shown_status, "")
        table.add_row(
            run.label,
            run.step,
            f"[{style}]{run.shown_status}[/{style}]",
            f"{done}/{failed}/{len(run.units)}",
            ", ".join(str(i) for i in run.inputs) or "-",
            run.started_at[:19].replace("T", " "),
            duration_text(run.seconds, unfinished="-"),
        )
    return table


def tilt_series_table(series: list[TiltSeries], *, title: str) -> Table:
    """One row per tilt series: tilts, excluded, tilt range, axis, pixel spacing, dose."""
    table = Table(title=title)
    for column in (
        "tilt series",
        "tilts",
        "excluded",
        "tilt range (°)",
        "axis (°)",
        "pixel (Å)",
        "total dose (e/Å²)",
    ):
        table.add_column(column)
    for ts in series:
        angles = [t.acquisition.nominal_tilt_angle_deg for t in ts.tilts]
        doses = [(t.acquisition.pre_exposure_e_per_angstrom2, t.acquisition.dose_e_per_angstrom2) for t in ts.tilts]
        known = [pre + dose for pre, dose in doses if pre is not None and dose is not None]
        total = f"{max(known):.1f}" if len(known) == len(doses) else "unknown"
        table.add_row(
            ts.name,
            str(ts.n_tilts),
            str(ts.n_tilts - len(ts.included_tilts)),
            f"{min(angles):.1f} … {max(angles):.1f}",
            f"{ts.nominal_tilt_axis_angle_deg:.2f}",
            f"{ts.original_pixel_spacing_angstrom:.4g}",
            total,
        )
    return table
