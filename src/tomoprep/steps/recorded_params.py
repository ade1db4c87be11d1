"""A run's parameters as its record keeps them: a path in the project relative to the project folder.

A parameter that names a file or folder (a :class:`~pathlib.Path` field, such as the export's ``out``) is made
absolute and, where it lies in the project, recorded relative to the project folder, as the tilt-series STAR
files store their paths (:mod:`tomoprep.io.stored_paths`). Reading a record joins a relative path to the project
folder, so resuming a run of a moved or copied project writes where the run wrote, in the project's new place;
an absolute path (outside the project, or recorded by an earlier version) reads as it is.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from tomoprep.io.stored_paths import project_path, stored_path
from tomoprep.steps.base import Params


def _names_a_path(annotation: Any) -> bool:
    """Whether a field of this type holds a path (``Path`` or ``Path | None``)."""
    if annotation is Path:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_names_a_path(arg) for arg in get_args(annotation))
    return False


def path_fields(params_type: type[Params]) -> list[str]:
    """The names of the fields of ``params_type`` that hold a path."""
    return [name for name, field in params_type.model_fields.items() if _names_a_path(field.annotation)]


def absolute_paths(params: Params) -> Params:
    """``params`` with every path made absolute (a relative one taken from the working folder, as the step itself
    would take it), so that the run and its record name the same files."""
    changes = {}
    for name in path_fields(type(params)):
        value = getattr(params, name)
        if value is not None:
            changes[name] = Path(value).expanduser().resolve()
    return params.model_copy(update=changes) if changes else params


def recorded_params(params: Params, root: Path) -> dict[str, Any]:
    """``params`` as the record of a run of the project in ``root`` keeps them (JSON values): every path absolute
    (a relative one is taken from the working folder, as the step itself would) and, where it lies in the project,
    relative to its folder."""
    absolute = absolute_paths(params)
    recorded = absolute.model_dump(mode="json")
    for name in path_fields(type(params)):
        value = getattr(absolute, name)
        if value is not None:
            recorded[name] = stored_path(value, root).as_posix()
    return recorded


def params_from_record(params_type: type[Params], recorded: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The parameter values of a run's record (of a step whose parameters are ``params_type``, in the project in
    ``root``), with every relative path joined to the project folder: the values to validate and run with."""
    values = dict(recorded)
    for name in path_fields(params_type):
        if values.get(name) is not None:
            values[name] = str(project_path(Path(str(values[name])), root))
    return values
