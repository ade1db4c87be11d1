"""What a step works on and returns: one unit of work (usually one tilt series) and its output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomoprep.model import TiltSeries

#: A note that starts with this is a warning: logged at level WARNING and shown by the command line.
WARNING_PREFIX = "WARNING:"


@dataclass(frozen=True)
class Unit:
    """One unit of work of a run (usually one tilt series).

    ``payload`` is what the step function receives (picklable). A unit that could not even be planned
    (for example an unreadable mdoc) carries ``error`` instead and fails without running.
    """

    name: str
    payload: Any = None
    error: str | None = None


@dataclass(frozen=True)
class UnitOutput:
    """What a step function returns for one unit: the resulting tilt series and notes for the log (those that
    start with :data:`WARNING_PREFIX` are warnings)."""

    tilt_series: TiltSeries
    notes: tuple[str, ...] = ()


StepFunction = Callable[[Any, Any, Path], UnitOutput]
PlanFunction = Callable[[Any, Sequence[TiltSeries]], list[Unit]]
