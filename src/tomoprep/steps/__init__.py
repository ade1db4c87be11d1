"""The steps, registered explicitly; third-party steps join through the ``tomoprep.steps`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from tomoprep.errors import StepError
from tomoprep.steps.base import Params, Step, Unit, UnitOutput

ENTRY_POINT_GROUP = "tomoprep.steps"


def builtin_steps() -> tuple[Step, ...]:
    """The steps that ship with tomoprep, in workflow order."""
    from tomoprep.steps import align, clean, import_step, motioncorr

    return (import_step.STEP, motioncorr.STEP, clean.STEP, align.STEP)


def all_steps() -> tuple[Step, ...]:
    """Built-in steps, then plugin steps (loaded now, not at import time)."""
    steps = list(builtin_steps())
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        step = entry.load()
        if not isinstance(step, Step):
            raise StepError(f"entry point {entry.name!r} ({entry.value}) is not a tomoprep Step.")
        steps.append(step)
    return tuple(steps)


def get_step(name: str) -> Step:
    """The step called ``name``."""
    for step in all_steps():
        if step.name == name:
            return step
    known = ", ".join(s.name for s in all_steps())
    raise StepError(f"no step named {name!r}; known steps: {known}.")


__all__ = ["Params", "Step", "Unit", "UnitOutput", "all_steps", "builtin_steps", "get_step"]
