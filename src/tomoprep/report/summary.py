"""What a report shows, read from a project: its runs, and per tilt series the state and the decisions made.

Nothing here computes anything new: the values are those the runs recorded (their parameters, notes, pictures
and tilt-series sets), so the report says what was done, not what could be.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from tomoprep.errors import TomoprepError
from tomoprep.model import TiltSeries
from tomoprep.project import Project, RunRecord
from tomoprep.steps.tilt_series_set import load_tilt_series_set


@dataclass(frozen=True)
class Note:
    """One line a run logged: its level (INFO, WARNING, ERROR), the tilt series it is about (or None), the text."""

    level: str
    unit: str | None
    message: str


@dataclass(frozen=True)
class RunView:
    """One run as the report shows it."""

    record: RunRecord
    input_labels: tuple[str, ...]
    seconds: float | None
    pictures: tuple[Path, ...]
    notes: tuple[Note, ...]
    n_outputs: int


@dataclass(frozen=True)
class ExcludedTilt:
    """A tilt left out of a series: its acquisition index, nominal tilt angle and the reason recorded."""

    acquisition_index: int
    tilt_deg: float
    reason: str


@dataclass(frozen=True)
class SeriesView:
    """A tilt series as its newest run left it, and what the runs decided about it and why."""

    name: str
    run_label: str
    n_tilts: int
    tilt_range_deg: tuple[float, float]
    excluded: tuple[ExcludedTilt, ...]
    nominal_axis_deg: float
    refined_axis_deg: float | None
    tilt_offset_deg: float | None
    thickness_angstrom: float | None
    hand: int
    ctf_hand: str | None
    defocus_range_angstrom: tuple[float, float] | None
    tomograms: tuple[str, ...]
    decisions: tuple[tuple[str, Note], ...] = field(default=())


@dataclass(frozen=True)
class ProjectSummary:
    """Everything the report shows."""

    root: Path
    runs: tuple[RunView, ...]
    series: tuple[SeriesView, ...]
    versions: tuple[str, ...]
    hosts: tuple[str, ...]


#: The start of the note a unit run in another process adds (the runner's): shown with the run, not as a decision.
WHERE_NOTE = "ran on "
#: Notes of these levels are shown with their run; the DEBUG ones (tracebacks) stay in the run's log.
SHOWN_LEVELS = ("INFO", "WARNING", "ERROR")


def _run_view(project: Project, run: RunRecord, labels: dict[int, str]) -> RunView:
    artifacts = project.artifacts(run.id)
    pictures = tuple(project.root / path if not Path(path).is_absolute() else Path(path)
                     for _, kind, path in artifacts if kind == "png")  # fmt: skip
    notes = tuple(Note(level, unit, message) for _, level, unit, message in project.events(run.id)
                  if level in SHOWN_LEVELS)  # fmt: skip
    inputs = tuple(labels.get(i, f"run {i} (removed)") for i in run.inputs)
    return RunView(run, inputs, run.seconds, tuple(p for p in pictures if p.is_file()), notes, len(artifacts))


def _series_view(ts: TiltSeries, run_label: str) -> SeriesView:
    angles = [t.acquisition.nominal_tilt_angle_deg for t in ts.tilts]
    excluded = tuple(ExcludedTilt(t.acquisition.acquisition_index, t.acquisition.nominal_tilt_angle_deg,
                                  t.exclusion.reason if t.exclusion else "")
                     for t in ts.tilts if t.excluded)  # fmt: skip
    aligned = [t for t in ts.included_tilts if t.alignment is not None]
    axis = statistics.fmean(t.alignment.z_rot_deg for t in aligned if t.alignment) if aligned else None
    offset = (statistics.fmean(t.alignment.y_tilt_deg - t.acquisition.nominal_tilt_angle_deg
                               for t in aligned if t.alignment) if aligned else None)  # fmt: skip
    defoci = [(t.ctf.defocus_u_angstrom + t.ctf.defocus_v_angstrom) / 2 for t in ts.included_tilts if t.ctf]
    ctf_hand = None
    if ts.ctf_hand is not None:
        verdict = "undetermined" if ts.ctf_hand.hand is None else f"{ts.ctf_hand.hand:+d}"
        ctf_hand = f"{verdict} (confidence {ts.ctf_hand.confidence:.1f})"
    return SeriesView(
        name=ts.name,
        run_label=run_label,
        n_tilts=ts.n_tilts,
        tilt_range_deg=(min(angles), max(angles)),
        excluded=excluded,
        nominal_axis_deg=ts.nominal_tilt_axis_angle_deg,
        refined_axis_deg=axis,
        tilt_offset_deg=offset,
        thickness_angstrom=ts.specimen_thickness_angstrom,
        hand=ts.hand,
        ctf_hand=ctf_hand,
        defocus_range_angstrom=(min(defoci), max(defoci)) if defoci else None,
        tomograms=tuple(f"bin {t.binning:g}: {t.path}" for t in ts.tomograms),
    )


def _newest_series(project: Project, runs: list[RunRecord]) -> dict[str, tuple[TiltSeries, str]]:
    """Each tilt series as the newest successful run that holds it left it."""
    newest: dict[str, tuple[TiltSeries, str]] = {}
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        if run.status != "SUCCEEDED":
            continue
        try:
            series = load_tilt_series_set(project.run_dir(run))
        except (TomoprepError, OSError, ValueError, KeyError):
            continue  # a run whose set cannot be read: the runs before it still tell the series' story
        for ts in series:
            newest.setdefault(ts.name, (ts, run.label))
    return newest


def summarize_project(project: Project) -> ProjectSummary:
    """The report's content for ``project``: every run (oldest first) and every tilt series with its decisions,
    the notes of every run about that series in run order."""
    runs = sorted(project.list_runs(), key=lambda r: r.id)
    labels = {r.id: r.label for r in runs}
    views = tuple(_run_view(project, run, labels) for run in runs)
    series = []
    for name, (ts, label) in sorted(_newest_series(project, runs).items()):
        decisions = tuple((view.record.label, note) for view in views for note in view.notes
                          if note.unit == name and not note.message.startswith(WHERE_NOTE))  # fmt: skip
        series.append(replace(_series_view(ts, label), decisions=decisions))
    return ProjectSummary(
        root=project.root,
        runs=views,
        series=tuple(series),
        versions=tuple(sorted({r.package_version for r in runs})),
        hosts=tuple(sorted({r.host for r in runs})),
    )
