"""A form per step, made from its Params model (the model the command line is made from): one field per
parameter with its type, limits, choices and description; every invalid field is shown at once, as the server's
validation of the same model finds them."""

from __future__ import annotations

import json
from html import escape
from typing import Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from tomoprep.cli.params import option_name, unwrap_optional
from tomoprep.project import Project
from tomoprep.steps.base import Step
from tomoprep.web.pages import layout

FORM_SCRIPT = """<script>
(function () {
  const form = document.getElementById("launch");
  function value(input) {
    const kind = input.dataset.kind;
    if (kind === "bool") return input.checked;
    if (input.value.trim() === "") return undefined;
    if (kind === "choice") return JSON.parse(input.value);
    if (kind === "number") { const n = Number(input.value); return Number.isNaN(n) ? input.value : n; }
    if (kind === "list") {
      return input.value.split(/[ ,]+/).filter(Boolean).map(v => Number.isNaN(Number(v)) ? v : Number(v));
    }
    return input.value;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    document.querySelectorAll(".error").forEach(e => e.textContent = "");
    const params = {};
    form.querySelectorAll("[data-field]").forEach(input => {
      const v = value(input); if (v !== undefined) params[input.dataset.field] = v;
    });
    const inputRun = form.querySelector("#input_run");
    const body = {params: params, input_run: inputRun && inputRun.value ? inputRun.value : null};
    document.getElementById("status").textContent = "starting...";
    const answer = await fetch(form.dataset.action, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const result = await answer.json();
    if (answer.ok) { location.href = "/runs/" + encodeURIComponent(result.run); return; }
    const errors = result.detail && result.detail.errors ? result.detail.errors : null;
    if (errors) {
      errors.forEach(e => { const slot = document.getElementById("error-" + e.field.split(".")[0]);
                            if (slot) slot.textContent = e.message; });
      document.getElementById("status").textContent = errors.length + " invalid field(s)";
    } else { document.getElementById("status").textContent = result.detail || "could not start"; }
  });
})();
</script>"""

FORM_STYLE = """<style>
.field { margin: .7em 0; } .field label { font-weight: 600; font-family: monospace; }
.field .help { color: #555; font-size: .9em; max-width: 60em; } .error { color: #b00020; font-weight: 600; }
input[type=text], input[type=number], select { min-width: 16em; }
</style>"""


def _limits(field: FieldInfo) -> str:
    attributes = []
    for item in field.metadata:
        for name, html_name in (("ge", "min"), ("gt", "min"), ("le", "max"), ("lt", "max")):
            if getattr(item, name, None) is not None:
                attributes.append(f'{html_name}="{getattr(item, name)}"')
    return " ".join(attributes)


def _input(name: str, field: FieldInfo) -> str:
    annotation, optional = unwrap_optional(field.annotation)
    default = None if field.is_required() else field.default
    common = f'id="{name}" name="{name}" data-field="{name}"'
    if annotation is bool:
        return f'<input type="checkbox" {common} data-kind="bool"{" checked" if default else ""}>'
    if get_origin(annotation) is Literal:
        options = ([""] if optional else []) + [json.dumps(choice) for choice in get_args(annotation)]
        shown = "".join(f'<option value="{escape(o)}"{" selected" if o == json.dumps(default) else ""}>'
                        f"{escape(o.strip(chr(34)) or '(not set)')}</option>" for o in options)  # fmt: skip
        return f'<select {common} data-kind="choice">{shown}</select>'
    if annotation in (int, float):
        step = "1" if annotation is int else "any"
        value = "" if default is None else str(default)
        return f'<input type="number" step="{step}" {_limits(field)} {common} data-kind="number" value="{value}">'
    if get_origin(annotation) in (list, tuple):
        value = "" if not default else ", ".join(str(v) for v in default)
        hint = 'placeholder="values, comma-separated"'
        return f'<input type="text" {common} data-kind="list" value="{escape(value)}" {hint}>'
    value = "" if default is None else str(default)
    return f'<input type="text" {common} data-kind="text" value="{escape(value)}">'


def launch_page(project: Project, step: Step, input_runs: list[str], default_input: str | None) -> str:
    """The form of ``step``: its input run (for a step that takes one) and every parameter."""
    fields = []
    for name, field in step.params.model_fields.items():
        required = " (required)" if field.is_required() else ""
        fields.append(
            f'<div class="field"><label for="{name}">{escape(option_name(name))}</label>{required} '
            f'{_input(name, field)} <span class="error" id="error-{name}" role="alert"></span>'
            f'<div class="help">{escape(field.description or "")}</div></div>'
        )
    choice = ""
    if step.needs:
        options = "".join(f'<option value="{escape(label)}"{" selected" if label == default_input else ""}>'
                          f"{escape(label)}</option>" for label in input_runs)  # fmt: skip
        choice = (f'<div class="field"><label for="input_run">input run</label> <select id="input_run">{options}'
                  '</select><div class="help">The run this step reads (default: the newest that holds what it '
                  "needs).</div></div>")  # fmt: skip
    body = (
        f"{FORM_STYLE}<p>{escape(step.title)}</p>"
        f'<form id="launch" novalidate data-action="/api/steps/{escape(step.name)}/runs">{choice}{"".join(fields)}'
        '<p><button type="submit">Run</button> <span id="status" role="status"></span></p></form>'
        f"{FORM_SCRIPT}"
    )
    return layout(f"Run {step.name}", body, project=project)


def step_links(steps: list[Step]) -> str:
    """Links to every step's form."""
    return " · ".join(f'<a href="/launch/{escape(s.name)}">{escape(s.name)}</a>' for s in steps)
