"""Plain records of runs and units, and their JSON form on disk (``run.json``)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Status = Literal["RUNNING", "SUCCEEDED", "FAILED"]
MARKERS: tuple[Status, ...] = ("SUCCEEDED", "FAILED")
#: How the error of a run whose input run folder is gone begins (written by the index rebuild).
MISSING_INPUT = "missing input run"


def now() -> str:
    """The current time as an ISO 8601 string in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class UnitRecord:
    """State of one unit of work (usually one tilt series) within a run."""

    name: str
    status: Status
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """Everything recorded about one run; ``directory`` is relative to the project root."""

    id: int
    step: str
    directory: str
    status: Status
    params: dict[str, Any]
    inputs: tuple[int, ...]
    package_version: str
    host: str
    started_at: str
    finished_at: str | None = None
    error: str | None = None
    units: dict[str, UnitRecord] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """How long the run took, seconds; ``None`` while it has not finished."""
        if self.finished_at is None:
            return None
        return (datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)).total_seconds()

    @property
    def label(self) -> str:
        """The run's folder name, e.g. ``003_align``."""
        return Path(self.directory).name

    @property
    def failed_units(self) -> list[str]:
        """Names of the units that failed."""
        return [u.name for u in self.units.values() if u.status == "FAILED"]

    @property
    def shown_status(self) -> str:
        """The status as shown to users: a SUCCEEDED run with failed units shows as ``PARTIAL``.

        Such a run stays SUCCEEDED in the records, so that the next step takes its successful units.
        """
        return "PARTIAL" if self.status == "SUCCEEDED" and self.failed_units else self.status

    def to_json(self) -> str:
        """The record as pretty JSON."""
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return json.dumps(data, indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse a record written by :meth:`to_json`."""
        data = json.loads(text)
        data["inputs"] = tuple(data["inputs"])
        data["units"] = {k: UnitRecord(**v) for k, v in data.get("units", {}).items()}
        return cls(**data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def duration_text(seconds: float | None, *, unfinished: str = "not finished") -> str:
    """A run's duration as people read it: ``12.3 s`` under two minutes, else ``4.5 min``."""
    if seconds is None:
        return unfinished
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
