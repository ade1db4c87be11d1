"""The plots' data as JSON (``/api/runs/RUN/series/NAME/plots`` and a tilt's CTF spectrum) and the scripts that
draw them (``/static/*.js``, files of this package: no build step, nothing from a network)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, HTTPException, Response

from tomoprep.project import Project, RunRecord
from tomoprep.web.context import ProjectContext
from tomoprep.web.plot_data import alignment_data, ctf_data, ctf_spectrum, motion_data

#: The scripts served under ``/static/``: the SVG chart, the plots of a run's series, live updates.
SCRIPTS = ("chart.js", "plots.js", "live.js")


def _alignment_notes(opened: Project, record: RunRecord, name: str) -> list[str]:
    """The log messages about series ``name`` of the alignment that ``record`` holds: its own if it is an
    alignment, else those of the nearest alignment among its inputs (first inputs first); none without one."""
    seen: set[int] = set()
    while record.step != "align" and record.inputs and record.inputs[0] not in seen:
        seen.add(record.inputs[0])
        record = opened.get_run(record.inputs[0])
    if record.step != "align":
        return []
    return [message for _, _, unit, message in opened.events(record.id) if unit == name]


def add_plot_routes(app: FastAPI, context: ProjectContext) -> None:
    """``GET /api/runs/RUN/series/NAME/plots``, ``GET /api/runs/RUN/series/NAME/ctf/N`` and the scripts."""

    @app.get("/api/runs/{ref}/series/{name}/plots")
    def api_plots(ref: str, name: str) -> dict[str, Any]:
        with context.project() as opened:
            view, ts, _ = context.run_series(opened, ref, name)
            notes = _alignment_notes(opened, view.record, name)
        return {"run": view.record.label, "step": view.record.step, "name": ts.name, "motion": motion_data(ts),
                "alignment": alignment_data(ts, notes), "ctf": ctf_data(ts)}  # fmt: skip

    @app.get("/api/runs/{ref}/series/{name}/ctf/{acquisition_index}")
    def api_spectrum(ref: str, name: str, acquisition_index: int) -> dict[str, Any]:
        with context.project() as opened:
            ts = context.run_series(opened, ref, name)[1]
        found = ctf_spectrum(ts, acquisition_index)
        if found is None:
            raise HTTPException(status_code=404, detail=f"tilt {acquisition_index} of {name} has no power spectrum "
                                "in this run (no such tilt, no CTF, or estimates read from a file)")  # fmt: skip
        return found

    @app.get("/static/{script}")
    def script(script: str) -> Response:
        if script not in SCRIPTS:
            raise HTTPException(status_code=404, detail=f"no {script}")
        text = (files("tomoprep.web") / "static" / script).read_text(encoding="utf-8")
        return Response(text, media_type="text/javascript")
