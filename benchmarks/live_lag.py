"""Live mode: how long after a tilt series' last movie arrives ``tomoprep watch`` has its tomogram and its export.

A simulated session is copied into a watched folder as a microscope writes it: the files beside the series (the
gain), then series after series its mdoc and one movie every ``pace_s`` seconds, the pace running on across the
series. ``tomoprep watch --until-idle`` runs meanwhile as a process of its own on a new project, with the chain
import -> motioncorr -> align -> reconstruct -> export (every parameter at its default). Per series, from the
project's run records: when its reconstruct run and its export run ended, and when its import started (the chain
taken), against the time its last movie was written. Used by ``scale.py --live``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

LIVE_STEPS = ("import", "motioncorr", "align", "reconstruct", "export")


@dataclass(frozen=True)
class SeriesLag:
    """One series' times, seconds since the session's first file was written."""

    series: str
    last_movie_s: float
    taken_s: float  # its import's start: the chain begun
    tomogram_s: float  # its reconstruct run's end
    export_s: float  # its export run's end

    @property
    def lag_s(self) -> float:
        """Seconds from the last movie to the tomogram."""
        return self.tomogram_s - self.last_movie_s

    @property
    def export_lag_s(self) -> float:
        """Seconds from the last movie to the export."""
        return self.export_s - self.last_movie_s


def write_workflow(path: Path, movies: Path) -> Path:
    """The watch's workflow: the live steps, the import's movies in ``movies``."""
    tables = "".join(f"[{step}]\n" for step in LIVE_STEPS[1:])
    path.write_text(f'[import]\nmovies = "{movies}"\n{tables}')
    return path


def feed(source: Path, session: Path, pace_s: float, arrived: dict[str, float]) -> None:
    """Copy the simulated session ``source`` into ``session`` as a microscope writes it; ``arrived`` gets each
    series' last movie's time (``time.time()``, s) once that movie is written."""
    frames = session / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*"):
        if path.is_file() and not path.name.endswith(".mdoc"):
            shutil.copy(path, session)  # the gain: there before the first series, as on a microscope
    for mdoc in sorted(source.glob("*.mdoc")):
        name = mdoc.name.split(".")[0]
        shutil.copy(mdoc, session)
        for movie in sorted((source / "frames").glob(f"{name}_*")):  # named by acquisition index
            time.sleep(pace_s)
            shutil.copy(movie, frames)
        arrived[name] = time.time()


def run_watch(session: Path, project: Path, workflow: Path, *, settle_s: float, poll_s: float, idle_s: float,
              log: Path) -> subprocess.Popen[bytes]:  # fmt: skip
    """``tomoprep watch`` on ``session`` into a new ``project``, its output in ``log``; the process started."""
    import tomoprep

    env = os.environ | {"PYTHONPATH": str(Path(tomoprep.__file__).parents[1])}
    command = [sys.executable, "-m", "tomoprep", "watch", str(session), "-p", str(project), "--workflow",
               str(workflow), "--settle", f"{settle_s:g}", "--poll", f"{poll_s:g}",
               "--until-idle", f"{idle_s:g}"]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _epoch(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else float("nan")


def series_lags(project_root: Path, arrived: dict[str, float], began: float) -> list[SeriesLag]:
    """Each series' times from the project's runs: its chain followed from its import by the runs' inputs."""
    from tomoprep.project import open_project

    with open_project(project_root, read_only=True) as project:
        runs = project.list_runs()
    lags = []
    for name, last_movie in sorted(arrived.items(), key=lambda item: item[1]):
        chain = [r for r in runs if r.step == "import" and list(r.params.get("series") or []) == [name]]
        while chain and (followers := [r for r in runs if r.inputs == (chain[-1].id,)]):
            chain.append(followers[0])
        ended = {r.step: r for r in chain if r.status == "SUCCEEDED"}
        if set(ended) != set(LIVE_STEPS):
            raise SystemExit(f"{name}: its chain did not complete: {[(r.label, r.shown_status) for r in chain]}")
        lags.append(SeriesLag(name, last_movie - began, _epoch(ended["import"].started_at) - began,
                              _epoch(ended["reconstruct"].finished_at) - began,
                              _epoch(ended["export"].finished_at) - began))  # fmt: skip
    return lags


def measure_live(source: Path, folder: Path, *, pace_s: float, settle_s: float, poll_s: float) -> list[SeriesLag]:
    """Feed ``source`` into a watched folder at ``pace_s`` while a watch runs; each series' times."""
    session, project = folder / "live_session", folder / "live_project"
    session.mkdir()
    workflow = write_workflow(folder / "live.toml", session / "frames")
    log = folder / "watch.log"
    # Idle only well after the last file: more than a settle time and several movies' pace.
    watch = run_watch(session, project, workflow, settle_s=settle_s, poll_s=poll_s,
                      idle_s=2 * settle_s + 4 * pace_s, log=log)  # fmt: skip
    arrived: dict[str, float] = {}
    began = time.time()
    feeder = threading.Thread(target=feed, args=(source, session, pace_s, arrived))
    feeder.start()
    try:
        feeder.join()
        code = watch.wait()
    finally:
        watch.kill()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"tomoprep watch ended with status {code}:\n{tail}")
    return series_lags(project, arrived, began)


def kept_up(lags: list[SeriesLag], settle_s: float) -> bool:
    """Whether no series waited behind another: each chain ended (its export) before the next series was complete
    (its last movie and a settle time); then the lag cannot grow along the session."""
    return all(before.export_s <= after.last_movie_s + settle_s for before, after in pairwise(lags))


def print_live_table(lags: list[SeriesLag], *, settle_s: float) -> None:
    """The table (times in s since the session's first file) and the summary."""
    print(f"{'series':<10} {'last movie at':>14} {'taken at':>9} {'tomogram at':>12} {'lag s':>7} "
          f"{'export at':>10} {'export lag s':>13}")  # fmt: skip
    for lag in lags:
        print(f"{lag.series:<10} {lag.last_movie_s:>14.1f} {lag.taken_s:>9.1f} {lag.tomogram_s:>12.1f} "
              f"{lag.lag_s:>7.1f} {lag.export_s:>10.1f} {lag.export_lag_s:>13.1f}")  # fmt: skip
    values, exports = [lag.lag_s for lag in lags], [lag.export_lag_s for lag in lags]
    growth = (values[-1] - values[0]) / (len(values) - 1) if len(values) > 1 else 0.0
    print(f"\nlag to tomogram: median {statistics.median(values):.1f} s, max {max(values):.1f} s; "
          f"to export: median {statistics.median(exports):.1f} s, max {max(exports):.1f} s")  # fmt: skip
    print(f"lag change per series, first to last: {growth:+.1f} s; kept up (each chain done before the next series "
          f"was complete): {'yes' if kept_up(lags, settle_s) else 'NO'}")  # fmt: skip
