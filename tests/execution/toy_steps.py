"""Small real steps for exercising the runner: each unit writes a file and appends its name to a call log."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from tomoprep.model import Optics, TiltAcquisition, TiltImage, TiltSeries
from tomoprep.steps.base import Params, Step, Unit, UnitOutput
from tomoprep.steps.kinds import TILT_SERIES


class ToyParams(Params):
    names: tuple[str, ...] = Field(("TS_01", "TS_02", "TS_03"), description="Unit names.")
    fail: tuple[str, ...] = Field((), description="Units that raise.")
    unplannable: tuple[str, ...] = Field((), description="Units that fail at planning.")
    seconds_per_unit: float = Field(0.0, ge=0, description="Time each unit takes.")
    call_log: str = Field("", description="File each call appends its unit name to.")


def tiny_tilt_series(name: str, n: int = 3) -> TiltSeries:
    tilts = tuple(
        TiltImage(
            TiltAcquisition(
                acquisition_index=i,
                section_index=i,
                nominal_tilt_angle_deg=3.0 * i,
                pre_exposure_e_per_angstrom2=3.0 * i,
                dose_e_per_angstrom2=3.0,
            )
        )
        for i in range(n)
    )
    return TiltSeries(
        name=name, original_pixel_spacing_angstrom=1.35, optics=Optics(), tilts=tilts, nominal_tilt_axis_angle_deg=85.0
    )


def plan(params: ToyParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    units = [Unit(name=n, error="cannot plan" if n in params.unplannable else None, payload=n) for n in params.names]
    return units


def run(name: str, params: ToyParams, output_dir: Path) -> UnitOutput:
    if params.call_log:
        with open(params.call_log, "a") as log:
            log.write(f"{name} {os.getpid()}\n")
    time.sleep(params.seconds_per_unit)
    if name in params.fail:
        raise RuntimeError(f"unit {name} was told to fail")
    (output_dir / "result.txt").write_text(name)
    return UnitOutput(tiny_tilt_series(name), notes=(f"made {name}",))


TOY = Step(name="toy", title="A toy step.", params=ToyParams, run=run, plan=plan, makes=frozenset({TILT_SERIES, "toy"}))


def consume(ts: TiltSeries, params: ToyParams, output_dir: Path) -> UnitOutput:
    return UnitOutput(ts.with_tilts(ts.tilts[:2]))


CONSUMER = Step(name="consumer", title="Takes toy output.", params=ToyParams, run=consume, needs=frozenset({"toy"}))
