"""Scale-out: tilt series per hour through import -> motioncorr -> align -> reconstruct, by where units run.

One simulated session of N small tilt series (the simulator's ``tiny`` preset: 11 tilts of 256², 6-frame TIFF
movies, 4 Å pixels; ``--n-tilts`` and ``--detector-size-px`` make them larger) is pushed through the four steps in
a new project for each way of running units:

- the local executor, one job (every unit in this process, one after another);
- a Dask ``LocalCluster`` of 1 worker process, then of 2 (``--workers`` gives other counts), started for the
  configuration and closed after it, as ``--executor dask --jobs W`` does.

Each configuration runs the same workflow (``tomoprep.execution.workflow.run_workflow``) on its own copy of
nothing but the session folder, which is only read. Scores:

- start s: starting the executor (the Dask cluster and its workers; 0 for the local executor);
- per step: wall seconds of the step's run, from its record (start to end);
- total s: wall seconds of the four steps, the executor's start not counted;
- series/h: N / total, in tilt series per hour.

The outputs must not depend on where units ran: the tilt-series STAR files of every configuration are compared
with those of the local executor (their comment lines, which hold times, left out, and the project folder in the
paths of files made neutral) and the table says whether they are identical. Every process (this one and each
worker) runs torch with ``--threads`` threads (OMP_NUM_THREADS, set before torch starts and inherited by the
workers).

    python benchmarks/scale.py                   # 8 series; local, Dask 1 and 2 workers
    python benchmarks/scale.py --series 2        # a quick check that everything runs
    python benchmarks/scale.py --workers 1 2 4   # other worker counts

With ``--live``, the live mode instead (``live_lag.py``): the session is copied into a watched folder movie by
movie, one every ``--pace`` seconds, series after series, while ``tomoprep watch --settle S --until-idle`` runs
as a process on a new project (import -> motioncorr -> align -> reconstruct -> export, one series after another,
the local executor). Per series: when its last movie was written, when its chain was taken (its import began),
when its tomogram (the reconstruct run's end) and its export (the export run's end) were there, and the lags from
the last movie to both, in seconds; then the median and largest lags, the lag's change per series along the
session, and whether the watch kept up (each series' chain done before the next series was complete, so that no
series waits behind another and the lag does not grow).

    python benchmarks/scale.py --live --series 3 --pace 2 --settle 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

STEPS = ("import", "motioncorr", "align", "reconstruct")


@dataclass(frozen=True)
class Score:
    """One configuration's figures: executor start, each step's and all steps' wall seconds, same outputs."""

    name: str
    start_s: float
    step_s: dict[str, float]
    total_s: float
    n_series: int
    same_outputs: bool | None

    @property
    def series_per_hour(self) -> float:
        return self.n_series / self.total_s * 3600.0


def simulate(folder: Path, *, n_series: int, n_tilts: int | None, size_px: int | None, seed: int) -> Path:
    """The session of ``n_series`` small tilt series in ``folder/session``; returns that folder."""
    from tomoprep.simulate.params import SimulateParams
    from tomoprep.simulate.session import simulate_session

    session = folder / "session"
    params = SimulateParams(preset="tiny", n_tilt_series=n_series, n_tilts=n_tilts, detector_size_px=size_px,
                            seed=seed)  # fmt: skip
    simulate_session(session, params, progress=None)
    return session


def workflow(session: Path) -> list[Any]:
    """The four steps on ``session``: its mdoc files and movies, the other parameters at their defaults."""
    from tomoprep.execution.workflow import WorkflowStep

    values = {"import": {"mdoc": str(session / "*.mdoc"), "movies": str(session / "frames")}}
    return [WorkflowStep(name, values.get(name, {})) for name in STEPS]


@contextmanager
def executor_for(workers: int | None) -> Iterator[Any]:
    """The local executor with one job (``workers`` None), else a local Dask cluster of ``workers`` processes."""
    from tomoprep.execution import local_executor
    from tomoprep.execution.dask_executor import ClusterSettings, dask_executor

    if workers is None:
        with local_executor(1) as executor:
            yield executor
    else:
        with dask_executor(ClusterSettings(workers=workers)) as executor:
            yield executor


def series_tables(root: Path) -> dict[str, str]:
    """Every tilt-series STAR file of a project, by path within it, without its comment lines (they hold times) and
    with the project's folder, which the paths of its files name, written ``PROJECT``."""
    return {str(p.relative_to(root)): "".join(line for line in p.read_text().splitlines(True)
                                              if not line.startswith("#")).replace(str(root), "PROJECT")
            for p in sorted(root.glob("runs/*/tilt_series/*.star"))}  # fmt: skip


def _seconds(started: str, finished: str | None) -> float:
    return (datetime.fromisoformat(finished or started) - datetime.fromisoformat(started)).total_seconds()


def measure(name: str, session: Path, root: Path, workers: int | None, *, n_series: int) -> Score:
    """Run the workflow on ``session`` in a new project ``root`` with the executor ``workers`` names."""
    from tomoprep.execution.workflow import run_workflow
    from tomoprep.project import init_project

    began = time.perf_counter()
    with init_project(root) as project, executor_for(workers) as executor:
        ready = time.perf_counter()
        outcomes = run_workflow(project, workflow(session), executor=executor)
        total = time.perf_counter() - ready
    failed = [o for o in outcomes if o.run.shown_status != "SUCCEEDED"]
    if failed or len(outcomes) < len(STEPS):
        run = (failed or outcomes)[-1].run
        raise SystemExit(f"{name}: {run.step} ended {run.shown_status}: {run.error}")
    steps = {o.name: _seconds(o.run.started_at, o.run.finished_at) for o in outcomes}
    return Score(name, ready - began, steps, total, n_series, None)


def print_table(scores: list[Score]) -> None:
    header = f"{'where units run':<24} {'start s':>8} " + " ".join(f"{s:>11}" for s in STEPS)
    print(header + f" {'total s':>8} {'series/h':>9} {'same outputs':>13}")
    for score in scores:
        same = "reference" if score.same_outputs is None else ("yes" if score.same_outputs else "NO")
        steps = " ".join(f"{score.step_s[s]:>11.1f}" for s in STEPS)
        print(f"{score.name:<24} {score.start_s:>8.1f} {steps} {score.total_s:>8.1f} "
              f"{score.series_per_hour:>9.0f} {same:>13}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=8, help="Tilt series in the session.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Dask worker counts to measure.")
    parser.add_argument("--n-tilts", type=int, default=None, help="Tilts per series (default: the preset's, 11).")
    parser.add_argument("--detector-size-px", type=int, default=None, help="Image size (default: 256).")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads of each process.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--live", action="store_true", help="Measure the live mode's lag instead.")
    parser.add_argument("--pace", type=float, default=2.0, help="Live: seconds between two movies.")
    parser.add_argument("--settle", type=float, default=5.0, help="Live: the watch's --settle, s.")
    parser.add_argument("--poll", type=float, default=1.0, help="Live: the watch's --poll, s.")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch starts here, and inherited by the workers
    import torch

    torch.set_num_threads(args.threads)
    from machine import describe_machine

    print(describe_machine(args.threads, packages=_dask_version()))
    with tempfile.TemporaryDirectory(prefix="tomoprep-scale-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        session = simulate(folder, n_series=args.series, n_tilts=args.n_tilts, size_px=args.detector_size_px,
                           seed=args.seed)  # fmt: skip
        print(f"{args.series} simulated tilt series (tiny preset, seed {args.seed}) in "
              f"{time.perf_counter() - began:.0f} s")  # fmt: skip
        if args.live:
            return live(session, folder, args)
        print(f"steps: {' -> '.join(STEPS)}\n")
        configurations = [
            ("local, 1 job", None),
            *((f"Dask local, {w} worker{'s' * (w > 1)}", w) for w in args.workers),
        ]
        scores, reference = [], None
        for index, (name, workers) in enumerate(configurations):
            root = folder / f"project_{index}"
            score = measure(name, session, root, workers, n_series=args.series)
            tables = series_tables(root)
            same = None if reference is None else tables == reference
            reference = tables if reference is None else reference
            scores.append(Score(score.name, score.start_s, score.step_s, score.total_s, score.n_series, same))
        print_table(scores)
    if any(s.same_outputs is False for s in scores):
        sys.exit("The outputs differ with where units ran.")


def live(session: Path, folder: Path, args: argparse.Namespace) -> None:
    """The live mode's table (``live_lag.py``) for the simulated ``session``."""
    from live_lag import LIVE_STEPS, measure_live, print_live_table

    print(f"live: one movie every {args.pace:g} s, series after series; tomoprep watch --settle {args.settle:g} "
          f"--poll {args.poll:g}; steps: {' -> '.join(LIVE_STEPS)}; times in s since the first file\n")  # fmt: skip
    lags = measure_live(session, folder, pace_s=args.pace, settle_s=args.settle, poll_s=args.poll)
    print_live_table(lags, settle_s=args.settle)


def _dask_version() -> str:
    import distributed

    return f"distributed {distributed.__version__}"


if __name__ == "__main__":
    main()
