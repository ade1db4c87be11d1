"""The steps, registered explicitly; third-party steps join through the ``tomoprep.steps`` entry-point group."""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points

from tomoprep.errors import StepError
from tomoprep.steps.base import Params, Step, Unit, UnitOutput

ENTRY_POINT_GROUP = "tomoprep.steps"


#: The steps that ship with tomoprep, in workflow order: name -> module that holds its ``STEP``. A step's module
#: is imported only when the step is asked for, and holds only the record (name, title, Params, plan): the work
#: and its libraries (torch, for one, takes a second) are imported when a unit runs, so ``tomoprep --help`` and
#: every ``--help`` start without them.
BUILTIN_STEP_MODULES = {
    "import": "tomoprep.steps.import_",
    "motioncorr": "tomoprep.steps.motioncorr",
    "clean": "tomoprep.steps.clean",
    "align": "tomoprep.steps.align",
    "ctf": "tomoprep.steps.ctf",
    "reconstruct": "tomoprep.steps.reconstruct",
    "deconvolve": "tomoprep.steps.deconvolve",
    "export": "tomoprep.steps.export",
}


def _builtin(name: str) -> Step:
    step = importlib.import_module(BUILTIN_STEP_MODULES[name]).STEP
    assert isinstance(step, Step) and step.name == name, BUILTIN_STEP_MODULES[name]
    return step


def builtin_steps() -> tuple[Step, ...]:
    """The steps that ship with tomoprep, in workflow order."""
    return tuple(_builtin(name) for name in BUILTIN_STEP_MODULES)


def _plugin_steps(taken: set[str]) -> list[Step]:
    """Steps of the ``tomoprep.steps`` entry points, each guarded: a plugin that fails to load, is not a
    :class:`Step`, or takes a name already taken is left out with a warning naming it, and the others load."""
    steps = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        where = f"plugin step {entry.name!r} ({entry.value})"
        try:
            step = entry.load()
        except Exception as error:  # a plugin's bug must not stop tomoprep or the other plugins
            warnings.warn(f"{where} was not loaded: {type(error).__name__}: {error}", stacklevel=2)
            continue
        if not isinstance(step, Step):
            warnings.warn(
                f"{where} was not loaded: its value is of type {type(step).__name__!r}, not a tomoprep Step",
                stacklevel=2,
            )
        elif step.name in taken:
            warnings.warn(f"{where} was not loaded: a step named {step.name!r} exists already", stacklevel=2)
        else:
            taken.add(step.name)
            steps.append(step)
    return steps


def all_steps() -> tuple[Step, ...]:
    """Built-in steps, then plugin steps (loaded now, not at import time; see :func:`_plugin_steps`)."""
    steps = list(builtin_steps())
    return (*steps, *_plugin_steps({step.name for step in steps}))


def get_step(name: str) -> Step:
    """The step called ``name`` (a built-in one is imported alone)."""
    if name in BUILTIN_STEP_MODULES:
        return _builtin(name)
    for step in all_steps():
        if step.name == name:
            return step
    known = ", ".join(s.name for s in all_steps())
    raise StepError(f"no step named {name!r}; known steps: {known}.")


__all__ = ["BUILTIN_STEP_MODULES", "Params", "Step", "Unit", "UnitOutput", "all_steps", "builtin_steps", "get_step"]
