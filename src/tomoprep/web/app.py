"""The web application of a project: ``create_app(project_root, token=...)`` (no global state).

Every request opens the project's index read-only for its own duration, so pages and the API see what the
command line and other browsers write while they do, and never hold the index.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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
from tomoprep.report.summary import RunView, SeriesView, summarize_project
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set
from tomoprep.web import pages
from tomoprep.web.gallery import cleaning_params, gallery_page, tilt_thumbnail
from tomoprep.web.security import COOKIE, inside_project, token_matches


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


def create_app(project_root: Path, *, token: str) -> FastAPI:
    """The app serving the project at ``project_root`` to requests that carry ``token`` (an empty token: to every
    request; :func:`tomoprep.web.serve.serve` allows that on a loopback address only)."""
    root = Path(project_root).resolve()
    app = FastAPI(title="tomoprep", docs_url=None, redoc_url=None)  # their pages load assets from a CDN

    @contextmanager
    def project() -> Iterator[Project]:
        try:
            with open_project(root, read_only=True) as opened:
                yield opened
        except TomoprepError as exc:
            raise HTTPException(status_code=500, detail=str(exc)) from exc

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

    def views(opened: Project) -> tuple[list[RunView], list[SeriesView]]:
        summary = summarize_project(opened)
        return list(summary.runs), list(summary.series)

    def find_run(runs: list[RunView], ref: str) -> RunView:
        for view in runs:
            if ref in (view.record.label, str(view.record.id)):
                return view
        raise HTTPException(status_code=404, detail=f"no run {ref!r} in this project")

    @app.get("/", response_class=HTMLResponse)
    def project_page() -> str:
        with project() as opened:
            runs, series = views(opened)
            return pages.project_page(opened, runs, series)

    @app.get("/runs/{ref}", response_class=HTMLResponse)
    def run_page(ref: str) -> str:
        with project() as opened:
            view = find_run(views(opened)[0], ref)
            run_id = view.record.id
            return pages.run_page(opened, view, opened.events(run_id), opened.artifacts(run_id))

    @app.get("/series/{name}", response_class=HTMLResponse)
    def series_page(name: str) -> str:
        with project() as opened:
            for view in views(opened)[1]:
                if view.name == name:
                    return pages.series_page(opened, view)
        raise HTTPException(status_code=404, detail=f"no tilt series {name!r} in this project")

    def run_series(opened: Project, ref: str, name: str) -> tuple[RunView, TiltSeries, list[str]]:
        view = find_run(views(opened)[0], ref)
        if view.record.status != "SUCCEEDED":
            raise HTTPException(status_code=409, detail=f"run {view.record.label} is {view.record.status}")
        series = load_tilt_series_set(opened.run_dir(view.record))
        for ts in series:
            if ts.name == name:
                return view, ts, [s.name for s in series]
        raise HTTPException(status_code=404, detail=f"run {view.record.label} has no tilt series {name!r}")

    @app.get("/runs/{ref}/gallery/{name}", response_class=HTMLResponse)
    def gallery(ref: str, name: str) -> str:
        with project() as opened:
            view, ts, names = run_series(opened, ref, name)
            return gallery_page(opened, view.record.label, ts, names)

    @app.get("/runs/{ref}/series/{name}/tilts/{acquisition_index}.png")
    def thumbnail(ref: str, name: str, acquisition_index: int) -> Response:
        with project() as opened:
            png = tilt_thumbnail(run_series(opened, ref, name)[1], acquisition_index)
        if png is None:
            raise HTTPException(status_code=404, detail=f"tilt {acquisition_index} of {name} has no image")
        return Response(png, media_type="image/png")

    @app.post("/api/runs/{ref}/series/{name}/exclusions")
    def save_exclusions(ref: str, name: str, changes: ExclusionChanges) -> dict[str, Any]:
        with project() as opened:
            source = run_series(opened, ref, name)[0].record
        params = cleaning_params(name, changes.exclude, changes.include)
        try:
            with open_project(root) as writable:
                made = run_step(writable, get_step("clean"), params, input_run=source.id)
        except TomoprepError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {"run": made.label, "status": made.status, "params": params}

    @app.get("/files/{relative:path}")
    def project_file(relative: str) -> FileResponse:
        path = inside_project(root, relative)
        if path is None:
            raise HTTPException(status_code=404, detail="no such file in this project")
        return FileResponse(path)

    @app.get("/static/style.css")
    def style() -> Response:
        return Response(pages.STYLE, media_type="text/css")

    @app.get("/api/runs")
    def api_runs() -> list[dict[str, Any]]:
        with project() as opened:
            return [_run_dict(v) for v in views(opened)[0]]

    @app.get("/api/runs/{ref}")
    def api_run(ref: str) -> dict[str, Any]:
        with project() as opened:
            view = find_run(views(opened)[0], ref)
            events = [
                {"time": t, "level": lv, "unit": u, "message": m} for t, lv, u, m in opened.events(view.record.id)
            ]
            artifacts = [{"unit": u, "kind": k, "path": p} for u, k, p in opened.artifacts(view.record.id)]
            return {**_run_dict(view), "events": events, "artifacts": artifacts}

    @app.get("/api/runs/{ref}/tilt-series")
    def api_run_series(ref: str) -> list[dict[str, Any]]:
        with project() as opened:
            view = find_run(views(opened)[0], ref)
            if view.record.status != "SUCCEEDED":
                raise HTTPException(status_code=409, detail=f"run {view.record.label} is {view.record.status}")
            return [_tilts(ts) for ts in load_tilt_series_set(opened.run_dir(view.record))]

    @app.get("/api/series")
    def api_series() -> list[dict[str, Any]]:
        with project() as opened:
            return [_series_dict(v) for v in views(opened)[1]]

    return app


def _tilts(ts: Any) -> dict[str, Any]:
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
