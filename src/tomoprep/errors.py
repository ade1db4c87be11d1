"""Typed exceptions: each names the file, the offending value and the fix."""

from __future__ import annotations

import errno
import sqlite3
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


class RunStoppedError(ProjectError):
    """A run stopped on a fault of its surroundings (a full disk, a folder made read-only); the message says
    what, where, and how to resume the run once it is mended."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the device is full: ``OSError`` ENOSPC (or EDQUOT, a full quota), or SQLite's
    "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def disk_full_message(exc: BaseException, where: Path | str, run_id: int | None) -> str:
    """One line for a full device: the path it failed to write, and the fix."""
    path = getattr(exc, "filename", None) or where
    resume = f"run `tomoprep run --resume {run_id}`" if run_id is not None else "run the command again"
    return f"{path}: no space left on the device: free space and {resume}."
