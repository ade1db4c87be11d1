"""Import of a RELION 5 tomogram set: its tilt series with RELION's alignment and CTF, as tomoprep records them.

The reading is :mod:`tomoprep.io.relion5_project`'s; this plans one unit per series and checks that the images
the series names are there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.model import TiltSeries
from tomoprep.steps.base import Unit, UnitOutput
from tomoprep.steps.import_.params import ImportParams


@dataclass(frozen=True)
class Relion5Payload:
    """One series as read from the RELION 5 set."""

    tilt_series: TiltSeries


def plan_relion5_import(params: ImportParams) -> list[Unit]:
    """One unit per series of the set ``--relion5`` names."""
    from tomoprep.io.relion5_project import read_relion5_project

    return [Unit(name=ts.name, payload=Relion5Payload(ts)) for ts in read_relion5_project(Path(str(params.relion5)))]


def import_relion5_series(payload: Relion5Payload, params: ImportParams, output_dir: Path) -> UnitOutput:
    """The series as read, once its tilt images are found (a missing one is an error naming it)."""
    ts = payload.tilt_series
    for tilt in ts.tilts:
        image = tilt.acquisition.stack_path or (tilt.motion.micrograph_path if tilt.motion is not None else None)
        if image is None or not Path(image).is_file():
            raise InputError(image or ts.sources[0], f"is the tilt image of {ts.name} at "
                             f"{tilt.acquisition.nominal_tilt_angle_deg:+.1f}°, and it is not there.",
                             "import the RELION project where its files are.")  # fmt: skip
    aligned = sum(1 for t in ts.tilts if t.alignment is not None)
    with_ctf = sum(1 for t in ts.tilts if t.ctf is not None)
    return UnitOutput(ts, notes=(f"{ts.n_tilts} tilts from {ts.sources[0]}: {aligned} aligned, {with_ctf} with a CTF",))
