"""What every route of the web app needs: the project opened per request, its runs and series as the report reads
them, and the lookups that answer 404 or 409 with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException

from tomoprep.errors import TomoprepError
from tomoprep.execution.inputs import HeldKinds, needed, resolve_input
from tomoprep.model import TiltSeries, Tomogram
from tomoprep.project import Project, RunRecord, open_project
from tomoprep.report.summary import RunView, SeriesView, summarize_project
from tomoprep.steps import get_step
from tomoprep.steps.base import Step
from tomoprep.steps.tilt_series_set import load_tilt_series_set
from tomoprep.web.launch import Launcher


@dataclass
class ProjectContext:
    """The project at ``root`` as the app's routes see it, and the runs this app started (``launcher``)."""

    root: Path
    launcher: Launcher = field(init=False)

    def __post_init__(self) -> None:
        self.launcher = Launcher(self.root)

    @contextmanager
    def project(self) -> Iterator[Project]:
        """The project's index opened read-only for one request."""
        try:
            with open_project(self.root, read_only=True) as opened:
                yield opened
        except TomoprepError as exc:
            raise HTTPException(status_code=500, detail=str(exc)) from exc

    @staticmethod
    def views(opened: Project) -> tuple[list[RunView], list[SeriesView]]:
        """Every run (oldest first) and every tilt series, as the report reads them."""
        summary = summarize_project(opened)
        return list(summary.runs), list(summary.series)

    def find_run(self, opened: Project, ref: str) -> RunView:
        """The run named by its label (``002_clean``) or number (``2``); 404 when there is none."""
        for view in self.views(opened)[0]:
            if ref in (view.record.label, str(view.record.id)):
                return view
        raise HTTPException(status_code=404, detail=f"no run {ref!r} in this project")

    def run_series(self, opened: Project, ref: str, name: str) -> tuple[RunView, TiltSeries, list[str]]:
        """A successful run, its tilt series ``name`` and the names of all its series; 409 for a run that did not
        succeed, 404 for a series it does not hold."""
        view = self.find_run(opened, ref)
        if view.record.status != "SUCCEEDED":
            raise HTTPException(status_code=409, detail=f"run {view.record.label} is {view.record.status}")
        series = load_tilt_series_set(opened.run_dir(view.record))
        for ts in series:
            if ts.name == name:
                return view, ts, [s.name for s in series]
        raise HTTPException(status_code=404, detail=f"run {view.record.label} has no tilt series {name!r}")

    @staticmethod
    def tomogram_binnings(opened: Project, record: RunRecord) -> dict[str, tuple[float, ...]]:
        """The binnings of each series' tomograms in a successful run (none where its set cannot be read)."""
        if record.status != "SUCCEEDED":
            return {}
        try:
            series = load_tilt_series_set(opened.run_dir(record))
        except (TomoprepError, OSError):
            return {}
        return {ts.name: tuple(t.binning for t in ts.tomograms) for ts in series if ts.tomograms}

    def tomogram_of(self, opened: Project, ref: str, name: str, binning: str) -> tuple[str, Tomogram]:
        """The run's label and the tomogram of series ``name`` at ``binning`` (as written, ``4`` or ``2.5``)."""
        view, ts, _ = self.run_series(opened, ref, name)
        for tomogram in ts.tomograms:
            if f"{tomogram.binning:g}" == binning and tomogram.path.is_file():
                return view.record.label, tomogram
        raise HTTPException(status_code=404, detail=f"{name} has no tomogram at bin {binning} in {view.record.label}")

    @staticmethod
    def known_step(name: str) -> Step:
        """The step ``name``; 404 when tomoprep has none."""
        try:
            return get_step(name)
        except TomoprepError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    @staticmethod
    def input_choices(opened: Project, step: Step) -> tuple[list[str], str | None]:
        """The successful runs that hold what ``step`` needs (newest first), and the one it takes by default."""
        if not step.needs:
            return [], None
        held, needs = HeldKinds(opened, step), needed(step, None)
        usable = [r for r in sorted(held.runs.values(), key=lambda r: -r.id)
                  if r.status == "SUCCEEDED" and needs <= held(r)]  # fmt: skip
        try:
            default = resolve_input(opened, step, None, None)
        except TomoprepError:
            default = None
        return [r.label for r in usable], None if default is None else default.label
