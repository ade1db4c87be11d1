"""Where a command's units run: the execution options, their rules, and where each value came from.

Each option may be given on the command line (``--executor dask``), kept as a project setting
(``tomoprep config set executor dask``), or left to its default; the command line wins over the setting, the setting
over the default. The same rules check a value wherever it comes from, and one error names the option, the value
and what is allowed. :func:`resolve_execution` gives the values with their sources, and
:meth:`Execution.note` the line a run's log keeps (``executor dask (project setting), jobs 2 (command line)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tomoprep.errors import TomoprepError

Source = Literal["command line", "project setting", "default"]


class OptionError(TomoprepError):
    """An execution option or setting that is unknown or has a value its rules do not allow."""


@dataclass(frozen=True)
class Option:
    """One execution option: its default, what it allows (in words, for errors and help), its help text, and the
    function that turns a given value (text, or a number from a settings file) into the option's value."""

    default: Any
    allowed: str
    help: str
    parse: Callable[[Any], Any]


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in choices:
            raise ValueError
        return str(value)

    return parse


def _whole(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", str(value).strip()):
            raise ValueError
        number = int(str(value))
        if number < minimum:
            raise ValueError
        return number

    return parse


def _text(pattern: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise ValueError
        return value

    return parse


#: The options by their Python names (``min_jobs``; typed ``--min-jobs`` and ``min-jobs`` as settings).
OPTIONS: dict[str, Option] = {
    "executor": Option("local", "local or dask", "local: this machine (--jobs processes); dask: a Dask cluster.",
                       _choice("local", "dask")),
    "jobs": Option(1, "a whole number ≥ 1", "Tilt series processed in parallel (local processes, or the workers of "
                   "a local Dask cluster).", _whole(1)),
    "scheduler": Option(None, "an address with its port, such as tcp://head-node:8786", "Dask: address of a running "
                        "scheduler instead of starting a cluster.", _text(r"([a-z]+://)?[^\s/:]+:\d+")),
    "cluster": Option("local", "local or slurm", "Dask without --scheduler: local worker processes (--jobs of them) "
                      "or SLURM jobs (dask-jobqueue).", _choice("local", "slurm")),
    "cores": Option(8, "a whole number ≥ 1", "SLURM: cores per job.", _whole(1)),
    "memory": Option("32GB", "an amount such as 32GB, 500MB or 64GiB", "SLURM: memory per job.",
                     _text(r"\d+(\.\d+)?\s*[kKMGTP]i?B")),
    "gpus": Option(0, "a whole number ≥ 0", "SLURM: GPUs per job (--gres=gpu:N).", _whole(0)),
    "queue": Option(None, "a partition's name (no spaces)", "SLURM: partition.", _text(r"\S+")),
    "walltime": Option("04:00:00", "a SLURM time such as 04:00:00, 90 or 1-12:00:00", "SLURM: time limit per job.",
                       _text(r"(\d+-)?\d+(:\d\d){0,2}")),
    "min_jobs": Option(0, "a whole number ≥ 0", "SLURM: fewest jobs kept while the run lasts.", _whole(0)),
    "max_jobs": Option(4, "a whole number ≥ 1", "SLURM: most jobs at once.", _whole(1)),
    "max_worker_losses": Option(1, "a whole number ≥ 0", "Dask: times a unit is run again on another worker when its "
                                "worker is lost.", _whole(0)),
}  # fmt: skip

#: The options that matter for each kind of executor (the others are not used, and not noted in a run's log).
USED = {
    "local": ("executor", "jobs"),
    "dask scheduler": ("executor", "scheduler", "max_worker_losses"),
    "dask local": ("executor", "cluster", "jobs", "max_worker_losses"),
    "dask slurm": ("executor", "cluster", "cores", "memory", "gpus", "queue", "walltime", "min_jobs", "max_jobs",
                   "max_worker_losses"),
}  # fmt: skip


def setting_name(name: str) -> str:
    """An option's name as a setting and on the command line (``min-jobs``)."""
    return name.replace("_", "-")


def option_name(key: str) -> str:
    """The option a setting's key names (``min-jobs`` or ``min_jobs`` -> ``min_jobs``); an unknown key is refused
    with the keys there are."""
    name = key.strip().lower().replace("-", "_")
    if name not in OPTIONS:
        known = ", ".join(setting_name(n) for n in OPTIONS)
        raise OptionError(f"{key!r} is not a setting tomoprep has. Fix: use one of: {known}.")
    return name


def check_option(name: str, value: Any, *, where: str = "") -> Any:
    """``value`` as the option ``name`` takes it; a value its rules do not allow raises :class:`OptionError`
    naming the option (as typed: ``--cores`` on the command line, ``cores`` as a setting, see ``where``)."""
    option = OPTIONS[name]
    try:
        return option.parse(value)
    except ValueError:
        shown = f"--{setting_name(name)}" if where == "command line" else setting_name(name)
        place = f" ({where})" if where and where != "command line" else ""
        raise OptionError(f"{shown}{place}: {value!r} is not allowed; it takes {option.allowed}.") from None


@dataclass(frozen=True)
class Execution:
    """Every execution option's value, and where each came from."""

    values: dict[str, Any]
    sources: dict[str, Source]

    @property
    def kind(self) -> str:
        """Which kind of executor: a key of :data:`USED`."""
        if self.values["executor"] == "local":
            return "local"
        return "dask scheduler" if self.values["scheduler"] else f"dask {self.values['cluster']}"

    def note(self) -> str:
        """The options that matter for this executor with their sources, as a run's log keeps them."""
        shown = (f"{setting_name(n)} {self.values[n]} ({self.sources[n]})" for n in USED[self.kind])
        return "units run with: " + ", ".join(shown)


def resolve_execution(given: Mapping[str, Any], settings: Mapping[str, Any], *, settings_file: str = "") -> Execution:
    """Each option from the command line (``given``; ``None`` where not given), else the project's ``settings``
    (keys as stored, ``min-jobs``), else its default; each value checked by the option's rules. A setting of an
    unknown key is refused naming ``settings_file``."""
    stored = {}
    for key, value in settings.items():
        try:
            stored[option_name(key)] = value
        except OptionError as exc:
            raise OptionError(f"{settings_file or 'the project settings'}: {exc}") from None
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for name, option in OPTIONS.items():
        if given.get(name) is not None:
            values[name], sources[name] = check_option(name, given[name], where="command line"), "command line"
        elif name in stored:
            where = f"project setting in {settings_file}" if settings_file else "project setting"
            values[name], sources[name] = check_option(name, stored[name], where=where), "project setting"
        else:
            values[name], sources[name] = option.default, "default"
    execution = Execution(values, sources)
    if execution.kind == "dask slurm" and values["min_jobs"] > values["max_jobs"]:
        raise OptionError(f"min-jobs {values['min_jobs']} ({sources['min_jobs']}) is more than max-jobs "
                          f"{values['max_jobs']} ({sources['max_jobs']}). Fix: a min-jobs ≤ max-jobs.")  # fmt: skip
    return execution
