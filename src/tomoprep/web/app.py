"""The web application of a project: ``create_app(project_root, token=...)`` (no global state).

Every request opens the project's index read-only for its own duration, so pages and the API see what the
command line and other browsers write while they do, and never hold the index. The routes come in groups: pages
(:func:`_add_pages`), the tilt gallery and the tomogram viewer (:func:`_add_images`), running steps
(:func:`_add_launching`), the JSON API (:func:`_add_api`), the plots' data and scripts
(:mod:`.plot_routes`) and the live updates (:mod:`.live`).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel

from tomoprep.errors import TomoprepError
from tomoprep.execution import run_step
from tomoprep.model import TiltSeries
from tomoprep.project import Project, open_project
from tomoprep.report.summary import RunView, SeriesView
from tomoprep.steps import all_steps, get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set
from tomoprep.web import pages
from tomoprep.web.context import ProjectContext
from tomoprep.web.forms import launch_page, step_links
from tomoprep.web.gallery import cleaning_params, gallery_page, tilt_thumbnail
from tomoprep.web.launch import LaunchError, field_errors
from tomoprep.web.live import add_event_routes
from tomoprep.web.plot_data import plot_kinds
from tomoprep.web.plot_routes import add_plot_routes
from tomoprep.web.security import COOKIE, inside_project, token_matches
from tomoprep.web.tomograms import slice_png, viewer_page


class LaunchRequest(BaseModel):
    """A step's parameters as a form gives them, and the input run chosen (None: the default)."""

    params: dict[str, Any] = {}
    input_run: str | None = None


class ExclusionChanges(BaseModel):
    """A gallery's changes to one series: acquisition indices newly excluded and newly included."""

    exclude: list[int] = []
    include: list[int] = []


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    bearer = header[7:] if header.lower().startswith("bearer ") else None
    return token_matches(request.cookies.get(COOKIE), token) or token_matches(bearer, token)


def _refusal(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
    return HTMLResponse("<!DOCTYPE html><title>tomoprep</title><p>Open the address with the token that "
                        "<code>tomoprep serve</code> printed.</p>", status_code=401)  # fmt: skip


def create_app(project_root: Path, *, token: str) -> FastAPI:
    """The app serving the project at ``project_root`` to requests that carry ``token`` (an empty token: to every
    request; :func:`tomoprep.web.serve.serve` allows that on a loopback address only)."""
    context = ProjectContext(Path(project_root).resolve())
    app = FastAPI(title="tomoprep", docs_url=None, redoc_url=None)  # their pages load assets from a CDN
    app.state.stopping = threading.Event()  # set by the server as it stops: the event streams end (live.py)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not token:  # served on this machine only, without a token, as asked (see serve.py)
            return await call_next(request)
        if token_matches(request.query_params.get("token"), token):
            answer = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
            answer.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return answer
        if not _authorised(request, token):
            return _refusal(request)
        return await call_next(request)

    _add_pages(app, context)
    _add_images(app, context)
    _add_launching(app, context)
    _add_api(app, context)
    add_plot_routes(app, context)
    add_event_routes(app, context)
    return app


def _add_pages(app: FastAPI, context: ProjectContext) -> None:
    """The project, a run, a tilt series, the project's files and the stylesheet."""

    @app.get("/", response_class=HTMLResponse)
    def project_page() -> str:
        with context.project() as opened:
            runs, series = context.views(opened)
            from tomoprep.live.watch import read_state

            watch = pages.watch_section(read_state(context.root))
            return pages.project_page(opened, runs, series, steps=step_links(list(all_steps())), watch=watch)

    @app.get("/runs/{ref}", response_class=HTMLResponse)
    def run_page(ref: str) -> str:
        with context.project() as opened:
            view = context.find_run(opened, ref)
            run_id = view.record.id
            actions = pages.run_actions(view.record, stoppable=context.launcher.running_here(view.record.label))
            return pages.run_page(opened, view, opened.events(run_id), opened.artifacts(run_id), actions=actions,
                                  tomograms=context.tomogram_binnings(opened, view.record))  # fmt: skip

    @app.get("/series/{name}", response_class=HTMLResponse)
    def series_page(name: str) -> str:
        with context.project() as opened:
            for view in context.views(opened)[1]:
                if view.name == name:
                    return pages.series_page(opened, view, plots=_series_plot_kinds(context, opened, view))
        raise HTTPException(status_code=404, detail=f"no tilt series {name!r} in this project")

    @app.get("/files/{relative:path}")
    def project_file(relative: str) -> FileResponse:
        path = inside_project(context.root, relative)
        if path is None:
            raise HTTPException(status_code=404, detail="no such file in this project")
        return FileResponse(path)

    @app.get("/static/style.css")
    def style() -> Response:
        return Response(pages.STYLE, media_type="text/css")


def _add_images(app: FastAPI, context: ProjectContext) -> None:
    """The tilt gallery (and saving its exclusions as a new cleaning) and the tomogram viewer."""

    @app.get("/runs/{ref}/gallery/{name}", response_class=HTMLResponse)
    def gallery(ref: str, name: str) -> str:
        with context.project() as opened:
            view, ts, names = context.run_series(opened, ref, name)
            return gallery_page(opened, view.record.label, ts, names)

    @app.get("/runs/{ref}/series/{name}/tilts/{acquisition_index}.png")
    def thumbnail(ref: str, name: str, acquisition_index: int) -> Response:
        with context.project() as opened:
            png = tilt_thumbnail(context.run_series(opened, ref, name)[1], acquisition_index)
        if png is None:
            raise HTTPException(status_code=404, detail=f"tilt {acquisition_index} of {name} has no image")
        return Response(png, media_type="image/png")

    @app.post("/api/runs/{ref}/series/{name}/exclusions")
    def save_exclusions(ref: str, name: str, changes: ExclusionChanges) -> dict[str, Any]:
        with context.project() as opened:
            source = context.run_series(opened, ref, name)[0].record
        params = cleaning_params(name, changes.exclude, changes.include)
        try:
            with open_project(context.root) as writable:
                made = run_step(writable, get_step("clean"), params, input_run=source.id)
        except TomoprepError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {"run": made.label, "status": made.status, "params": params}

    @app.get("/runs/{ref}/series/{name}/tomograms/{binning}", response_class=HTMLResponse)
    def tomogram_viewer(ref: str, name: str, binning: str) -> str:
        with context.project() as opened:
            label, tomogram = context.tomogram_of(opened, ref, name, binning)
            return viewer_page(opened, label, name, tomogram)

    @app.get("/runs/{ref}/series/{name}/tomograms/{binning}/slice.png")
    def tomogram_slice(ref: str, name: str, binning: str, axis: str = "xy", index: int | None = None,
                       low: float = 1.0, high: float = 99.0) -> Response:  # fmt: skip
        with context.project() as opened:
            tomogram = context.tomogram_of(opened, ref, name, binning)[1]
        try:
            return Response(slice_png(tomogram.path, axis=axis, index=index, low=low, high=high),
                            media_type="image/png")  # fmt: skip
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc


def _add_launching(app: FastAPI, context: ProjectContext) -> None:
    """A form per step; starting, stopping and resuming runs in processes of their own."""

    @app.get("/launch/{step_name}", response_class=HTMLResponse)
    def launch_form(step_name: str) -> str:
        step = context.known_step(step_name)
        with context.project() as opened:
            return launch_page(opened, step, *context.input_choices(opened, step))

    @app.post("/api/steps/{step_name}/runs")
    def launch(step_name: str, request: LaunchRequest) -> dict[str, Any]:
        step = context.known_step(step_name)
        errors = field_errors(step, request.params)
        if errors:
            raise HTTPException(status_code=422, detail={"errors": errors})
        try:
            label = context.launcher.run(step, request.params, request.input_run)
        except LaunchError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {"run": label}

    @app.post("/api/runs/{ref}/stop")
    def stop(ref: str) -> dict[str, Any]:
        with context.project() as opened:
            record = context.find_run(opened, ref).record
        if record.status != "RUNNING" or not context.launcher.stop(record.label):
            raise HTTPException(status_code=409, detail=f"run {record.label} is not running from this server; "
                                "stop it where it runs (Ctrl-C in its terminal)")  # fmt: skip
        return {"run": record.label, "stopping": True}

    @app.post("/api/runs/{ref}/resume")
    def resume(ref: str) -> dict[str, Any]:
        with context.project() as opened:
            record = context.find_run(opened, ref).record
        if record.status == "RUNNING" or not context.launcher.finish(record.label, timeout_s=30.0):
            raise HTTPException(status_code=409, detail=f"run {record.label} is running")
        try:
            return {"run": context.launcher.resume(record.label)}
        except LaunchError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc


def _add_api(app: FastAPI, context: ProjectContext) -> None:
    """Runs, a run with its log and files, a run's tilt series with their tilts, and every series, as JSON."""

    @app.get("/api/runs")
    def api_runs() -> list[dict[str, Any]]:
        with context.project() as opened:
            return [_run_dict(v) for v in context.views(opened)[0]]

    @app.get("/api/runs/{ref}")
    def api_run(ref: str) -> dict[str, Any]:
        with context.project() as opened:
            view = context.find_run(opened, ref)
            events = [{"time": t, "level": level, "unit": u, "message": m}
                      for t, level, u, m in opened.events(view.record.id)]  # fmt: skip
            artifacts = [{"unit": u, "kind": k, "path": p} for u, k, p in opened.artifacts(view.record.id)]
            return {**_run_dict(view), "events": events, "artifacts": artifacts}

    @app.get("/api/runs/{ref}/tilt-series")
    def api_run_series(ref: str) -> list[dict[str, Any]]:
        with context.project() as opened:
            view = context.find_run(opened, ref)
            if view.record.status != "SUCCEEDED":
                raise HTTPException(status_code=409, detail=f"run {view.record.label} is {view.record.status}")
            return [_tilts(ts) for ts in load_tilt_series_set(opened.run_dir(view.record))]

    @app.get("/api/series")
    def api_series() -> list[dict[str, Any]]:
        with context.project() as opened:
            return [_series_dict(v) for v in context.views(opened)[1]]

    @app.get("/api/watch")
    def api_watch() -> dict[str, Any]:
        """What `tomoprep watch` last wrote of its series (docs/live.md)."""
        from tomoprep.live.watch import read_state

        return read_state(context.root)


def _series_plot_kinds(context: ProjectContext, opened: Project, view: SeriesView) -> tuple[str, ...]:
    """The plots a series' page draws: those its run holds records for; none where that run cannot be read."""
    try:
        return plot_kinds(context.run_series(opened, view.run_label, view.name)[1])
    except (HTTPException, TomoprepError, OSError):
        return ()


def _run_dict(view: RunView) -> dict[str, Any]:
    run = view.record
    return {
        "id": run.id, "label": run.label, "step": run.step, "status": run.status, "shown_status": run.shown_status,
        "inputs": list(view.input_labels), "params": run.params, "started_at": run.started_at,
        "finished_at": run.finished_at, "seconds": view.seconds, "package_version": run.package_version,
        "host": run.host, "error": run.error,
        "units": {u.name: {"status": u.status, "error": u.error} for u in run.units.values()},
    }  # fmt: skip


def _series_dict(view: SeriesView) -> dict[str, Any]:
    data = asdict(view)
    data["decisions"] = [{"run": label, **asdict(note)} for label, note in view.decisions]
    return data


def _tilts(ts: TiltSeries) -> dict[str, Any]:
    return {
        "name": ts.name,
        "tilts": [
            {
                "acquisition_index": t.acquisition.acquisition_index,
                "nominal_tilt_deg": t.acquisition.nominal_tilt_angle_deg,
                "excluded": t.excluded,
                "reason": t.exclusion.reason if t.exclusion else "",
                "alignment": None if t.alignment is None else asdict(t.alignment),
                "ctf": None if t.ctf is None else {k: v for k, v in asdict(t.ctf).items() if "path" not in k},
            }
            for t in ts.tilts
        ],
    }
