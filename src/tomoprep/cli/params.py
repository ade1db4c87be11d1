"""Command-line options derived from a step's Params model: no step writes its own CLI code."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def option_name(field_name: str) -> str:
    """``pixel_spacing_angstrom`` -> ``--pixel-spacing-angstrom``."""
    return "--" + field_name.replace("_", "-")


def _click_type(annotation: Any) -> Any:
    if get_origin(annotation) is Literal:
        return click.Choice([str(v) for v in get_args(annotation)])
    if annotation is Path:
        return click.Path(path_type=Path)
    return {float: click.FLOAT, int: click.INT, str: click.STRING}.get(annotation, click.STRING)


def _help(field: FieldInfo, annotation: Any) -> str:
    text = field.description or ""
    if get_origin(annotation) is Literal:
        text += f" One of: {', '.join(str(v) for v in get_args(annotation))}."
    return text


def options_for(model: type[BaseModel]) -> list[click.Option]:
    """One click option per field of ``model``, with type, choices, default and help from the field."""
    options = []
    for name, field in model.model_fields.items():
        annotation, _ = _unwrap_optional(field.annotation)
        required = field.is_required()
        default = None if required else field.default
        if annotation is bool:
            options.append(click.Option([f"{option_name(name)}/--no-{name.replace('_', '-')}"], default=default,
                                        show_default=True, help=_help(field, annotation)))
            continue
        options.append(click.Option(
            [option_name(name), name], type=_click_type(annotation), required=required,
            default=None if default is None else str(default) if get_origin(annotation) is Literal else default,
            show_default=default is not None, help=_help(field, annotation),
        ))
    return options


def values_from_cli(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """Turn parsed option values back into field values (choices of numbers back to numbers)."""
    out = {}
    for name, field in model.model_fields.items():
        if name not in values:
            continue
        value = values[name]
        annotation, _ = _unwrap_optional(field.annotation)
        if value is not None and get_origin(annotation) is Literal:
            value = next(v for v in get_args(annotation) if str(v) == str(value))
        out[name] = value
    return out
