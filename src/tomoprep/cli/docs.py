"""Reference pages of the steps, generated from their Params models (``python -m tomoprep.cli.docs DIR``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic_core import PydanticUndefined

from tomoprep.cli.params import cli_extra, option_name, unwrap_optional
from tomoprep.steps import Step, builtin_steps
from tomoprep.steps.kinds import describe, made_stale_by


def _type_text(annotation: Any) -> str:
    inner, optional = unwrap_optional(annotation)
    if get_origin(inner) is Literal:
        text = " \\| ".join(f"`{v}`" for v in get_args(inner))
    elif get_origin(inner) is list:
        text = f"{get_args(inner)[0].__name__}, repeatable"
    else:
        text = getattr(inner, "__name__", str(inner))
    return f"{text} (optional)" if optional else text


def _by_options(narrowed: object) -> str:
    return " (which of them depends on its options)" if narrowed is not None else ""


def step_reference(step: Step) -> str:
    """Markdown: the step's title and a table of its options with type, default and description."""
    lines = [f"# `tomoprep {step.name}`", "", step.title, ""]
    if step.needs:
        stale = made_stale_by(step.makes)
        avoid = f" and no {describe(stale)} (which it would make stale)" if stale else ""
        lines += [
            f"Needs {describe(step.needs)}{_by_options(step.needs_for)}; makes {describe(step.makes)}"
            f"{_by_options(step.makes_for)}. Takes the newest successful run that holds "
            f"every kind it needs{avoid}, or `--input RUN`.",
            "",
        ]
    else:
        lines += [f"Starts from files; makes {describe(step.makes)}{_by_options(step.makes_for)}.", ""]
    lines += ["| option | type | default | description |", "|---|---|---|---|"]
    for name, field in step.params.model_fields.items():
        default = "required" if field.default is PydanticUndefined else f"`{field.default}`"
        description = (field.description or "").replace("|", "\\|")
        extra = cli_extra(field)
        shown = f"{name.upper()} (argument)" if extra.get("argument") else " / ".join(
            [option_name(name), *extra.get("flags", [])])  # fmt: skip
        if extra.get("argument"):
            default = "required" if default == "required" else f"required on the command line ({default} otherwise)"
        lines.append(f"| `{shown}` | {_type_text(field.annotation)} | {default} | {description} |")
    lines += [
        "",
        "Common options: `--project/-p DIR` (default `.`), `--jobs/-j N` (tilt series in parallel).",
        "",
    ]
    return "\n".join(lines)


def write_references(folder: Path) -> list[Path]:
    """Write one ``<step>.md`` per built-in step into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for step in builtin_steps():
        path = folder / f"{step.name}.md"
        path.write_text(step_reference(step), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_references(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")):
        print(written)
