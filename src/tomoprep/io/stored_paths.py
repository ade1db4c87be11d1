"""Paths as a project stores them: relative to the project folder where they lie in it, so a project still works
when its folder is moved or copied.

A file of a project that names another file of the same project (a run's tilt-series STAR naming its
micrographs, tomograms, local-alignment or axis-score files) writes its path relative to the project folder, as
RELION writes its paths relative to its project directory; a path outside the project (the raw movies, the gain,
the mdoc files) is written absolute, since moving the project does not move it. A reader joins a relative path to
the project folder and takes an absolute one as it is, which is how projects written before this rule read.

The model (:mod:`tomoprep.model`) holds absolute paths; the translation happens here, at the edge, for every
:class:`~pathlib.Path` anywhere in a record (frozen dataclasses, and tuples of them), so a path field added to the
model later is stored the same way without being listed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Record = TypeVar("Record")


def stored_path(path: Path, root: Path) -> Path:
    """``path`` as a project in ``root`` stores it: relative to ``root`` where it lies in it, else unchanged.

    ``root`` is the project folder as its index opened it (resolved); the comparison is on the text of the paths,
    so a path reaching into the project through a link stays absolute (it still resolves).
    """
    if path.is_absolute() and path.is_relative_to(root):
        return path.relative_to(root)
    return path


def project_path(path: Path, root: Path) -> Path:
    """A stored ``path`` read back: joined to the project folder ``root`` when relative, else unchanged."""
    return path if path.is_absolute() else root / path


def map_paths(record: Record, convert: Callable[[Path], Path]) -> Record:
    """A copy of ``record`` with ``convert`` applied to every :class:`~pathlib.Path` in it: in the fields of
    dataclasses, in tuples, and in the records these hold, at any depth. Other values are kept as they are."""
    value: Any = record
    if isinstance(value, Path):
        return convert(value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(map_paths(item, convert) for item in value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            if not field.init:
                continue
            old = getattr(value, field.name)
            new = map_paths(old, convert)
            if new is not old:
                changes[field.name] = new
        return dataclasses.replace(value, **changes) if changes else record  # type: ignore[return-value]
    return record


def stored_record(record: Record, root: Path) -> Record:
    """``record`` with every path in the project ``root`` made relative to it (:func:`stored_path`)."""
    return map_paths(record, lambda path: stored_path(path, root))


def project_record(record: Record, root: Path) -> Record:
    """``record`` read from a project in ``root``: every relative path joined to ``root`` (:func:`project_path`)."""
    return map_paths(record, lambda path: project_path(path, root))
