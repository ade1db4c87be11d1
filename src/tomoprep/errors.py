"""Typed exceptions: each names the file, the offending value and the fix."""

from __future__ import annotations

from pathlib import Path


class TomoprepError(Exception):
    """Base class of every error tomoprep raises on purpose."""


class InputError(TomoprepError):
    """A user-supplied file or value is wrong.

    Parameters
    ----------
    path
        The file the problem is in (``None`` for a command-line value).
    problem
        What is wrong, including the offending value.
    fix
        What the user can do about it.
    """

    def __init__(self, path: Path | str | None, problem: str, fix: str = "") -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path is not None else ""
        message = f"{where}{problem}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)


class MdocError(InputError):
    """An mdoc file is malformed or inconsistent."""


class ImageFileError(InputError):
    """An MRC, TIFF, EER or gain file cannot be read or is truncated."""


class ProjectError(TomoprepError):
    """The project directory or its index is missing, locked or inconsistent."""


class StepError(TomoprepError):
    """A step was configured or called wrongly (unknown step, no input run, ...)."""
