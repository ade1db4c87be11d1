"""The last resort of the command line: an error tomoprep did not foresee is shown as one message, its
traceback written to a log file for the report, never to the terminal."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from tomoprep import __version__

#: Where crash logs go: ``$TOMOPREP_LOG_DIR``, else ``$XDG_CACHE_HOME/tomoprep`` (``~/.cache/tomoprep``).
LOG_DIR_ENV = "TOMOPREP_LOG_DIR"


def crash_log_dir() -> Path:
    """The folder crash logs are written to (see :data:`LOG_DIR_ENV`)."""
    if chosen := os.environ.get(LOG_DIR_ENV):
        return Path(chosen)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tomoprep"


def write_crash_log(exc: BaseException) -> Path | None:
    """Write the command line, versions and traceback of ``exc`` to a new log file; returns its path.

    Falls back to the system's temporary folder when the usual one cannot be written; ``None`` when neither can.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    text = (
        f"tomoprep {__version__}, Python {sys.version.split()[0]}, {sys.platform}\n"
        f"command: {' '.join(sys.argv)}\ncwd: {os.getcwd()}\ntime (UTC): {stamp}\n\n"
        + "".join(traceback.format_exception(exc))
    )
    name = f"crash-{stamp}-{os.getpid()}.log"
    for folder in (crash_log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
            return folder / name
        except OSError:
            continue
    return None


def crash_message(exc: BaseException, log: Path | None) -> str:
    """What the user sees of an unforeseen error: what it was, where the details are, how to report it."""
    where = (
        f"are in {log}"
        if log is not None
        else f"could not be written (neither {crash_log_dir()} nor the temporary folder is writable)"
    )
    return (
        f"tomoprep stopped on an unexpected error: {type(exc).__name__}: {exc}\n"
        f"The details (traceback, versions, command line) {where}.\n"
        "This is a bug in tomoprep, or an input it should have refused clearly: please report it to the "
        "tomoprep developers with that file and the command you ran."
    )
