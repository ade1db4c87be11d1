"""Command-line options derived from a step's Params model: no step writes its own CLI code."""

from __future__ import annotations

import inspect
import types
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def option_name(field_name: str) -> str:
    """``pixel_spacing_angstrom`` -> ``--pixel-spacing-angstrom``."""
    return "--" + field_name.replace("_", "-")


def cli_extra(field: FieldInfo) -> dict[str, Any]:
    """What a field asks of the command line beyond its option (``json_schema_extra``): ``{"argument": True}`` makes
    it a positional argument, required on the command line (``tomoprep export relion5 OUT``), and ``{"flags":
    ["--copy"]}`` adds other names for its option."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _repeated_metavar(annotation: Any) -> str | None:
    """``list[int]`` -> ``<int>`` (the option is repeated, one value each time); None (typer's own) otherwise."""
    if get_origin(annotation) is list and get_args(annotation):
        return f"<{getattr(get_args(annotation)[0], '__name__', 'value')}>"
    return None


def option_parameters(model: type[BaseModel], *, panel: str = "Step parameters") -> list[inspect.Parameter]:
    """One keyword-only parameter per field of ``model``, annotated as a typer option (or argument, see
    :func:`cli_extra`).

    Type, choices (``Literal``), limits are checked again by the model; default and help come from the field.
    """
    parameters = []
    arguments = [name for name, field in model.model_fields.items() if cli_extra(field).get("argument")]
    for name in [*arguments, *(n for n in model.model_fields if n not in arguments)]:
        field = model.model_fields[name]
        annotation, optional = unwrap_optional(field.annotation)
        option_type = annotation | None if optional else annotation
        if name in arguments:
            argument = typer.Argument(help=field.description or "", metavar=name.upper(), show_default=False)
            parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                                annotation=Annotated[option_type, argument]))  # fmt: skip
            continue
        flags = [option_name(name), *cli_extra(field).get("flags", [])]
        if annotation is bool:
            flags = [f"{option_name(name)}/--no-{option_name(name)[2:]}", *cli_extra(field).get("flags", [])]
        option = typer.Option(
            *flags, help=field.description or "", rich_help_panel=panel, show_default=not field.is_required(),
            metavar=_repeated_metavar(annotation),
        )
        default = inspect.Parameter.empty if field.is_required() else field.default
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[option_type, option],
            )
        )
    return parameters
